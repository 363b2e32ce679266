"""The student and teacher loaders: a sampler, the replay pipeline and an optional store.

Each loader *composes* three parts and inherits from nothing:

* the traversal (``tinyvit.data.sampler``): a sampler (``PairedSampler`` by default) and
  an ``EpochClock``, the loader's one trainer epoch and its passes;
* the ``ReplayPipeline`` (``tinyvit.data.pipeline``), the only place a batch is built:
  seeds -> one plan per sample -> pixels + device params -> store top-k, labels (CPU, in
  DataLoader workers when ``num_workers > 0``) -> partners -> device -> normalize, erase,
  mix -> dtype / memory format;
* for ``DistillLoader``, the store and its epoch rules (``StoreEpochs``).

``DistillLoader`` yields ``(images, SparseTargets)``, ``ReplayLoader`` (no store)
``(images, labels, lam, partner)``, ``TeacherBatches`` (save-logits) the teacher's batches.
The student sees bit-identical images to the ones the teacher saw when its logits were saved
(tested). With Mixup/CutMix on, the teacher saw the *mixed* image and its stored top-K
already describes it (paper Sec. 3.1: y = T(A(x)), A including CutMix), so the student's
target is the record as stored: no target mixing.
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple, Optional

import numpy as np
import torch

from ..augment.config import AugConfig
from ..store import EpochMissingError, LogitStore, RecordMissingError, check_compatible
from ..store.compat import stored_base_seed
from .attest import check_replay
from .pipeline import ReplayPipeline
from .sampler import (EpochClock, EpochError, LoaderBatchSampler, PairedSampler, num_batches,
                      pass_batches, teacher_bounds, teacher_order)

__all__ = ["SparseTargets", "DistillLoader", "ReplayLoader", "TeacherBatches", "teacher_order",
           "EpochError", "LoaderBatchSampler", "StoreEpochs"]


class SparseTargets(NamedTuple):
    """Sparse teacher targets of a batch: ``indices`` int64 [B, K], ``probs`` float32 [B, K]
    (on the loader's device). A NamedTuple, so ``sparse_soft_cross_entropy(logits, *targets)``
    works; ``targets.loss(logits)`` is the same call."""

    indices: torch.Tensor
    probs: torch.Tensor

    def loss(self, logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        from ..loss import sparse_soft_cross_entropy

        return sparse_soft_cross_entropy(logits, self.indices, self.probs, reduction)

    def to(self, device, non_blocking: bool = False) -> "SparseTargets":
        return SparseTargets(self.indices.to(device, non_blocking=non_blocking),
                             self.probs.to(device, non_blocking=non_blocking))


_OUTPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)


class _Passes:
    """What both student loaders share, composed (not inherited): the sampler + clock, the
    batch shape, the pipeline, the device and output settings, and the pass runner."""

    def __init__(self, pipeline: ReplayPipeline, *, batch_size, num_workers, sampler, device,
                 epoch, drop_last, num_threads, pin_memory, dtype, memory_format,
                 auto_advance, check=None, to_data=None):
        cfg = pipeline.cfg
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if dtype not in _OUTPUT_DTYPES:
            raise TypeError(f"dtype must be one of {_OUTPUT_DTYPES}, got {dtype!r}")
        if memory_format not in _MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {_MEMORY_FORMATS}, got {memory_format!r}")
        self.pipeline, self.batch_size, self.drop_last = pipeline, int(batch_size), drop_last
        self.num_workers, self.num_threads = int(num_workers), num_threads
        self.device = torch.device(device)
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        self.dtype, self.memory_format = dtype, memory_format
        if sampler is None:
            if cfg.mixing and self.batch_size % 2:
                raise ValueError(f"batch_size must be even when Mixup/CutMix is on (pairs stay in "
                                 f"one batch), got {batch_size}")
            sampler = PairedSampler(pipeline.num_samples, pipeline.base_seed,
                                    batch_size=self.batch_size if self.batch_size % 2 == 0 else None)
        self.clock = EpochClock(sampler, epoch=epoch, auto_advance=auto_advance, check=check,
                                to_data=to_data)
        self.batch_sampler = LoaderBatchSampler(self)

    sampler = property(lambda self: self.clock.sampler)

    def __len__(self) -> int:
        return num_batches(len(self.clock.sampler), self.batch_size, self.drop_last)

    def run(self, skip: int, mixing: bool = True):
        """One pass (a generator: the epoch is settled at its first next(), as a DataLoader
        reads its sampler then; trainers like Lightning create the iterator before they call
        set_epoch): yields (cpu dict, DeviceBatch) per batch."""
        epoch = self.clock.begin_pass()
        batches = pass_batches(self.clock.order(), self.batch_size, self.drop_last, skip)
        pipe = self.pipeline
        cpu_iter = pipe.cpu_batches(epoch, batches, num_workers=self.num_workers,
                                    num_threads=self.num_threads,
                                    pin_memory=self.pin_memory and torch.cuda.is_available())
        for cpu in cpu_iter:
            yield cpu, pipe.device_batch(cpu, epoch, self.device, mixing=mixing,
                                         non_blocking=self.pin_memory, dtype=self.dtype,
                                         memory_format=self.memory_format)


def _check_skip(num_batches: int) -> None:
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 0:
        raise ValueError(f"num_batches must be an int >= 0, got {num_batches!r}")


def _forward(name: str, doc: Optional[str] = None, obj=lambda loader: loader._passes) -> property:
    """A loader attribute that lives in its ``_passes`` (composition, not a base class):
    reading and assigning it on the loader read and assign it there."""
    return property(lambda self: getattr(obj(self), name),
                    lambda self, value: setattr(obj(self), name, value), doc=doc)


def _from_cfg(fn, doc: str) -> property:
    return property(lambda self: fn(self.cfg), doc=doc)


# the DataLoader-shaped surface trainers read (docs/loader.md, *What trainers read*); both
# loaders list these, written once here
_SAMPLER = property(lambda self: self._passes.sampler,
                    doc="the sampler: PairedSampler by default, or the one given")
_BATCH_SAMPLER = property(lambda self: self._passes.batch_sampler,
                          doc="LoaderBatchSampler over ``sampler``")
_EPOCH = property(lambda self: self._passes.clock.epoch, doc="the trainer epoch")
_AUTO_ADVANCE = _forward("auto_advance", "a repeated pass advances the epoch (else EpochError)",
                         obj=lambda loader: loader._passes.clock)
_INPUT_SIZE = _from_cfg(lambda c: (3, c.height, c.width), "``(3, H, W)`` of the AugConfig")
_MEAN = _from_cfg(lambda c: tuple(c.mean), "the normalisation mean")
_STD = _from_cfg(lambda c: tuple(c.std), "the normalisation std")
_INTERPOLATION = _from_cfg(lambda c: c.interpolation, "the AugConfig's interpolation")


def _eval_config(self) -> dict:
    """The matching evaluation transform's config (``tinyvit.eval_config``)."""
    return self.cfg.eval_config()


class ReplayLoader:
    """Iterates ``(images, labels, lam, partner)`` for one epoch, images replayed from
    ``sample_seed(base_seed, epoch, i)`` (no store). For training without a store (hard
    labels, online teacher): ``labels`` int64 [B] (None when the dataset has none), ``lam``
    [B] own-image weights and ``partner`` batch positions, to mix targets with
    ``tinyvit.mix_targets``. Same sampler/epoch rules as DistillLoader (docs/loader.md).

    Epoch: ``set_epoch(e)`` on the loader, its ``sampler`` or its ``batch_sampler`` sets one
    epoch; a pass (``iter``) started with no ``set_epoch`` since the previous pass advances it
    by one (``auto_advance=False``: raises EpochError instead), so a loop that never calls
    ``set_epoch`` still sees epochs 0, 1, 2, ... and never a silent replay.
    """

    def __init__(self, dataset, aug_config: AugConfig, *, base_seed: int = 0, batch_size: int = 64,
                 num_workers: int = 0, sampler=None, device="cpu", epoch: int = 0,
                 drop_last: bool = False, num_threads: Optional[int] = None,
                 pin_memory: Optional[bool] = None, dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 auto_advance: bool = True):
        self.pipeline = ReplayPipeline(dataset, aug_config, base_seed)
        self.dataset, self.cfg = dataset, aug_config
        self.num_samples, self.base_seed = self.pipeline.num_samples, self.pipeline.base_seed
        self._passes = _Passes(self.pipeline, batch_size=batch_size, num_workers=num_workers,
                               sampler=sampler, device=device, epoch=epoch, drop_last=drop_last,
                               num_threads=num_threads, pin_memory=pin_memory, dtype=dtype,
                               memory_format=memory_format, auto_advance=auto_advance)
        self._mixing = aug_config.mixing

    sampler, batch_sampler, epoch = _SAMPLER, _BATCH_SAMPLER, _EPOCH
    batch_size, drop_last, num_workers = (_forward("batch_size"), _forward("drop_last"),
                                          _forward("num_workers"))
    num_threads, device, pin_memory = (_forward("num_threads"), _forward("device"),
                                       _forward("pin_memory"))
    dtype, memory_format = _forward("dtype"), _forward("memory_format")
    input_size, mean, std, interpolation = _INPUT_SIZE, _MEAN, _STD, _INTERPOLATION
    eval_config = _eval_config
    auto_advance = _AUTO_ADVANCE

    def set_epoch(self, epoch: int) -> None:
        """Set the trainer epoch (the same call through ``sampler`` / ``batch_sampler``)."""
        self._passes.clock.set_epoch(epoch)

    @property
    def data_epoch(self) -> int:
        """The epoch whose seeds and pairing this pass uses (the trainer epoch)."""
        return self._passes.clock.data_epoch

    def __len__(self) -> int:
        return len(self._passes)

    @property
    def mixup_enabled(self) -> bool:
        """Whether Mixup/CutMix is applied. Without a store it can be switched off (timm's
        ``--mixup-off-epoch``): images stop mixing, ``lam`` = 1, ``partner`` = own position."""
        return self._mixing

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:
        value = bool(value)
        if value and not self.cfg.mixing:
            raise ValueError("mixup_enabled=True: the AugConfig has mixup_alpha = cutmix_alpha = 0")
        self._mixing = value  # only the device step changes: pixels and plans stay the same

    def __iter__(self):
        return self._pass(0)

    def skip_first_batches(self, num_batches: int):
        """One pass (same epoch rules as ``iter``) without its first ``num_batches`` batches,
        which are neither read nor replayed (resuming mid-epoch; use this instead of
        ``accelerate.skip_first_batches``, which rebuilds a plain DataLoader)."""
        _check_skip(num_batches)
        return self._pass(num_batches)

    def _pass(self, skip: int):
        mixing = self._mixing  # as at the pass's start (a generator: at its first next())
        for _, b in self._passes.run(skip, mixing=mixing):
            yield b.images, b.labels, b.lam, b.partner


class StoreEpochs:
    """A store's epoch rules for a loader (no reference to the loader: it is the policy its
    ``EpochClock`` calls): which trainer epochs it serves (``check``), the store epoch a
    trainer epoch reads (``data_epoch``) and the up-front ``check_epochs``."""

    def __init__(self, store: LogitStore, *, check_complete: bool = True,
                 reuse_epochs: bool = False, check_replay=None):
        self.store, self.check_complete, self.reuse_epochs = store, check_complete, bool(reuse_epochs)
        self.epochs: Optional[int] = None
        self._complete = set()
        # check_replay(epoch): the replay attestation of a store epoch, run once per epoch the
        # loader is about to serve (so an epoch without its attestation is refused when
        # set_epoch reaches it, not only the epoch the loader was built at)
        self._check_replay, self._replayed = check_replay, set()
        self._where = f"store {store.path!r}"

    def data_epoch(self, epoch: int) -> int:
        return epoch % self.store.epochs if self.reuse_epochs else epoch

    def check_epochs(self, epochs: int) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        have = self.store.epochs
        if epochs > have and not self.reuse_epochs:
            raise EpochMissingError(
                f"{self._where}: the run asks for {epochs} epochs but the store holds {have} "
                f"(0..{have - 1}); save more with tinyvit save-logits --epochs {epochs}, or pass "
                f"reuse_epochs=True (tinyvit train --reuse-epochs) to train epoch e on stored epoch e % {have}")
        for e in range(min(epochs, have)):
            self._check_store_epoch(e)

    def check(self, epoch: int) -> None:
        """A trainer epoch this loader cannot serve raises (EpochMissingError /
        RecordMissingError), before any batch."""
        if self.epochs is not None and epoch >= self.epochs:
            raise EpochMissingError(f"{self._where}: epoch {epoch} requested but this loader was "
                                    f"built for epochs={self.epochs} (0..{self.epochs - 1})")
        have = self.store.epochs
        if epoch >= have and not self.reuse_epochs:
            raise EpochMissingError(f"{self._where}: epoch {epoch} not in the store (it has "
                                    f"{have} epochs: 0..{have - 1}); pass reuse_epochs=True "
                                    f"to train on stored epoch epoch % {have}")
        self._check_store_epoch(epoch % have)

    def _check_store_epoch(self, epoch: int) -> None:
        if epoch >= self.store.epochs:
            raise EpochMissingError(f"{self._where}: epoch {epoch} not in the store")
        if self.check_complete and epoch not in self._complete:
            missing = self.store.missing(epoch)
            if missing.size:
                raise RecordMissingError(
                    f"{self._where}: epoch {epoch} is incomplete: {missing.size} of "
                    f"{self.store.num_samples} records missing (first: sample {int(missing[0])}); "
                    "rerun tinyvit save-logits for this epoch")
            self._complete.add(epoch)
        if self._check_replay is not None and epoch not in self._replayed:
            self._check_replay(epoch)  # ReplayMismatchError
            self._replayed.add(epoch)


def _check_replay_epoch(store, dataset, cfg, epoch: int) -> None:
    check_replay(store, dataset, cfg, epochs=[epoch])  # ReplayMismatchError


def _open_store(store) -> LogitStore:
    if isinstance(store, (str, os.PathLike)):
        store = LogitStore.open(os.fspath(store))
    if not isinstance(store, LogitStore):
        raise TypeError(f"store must be a tinyvit.LogitStore or a path, got {type(store).__name__}")
    return store


class DistillLoader:
    """The drop-in student loader: yields ``(images, targets)`` per batch.

    images: ``dtype`` (float32 default; bfloat16/float16 cast after the float32 pipeline)
    [B, 3, H, W] on ``device`` in ``memory_format``, normalised, erased and mixed exactly as the
    teacher saw them; targets: ``SparseTargets(indices [B, K] int64, probs [B, K] float32)``
    read from ``store`` (seeds come from the store too). ``return_labels=True`` yields
    ``(images, targets, labels)``.

    sampler: None -> ``PairedSampler`` (world size / rank read from torch.distributed when a
    pass starts, so the loader may be built before ``init_process_group``; keeps Mixup/CutMix
    partners in one batch, so batch_size must be even when mixing). Any sampler works without
    mixing (e.g. ``DistributedSampler``); with mixing every partner must be in the batch
    (ValueError naming the sample otherwise); under a process group a sampler that does not
    shard for its world size is refused.

    Epochs (docs/loader.md): ``set_epoch(e)`` on the loader, ``loader.sampler`` or
    ``loader.batch_sampler`` sets one trainer epoch; a pass without ``set_epoch`` since the
    previous one advances it. ``epochs=N`` checks before the first step that the store holds
    (complete) epochs 0..N-1 and refuses later epochs; ``reuse_epochs=True`` trains epoch e
    on stored epoch ``e % store.epochs`` instead of refusing.

    Checked at construction and in ``set_epoch`` -- before any batch is produced:
    ``len(dataset) == store.num_samples`` (StoreMismatchError), ``aug_config.fingerprint()``
    == the store's (FingerprintMismatchError), the dataset fingerprint recorded in the store
    == ``dataset.fingerprint()`` (DatasetMismatchError), ``num_classes`` if given ==
    ``store.num_classes`` (StoreMismatchError), the epoch exists (EpochMissingError) and is
    complete (RecordMissingError with the number of missing records; ``check_complete=False``
    skips this full scan).
    """

    def __init__(self, dataset, store, aug_config: AugConfig, *, batch_size: int = 64,
                 num_workers: int = 0, sampler=None, device="cpu", epoch: int = 0,
                 num_classes: Optional[int] = None, drop_last: bool = False,
                 num_threads: Optional[int] = None, pin_memory: Optional[bool] = None,
                 return_labels: bool = False, check_complete: bool = True,
                 epochs: Optional[int] = None, reuse_epochs: bool = False,
                 dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 auto_advance: bool = True):
        self.store = _open_store(store)
        self.return_labels = return_labels
        if not isinstance(aug_config, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(aug_config).__name__}")
        check_compatible(self.store, dataset=dataset, aug_config=aug_config, num_classes=num_classes)
        self._epochs = StoreEpochs(
            self.store, check_complete=check_complete, reuse_epochs=reuse_epochs,
            # a partial of the store, dataset and config, never of the loader: the sampler's
            # epoch hook reaches this policy and must not reach the loader
            check_replay=functools.partial(_check_replay_epoch, self.store, dataset, aug_config))
        if epochs is not None:
            self._epochs.check_epochs(epochs)
            self._epochs.epochs = int(epochs)
        self.pipeline = ReplayPipeline(dataset, aug_config, int(stored_base_seed(self.store)),
                                       store=self.store)
        self.dataset, self.cfg = dataset, aug_config
        self.num_samples, self.base_seed = self.pipeline.num_samples, self.pipeline.base_seed
        self._passes = _Passes(self.pipeline, batch_size=batch_size, num_workers=num_workers,
                               sampler=sampler, device=device, epoch=epoch, drop_last=drop_last,
                               num_threads=num_threads, pin_memory=pin_memory, dtype=dtype,
                               memory_format=memory_format, auto_advance=auto_advance,
                               check=self._epochs.check, to_data=self._epochs.data_epoch)

    sampler, batch_sampler, epoch = _SAMPLER, _BATCH_SAMPLER, _EPOCH
    batch_size, drop_last, num_workers = (_forward("batch_size"), _forward("drop_last"),
                                          _forward("num_workers"))
    num_threads, device, pin_memory = (_forward("num_threads"), _forward("device"),
                                       _forward("pin_memory"))
    dtype, memory_format = _forward("dtype"), _forward("memory_format")
    input_size, mean, std, interpolation = _INPUT_SIZE, _MEAN, _STD, _INTERPOLATION
    eval_config = _eval_config
    auto_advance = _AUTO_ADVANCE
    epochs = _forward("epochs", "the epoch count this loader was built for (None: unchecked)",
                      obj=lambda loader: loader._epochs)
    reuse_epochs = _forward("reuse_epochs", obj=lambda loader: loader._epochs)
    check_complete = _forward("check_complete", obj=lambda loader: loader._epochs)

    def set_epoch(self, epoch: int) -> None:
        """Set the trainer epoch (the same call through ``sampler`` / ``batch_sampler``)."""
        self._passes.clock.set_epoch(epoch)

    @property
    def data_epoch(self) -> int:
        """The store epoch this pass reads: the trainer epoch, or ``epoch % store.epochs``
        with ``reuse_epochs``."""
        return self._passes.clock.data_epoch

    def check_epochs(self, epochs: int) -> None:
        """Refuse, before the first step, a run of ``epochs`` trainer epochs this store cannot
        serve: EpochMissingError (too few stored epochs and not ``reuse_epochs``),
        RecordMissingError (an epoch it needs is incomplete)."""
        self._epochs.check_epochs(epochs)

    def __len__(self) -> int:
        return len(self._passes)

    @property
    def mixup_enabled(self) -> bool:
        """Whether the images are mixed. Under stored targets this is fixed by the store: the
        teacher saw the mixed image and its top-K describes it, so turning mixing off would
        pair unmixed images with mixed-image targets; setting it to a different value raises."""
        return self.cfg.mixing

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:
        if bool(value) != self.cfg.mixing:
            raise ValueError(
                f"store {self.store.path!r}: mixup_enabled={bool(value)} refused: the stored targets were "
                f"computed on {'mixed' if self.cfg.mixing else 'unmixed'} images (the teacher "
                "saw the mixed image), so this cannot change per epoch; drop --mixup-off-epoch or "
                "save a store with the augmentation you want")

    def __iter__(self):
        return self._pass(0)

    def skip_first_batches(self, num_batches: int):
        """One pass (same epoch rules as ``iter``) without its first ``num_batches`` batches,
        which are neither read nor replayed (resuming mid-epoch; use this instead of
        ``accelerate.skip_first_batches``, which rebuilds a plain DataLoader)."""
        _check_skip(num_batches)
        return self._pass(num_batches)

    def _pass(self, skip: int):
        for _, b in self._passes.run(skip):
            targets = SparseTargets(*b.topk)
            yield (b.images, targets, b.labels) if self.return_labels else (b.images, targets)


class TeacherBatches:
    """The teacher-side loader: batches of ``order`` (from ``teacher_order``), pairs never
    split, seeds ``sample_seed(base_seed, epoch, i)``. Yields
    ``(images, indices int64 [B], seeds int64 [B], labels or None, write_mask bool [B])``
    with images built by the same ``ReplayPipeline`` as DistillLoader's (labels stay on the
    CPU, where save-logits compares them)."""

    def __init__(self, dataset, aug_config: AugConfig, order, write_mask, *, epoch: int,
                 base_seed: int, batch_size: int, device="cpu", num_workers: int = 0,
                 num_threads: Optional[int] = None):
        self.pipeline = ReplayPipeline(dataset, aug_config, base_seed)
        self.dataset, self.cfg, self.epoch, self.base_seed = dataset, aug_config, epoch, base_seed
        self.order = np.asarray(order, np.int64)
        self.write_mask = np.asarray(write_mask, bool)
        self.device = torch.device(device)
        self.num_workers, self.num_threads = num_workers, num_threads
        self.num_samples = self.pipeline.num_samples
        self.bounds = teacher_bounds(self.order, epoch, self.num_samples, base_seed,
                                     aug_config.mixing, batch_size)

    def __len__(self):
        return len(self.bounds)

    def __iter__(self):
        batches = [self.order[a:b].tolist() for a, b in self.bounds]
        masks = [self.write_mask[a:b] for a, b in self.bounds]
        pin = self.device.type == "cuda" and torch.cuda.is_available()
        cpu_iter = self.pipeline.cpu_batches(self.epoch, batches, num_workers=self.num_workers,
                                             num_threads=self.num_threads, pin_memory=pin)
        for cpu, mask in zip(cpu_iter, masks):
            b = self.pipeline.device_batch(cpu, self.epoch, self.device, non_blocking=pin)
            yield b.images, cpu["indices"], cpu["seeds"], cpu.get("labels"), torch.from_numpy(mask)
