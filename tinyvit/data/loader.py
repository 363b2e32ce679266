"""Batches of replayed augmented images, for the teacher (save-logits) and the student.

Both sides build a batch the same way (``_assemble``): sources -> ``replay_batch`` with the
sample seeds (uint8, CPU) -> device -> ``DeviceAugment`` (normalize, RandomErasing,
Mixup/CutMix with the partner, which is always in the batch). Every step is a function of
(dataset image, seed, partner's image, partner's seed) only, never of the batch
composition or position, so the student sees bit-identical images to the ones the teacher
saw when its logits were saved (tested).

With Mixup/CutMix on, the teacher saw the *mixed* image and its stored top-K already
describes it (paper Sec. 3.1: y = T(A(x)), A including CutMix), so the student's target
is the record as stored: no target mixing.
"""
from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader

from ..augment.config import AugConfig
from ..augment.device import DeviceAugment, batch_partners
from ..augment.seeds import PairedSampler, mix_partners, sample_seeds
from ..augment.replay import replay_batch
from ..store import EpochMissingError, LogitStore, RecordMissingError, check_compatible
from ..store.compat import stored_base_seed
from .attest import check_replay

__all__ = ["SparseTargets", "DistillLoader", "ReplayLoader", "TeacherBatches", "teacher_order",
           "EpochError", "LoaderBatchSampler"]


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


class _CpuBatches:
    """Map-style dataset whose item is a whole batch (a list of indices): everything done on
    the CPU (replay, plan params, store read). Runs in DataLoader workers when
    num_workers > 0 (the store and datasets are picklable)."""

    def __init__(self, dataset, cfg: AugConfig, epoch: int, base_seed: int,
                 store: Optional[LogitStore], num_threads: Optional[int]):
        self.dataset, self.cfg, self.epoch, self.base_seed = dataset, cfg, epoch, base_seed
        self.store, self.num_threads = store, num_threads

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, batch):
        idx = np.asarray(batch, np.int64).reshape(-1)
        out = {"indices": torch.from_numpy(idx)}
        if self.store is not None:
            seeds, ti, tp = self.store.read(self.epoch, idx)
            out["topk_indices"], out["topk_probs"] = ti, tp
            seeds_np = seeds.numpy()
        else:
            seeds_np = sample_seeds(self.base_seed, self.epoch, idx).astype(np.int64)
            seeds = torch.from_numpy(seeds_np)
        out["seeds"] = seeds
        sources = [self.dataset[int(i)] for i in idx]
        # One plan per sample: the pixels and the device params come from the same plan.
        out["images"], params = replay_batch(sources, seeds_np.tolist(), self.cfg,
                                             num_threads=self.num_threads, return_params=True)
        out["params"] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        targets = getattr(self.dataset, "targets", None)
        if targets is not None:
            out["labels"] = torch.from_numpy(np.asarray(targets, np.int64)[idx])
        return out


def _assemble(cpu: dict, cfg: AugConfig, aug: DeviceAugment, epoch: int, num_samples: int,
              base_seed: int, device: torch.device, non_blocking: bool):
    """uint8 batch -> device -> normalize, erase, mix. Returns (x, lam, partner)."""
    idx = cpu["indices"].numpy()
    params = {k: v.numpy() for k, v in cpu["params"].items()}
    partner = batch_partners(idx, epoch, num_samples, base_seed) if cfg.mixing else None
    u8 = cpu["images"].to(device, non_blocking=non_blocking)
    x, lam = aug(u8, params, partner)
    return x, lam, partner


class EpochError(RuntimeError):
    """A pass over a loader would silently replay an epoch (``auto_advance=False`` and no
    ``set_epoch`` since the last pass)."""


_OUTPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MEMORY_FORMATS = (torch.contiguous_format, torch.channels_last)


class LoaderBatchSampler:
    """``loader.batch_sampler``: the batches (lists of dataset indices) of ``loader.sampler``,
    like torch's ``BatchSampler``. ``set_epoch`` is the loader's, so timm's epoch hook and
    Lightning (``batch_sampler.set_epoch`` / ``batch_sampler.sampler.set_epoch``) move it."""

    def __init__(self, loader: "ReplayLoader"):
        self._loader = loader

    sampler = property(lambda self: self._loader.sampler)
    batch_size = property(lambda self: self._loader.batch_size)
    drop_last = property(lambda self: self._loader.drop_last)

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)

    def __iter__(self):
        return iter(BatchSampler(self.sampler, self.batch_size, self.drop_last))

    def __len__(self) -> int:
        return len(self._loader)


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
                 auto_advance: bool = True, _store: Optional[LogitStore] = None):
        if not isinstance(aug_config, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(aug_config).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if dtype not in _OUTPUT_DTYPES:
            raise TypeError(f"dtype must be one of {_OUTPUT_DTYPES}, got {dtype!r}")
        if memory_format not in _MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {_MEMORY_FORMATS}, got {memory_format!r}")
        self.dataset, self.cfg = dataset, aug_config
        self.num_samples = len(dataset)
        self.base_seed = int(base_seed)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.num_threads = num_threads
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        self.dtype, self.memory_format = dtype, memory_format
        self.auto_advance = bool(auto_advance)
        self._store = _store
        if sampler is None:
            if aug_config.mixing and self.batch_size % 2:
                raise ValueError(f"batch_size must be even when Mixup/CutMix is on (pairs stay in "
                                 f"one batch), got {batch_size}")
            sampler = PairedSampler(self.num_samples, self.base_seed,
                                    batch_size=self.batch_size if self.batch_size % 2 == 0 else None)
        self._owns_sampler = isinstance(sampler, PairedSampler)
        if self._owns_sampler:
            if sampler._owner is not None and sampler._owner is not self:
                raise ValueError("this PairedSampler already drives another loader's epoch; "
                                 "give each loader its own sampler")
            sampler._owner = self
        self.sampler = sampler
        self.batch_sampler = LoaderBatchSampler(self)
        self._aug = DeviceAugment(aug_config)
        self._mixing = aug_config.mixing
        self.epoch = None
        self._passes = 0           # passes started since the last set_epoch
        self._sampler_epoch = None  # a foreign sampler's .epoch as we last set it
        self.set_epoch(epoch)

    # ---- epoch ----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the trainer epoch (the same call through ``sampler`` / ``batch_sampler``)."""
        if isinstance(epoch, bool) or not hasattr(epoch, "__index__"):
            raise TypeError(f"epoch must be an integer, got {type(epoch).__name__}")
        epoch = int(epoch)
        self._check_epoch(epoch)
        self.epoch = epoch
        self._passes = 0
        if self._owns_sampler:
            self.sampler._set_epoch(self.data_epoch)
        elif hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._sampler_epoch = getattr(self.sampler, "epoch", None)

    def _check_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")

    @property
    def data_epoch(self) -> int:
        """The epoch whose seeds, pairing (and stored records) this pass uses."""
        return self.epoch

    def _begin_pass(self) -> int:
        """Run by ``iter()``: settle this pass's epoch and the world; returns the data epoch."""
        if not self._owns_sampler:
            seen = getattr(self.sampler, "epoch", None)
            if seen is not None and seen != self._sampler_epoch:
                self.set_epoch(seen)  # the trainer set it on the sampler it knows (Lightning)
        if self._passes:
            if not self.auto_advance:
                raise EpochError(
                    f"a second pass over epoch {self.epoch} without set_epoch in between would "
                    "replay the same seeds and targets; call loader.set_epoch(epoch) each epoch "
                    "(or set_epoch(same) to replay on purpose)")
            self.set_epoch(self.epoch + 1)
        self._passes += 1
        self._check_world()
        return self.data_epoch

    def _check_world(self) -> None:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        if self._owns_sampler:
            self.sampler.world()  # resolves now; raises on explicit values that disagree
            return
        world = dist.get_world_size()
        got = getattr(self.sampler, "num_replicas", None)
        if got != world:
            raise ValueError(
                f"world size is {world} but the sampler {type(self.sampler).__name__} shards for "
                f"{got if got is not None else 'no'} replicas: every rank would read the same "
                "samples; use sampler=None (PairedSampler follows the process group) or a "
                "DistributedSampler built after init_process_group")

    # ---- what trainers read ---------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def input_size(self):
        return (3, self.cfg.height, self.cfg.width)

    @property
    def mean(self):
        return tuple(self.cfg.mean)

    @property
    def std(self):
        return tuple(self.cfg.std)

    @property
    def interpolation(self) -> str:
        return self.cfg.interpolation

    def eval_config(self) -> dict:
        """The matching evaluation transform's config (``tinyvit.eval_config``)."""
        from ..integrations.timm import eval_config

        return eval_config(self.cfg)

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
        if value != self._mixing:
            self._mixing = value
            cfg = self.cfg if value else dataclasses.replace(self.cfg, mixup_alpha=0.0,
                                                             cutmix_alpha=0.0)
            # only the device step changes: pixels and plans stay those of self.cfg
            self._aug = DeviceAugment(cfg)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        # the pipeline runs in float32 (bit-exact with the teacher); cast once at the end
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        if self.memory_format is torch.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # ---- iteration ------------------------------------------------------------------------
    def _cpu_iter(self, epoch: int, skip: int = 0):
        cpu = _CpuBatches(self.dataset, self.cfg, epoch, self.base_seed, self._store,
                          self.num_threads if self.num_workers == 0 else (self.num_threads or 1))
        # the order is fixed when the pass starts, with the epoch: a set_epoch during the pass
        # must not give a sampler order of one epoch and partners of another
        order = (self.sampler.indices() if self._owns_sampler
                 else np.fromiter(iter(self.sampler), np.int64))
        n, bs = len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        batches = [order[i:i + bs] for i in range(skip * bs, stop, bs)]
        dl = DataLoader(cpu, sampler=batches, batch_size=None, num_workers=self.num_workers,
                        pin_memory=self.pin_memory and torch.cuda.is_available(),
                        persistent_workers=False,
                        prefetch_factor=2 if self.num_workers > 0 else None)
        return iter(dl)

    def __iter__(self):
        # the epoch is settled at the first next(), as a DataLoader reads its sampler then:
        # trainers (Lightning) create the iterator before they call set_epoch
        return self._pass(0)

    def skip_first_batches(self, num_batches: int):
        """One pass (same epoch rules as ``iter``) without its first ``num_batches`` batches,
        which are neither read nor replayed (resuming mid-epoch; use this instead of
        ``accelerate.skip_first_batches``, which rebuilds a plain DataLoader)."""
        if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 0:
            raise ValueError(f"num_batches must be an int >= 0, got {num_batches!r}")
        return self._pass(num_batches)

    def _pass(self, skip: int):
        yield from self._batches(self._begin_pass(), skip)

    def _batches(self, epoch: int, skip: int = 0):
        aug, mixing = self._aug, self._mixing
        for cpu in self._cpu_iter(epoch, skip):
            x, lam, partner = _assemble(cpu, aug.cfg, aug, epoch, self.num_samples,
                                        self.base_seed, self.device, self.pin_memory)
            labels = cpu.get("labels")
            if labels is not None:
                labels = labels.to(self.device, non_blocking=self.pin_memory)
            if partner is None or not mixing:
                partner = torch.arange(x.shape[0])
            yield self._output(x), labels, lam, partner.to(self.device)


class DistillLoader(ReplayLoader):
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
        if isinstance(store, (str, os.PathLike)):
            store = LogitStore.open(os.fspath(store))
        if not isinstance(store, LogitStore):
            raise TypeError(f"store must be a tinyvit.LogitStore or a path, got {type(store).__name__}")
        self.store = store
        self.check_complete = check_complete
        self.return_labels = return_labels
        self.reuse_epochs = bool(reuse_epochs)
        self.epochs = None
        self._complete = set()
        self._where = f"store {store.path!r}"
        if not isinstance(aug_config, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(aug_config).__name__}")
        check_compatible(store, dataset=dataset, aug_config=aug_config, num_classes=num_classes)
        check_replay(store, dataset, aug_config, epochs=[epoch])  # ReplayMismatchError
        if epochs is not None:
            self.check_epochs(epochs)
            self.epochs = int(epochs)
        base_seed = stored_base_seed(store)
        super().__init__(dataset, aug_config, base_seed=int(base_seed), batch_size=batch_size,
                         num_workers=num_workers, sampler=sampler, device=device, epoch=epoch,
                         drop_last=drop_last, num_threads=num_threads, pin_memory=pin_memory,
                         dtype=dtype, memory_format=memory_format, auto_advance=auto_advance,
                         _store=store)

    def check_epochs(self, epochs: int) -> None:
        """Refuse, before the first step, a run of ``epochs`` trainer epochs this store cannot
        serve: EpochMissingError (too few stored epochs and not ``reuse_epochs``),
        RecordMissingError (an epoch it needs is incomplete)."""
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

    @property
    def data_epoch(self) -> int:
        """The store epoch this pass reads: the trainer epoch, or ``epoch % store.epochs``
        with ``reuse_epochs``."""
        return self.epoch % self.store.epochs if self.reuse_epochs else self.epoch

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
                f"{self._where}: mixup_enabled={bool(value)} refused: the stored targets were "
                f"computed on {'mixed' if self.cfg.mixing else 'unmixed'} images (the teacher "
                "saw the mixed image), so this cannot change per epoch; drop --mixup-off-epoch or "
                "save a store with the augmentation you want")

    def _check_epoch(self, epoch: int) -> None:
        super()._check_epoch(epoch)
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
        if not self.check_complete or epoch in self._complete:
            return
        missing = self.store.missing(epoch)
        if missing.size:
            raise RecordMissingError(
                f"{self._where}: epoch {epoch} is incomplete: {missing.size} of "
                f"{self.store.num_samples} records missing (first: sample {int(missing[0])}); "
                "rerun tinyvit save-logits for this epoch")
        self._complete.add(epoch)

    def _batches(self, epoch: int, skip: int = 0):
        nb = self.pin_memory
        for cpu in self._cpu_iter(epoch, skip):
            x, _, _ = _assemble(cpu, self.cfg, self._aug, epoch, self.num_samples,
                                self.base_seed, self.device, nb)
            targets = SparseTargets(cpu["topk_indices"].to(self.device, non_blocking=nb),
                                    cpu["topk_probs"].to(self.device, non_blocking=nb))
            if self.return_labels:
                labels = cpu.get("labels")
                yield (self._output(x), targets,
                       None if labels is None else labels.to(self.device, non_blocking=nb))
            else:
                yield self._output(x), targets


def teacher_order(todo, epoch: int, num_samples: int, base_seed: int, mixing: bool,
                  rank: int = 0, world_size: int = 1):
    """The teacher's work for one epoch on one rank: ``(order, write_mask)``.

    ``todo``: samples whose record is missing. Every missing sample must be seen together
    with its Mixup partner (it mixes with the partner's image even when the partner's record
    exists), so the order lists whole pairs ``key, partner`` with key = min(i, partner(i));
    pairs are dealt to ranks by ``key % world_size`` (disjoint writes for any world size).
    ``write_mask[j]``: ``order[j]`` is missing and written by this rank (a sample in two
    missing pairs cannot happen: pairs are disjoint).
    """
    todo = np.unique(np.asarray(todo, np.int64))
    if not mixing or todo.size == 0:
        mine = todo[todo % world_size == rank]
        return mine, np.ones(mine.size, bool)
    part = mix_partners(epoch, todo, num_samples, base_seed).astype(np.int64)
    keys = np.unique(np.minimum(todo, part))
    keys = keys[keys % world_size == rank]
    kp = mix_partners(epoch, keys, num_samples, base_seed).astype(np.int64)
    pairs = np.stack([keys, kp], 1)
    keep = np.ones(pairs.shape, bool)
    keep[kp == keys, 1] = False  # an odd N's lone sample is its own partner: listed once
    order = pairs[keep]
    missing = np.zeros(num_samples, bool)
    missing[todo] = True
    return order, missing[order]


class TeacherBatches:
    """The teacher-side loader: batches of ``order`` (from ``teacher_order``), pairs never
    split, seeds ``sample_seed(base_seed, epoch, i)``. Yields
    ``(images, indices int64 [B], seeds int64 [B], labels or None, write_mask bool [B])``
    with images built exactly as DistillLoader builds them."""

    def __init__(self, dataset, aug_config: AugConfig, order, write_mask, *, epoch: int,
                 base_seed: int, batch_size: int, device="cpu", num_workers: int = 0,
                 num_threads: Optional[int] = None):
        self.dataset, self.cfg, self.epoch, self.base_seed = dataset, aug_config, epoch, base_seed
        self.order = np.asarray(order, np.int64)
        self.write_mask = np.asarray(write_mask, bool)
        self.device = torch.device(device)
        self.num_workers, self.num_threads = num_workers, num_threads
        self._aug = DeviceAugment(aug_config)
        self.num_samples = len(dataset)
        # batch boundaries on pair boundaries: a pair is (key, partner) with key < partner
        n = len(self.order)
        if aug_config.mixing and n:
            part = mix_partners(epoch, self.order, self.num_samples, base_seed).astype(np.int64)
            nxt = np.append(self.order[1:], -1)
            pair_start = (nxt == part) & (self.order < nxt)
        else:
            pair_start = np.zeros(n, bool)
        bounds, start, i = [], 0, 0
        while i < n:
            step = 2 if pair_start[i] else 1
            if i + step - start > batch_size and i > start:
                bounds.append((start, i))
                start = i
            i += step
        if start < n:
            bounds.append((start, n))
        self.bounds = bounds

    def __len__(self):
        return len(self.bounds)

    def __iter__(self):
        cpu_ds = _CpuBatches(self.dataset, self.cfg, self.epoch, self.base_seed, None,
                             self.num_threads if self.num_workers == 0 else (self.num_threads or 1))
        batches = [self.order[a:b].tolist() for a, b in self.bounds]
        masks = [self.write_mask[a:b] for a, b in self.bounds]
        pin = self.device.type == "cuda" and torch.cuda.is_available()
        dl = DataLoader(cpu_ds, sampler=batches, batch_size=None, num_workers=self.num_workers,
                        pin_memory=pin, prefetch_factor=2 if self.num_workers > 0 else None)
        for cpu, mask in zip(dl, masks):
            x, _, _ = _assemble(cpu, self.cfg, self._aug, self.epoch, self.num_samples,
                                self.base_seed, self.device, pin)
            labels = cpu.get("labels")
            yield x, cpu["indices"], cpu["seeds"], labels, torch.from_numpy(mask)
