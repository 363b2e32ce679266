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

import os
from typing import Iterator, NamedTuple, Optional

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader

from ..augment.config import AugConfig
from ..augment.device import DeviceAugment, batch_partners
from ..augment.seeds import PairedSampler, mix_partners, sample_seeds
from ..augment.plan import plan_device_params
from ..augment.replay import replay_batch
from ..store import EpochMissingError, LogitStore, RecordMissingError, check_compatible
from ..store.compat import stored_base_seed
from ..store.attest import check_replay
from .sources import source_sizes

__all__ = ["SparseTargets", "DistillLoader", "ReplayLoader", "TeacherBatches", "teacher_order"]


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


class ReplayLoader:
    """Iterates ``(images, labels, lam, partner)`` for one epoch, images replayed from
    ``sample_seed(base_seed, epoch, i)`` (no store). For training without a store (hard
    labels, online teacher): ``labels`` int64 [B] (None when the dataset has none), ``lam``
    [B] own-image weights and ``partner`` batch positions, to mix targets with
    ``tinyvit.mix_targets``. Same sampler/epoch rules as DistillLoader."""

    def __init__(self, dataset, aug_config: AugConfig, *, base_seed: int = 0, batch_size: int = 64,
                 num_workers: int = 0, sampler=None, device="cpu", epoch: int = 0,
                 drop_last: bool = False, num_threads: Optional[int] = None,
                 pin_memory: Optional[bool] = None, _store: Optional[LogitStore] = None):
        if not isinstance(aug_config, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(aug_config).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.cfg = dataset, aug_config
        self.num_samples = len(dataset)
        self.base_seed = int(base_seed)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.num_threads = num_threads
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        self._store = _store
        if sampler is None:
            if aug_config.mixing and self.batch_size % 2:
                raise ValueError(f"batch_size must be even when Mixup/CutMix is on (pairs stay in "
                                 f"one batch), got {batch_size}")
            sampler = PairedSampler(self.num_samples, self.base_seed,
                                    batch_size=self.batch_size if self.batch_size % 2 == 0 else None)
        self.sampler = sampler
        self._aug = DeviceAugment(aug_config)
        self.epoch = None
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        epoch = int(epoch)
        self._check_epoch(epoch)
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _check_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _cpu_iter(self):
        cpu = _CpuBatches(self.dataset, self.cfg, self.epoch, self.base_seed, self._store,
                          self.num_threads if self.num_workers == 0 else (self.num_threads or 1))
        batches = BatchSampler(self.sampler, self.batch_size, self.drop_last)
        dl = DataLoader(cpu, sampler=batches, batch_size=None, num_workers=self.num_workers,
                        pin_memory=self.pin_memory and torch.cuda.is_available(),
                        persistent_workers=False,
                        prefetch_factor=2 if self.num_workers > 0 else None)
        return iter(dl)

    def __iter__(self):
        for cpu in self._cpu_iter():
            x, lam, partner = _assemble(cpu, self.cfg, self._aug, self.epoch, self.num_samples,
                                        self.base_seed, self.device, self.pin_memory)
            labels = cpu.get("labels")
            if labels is not None:
                labels = labels.to(self.device, non_blocking=self.pin_memory)
            if partner is None:
                partner = torch.arange(x.shape[0])
            yield x, labels, lam, partner.to(self.device)


class DistillLoader(ReplayLoader):
    """The drop-in student loader: yields ``(images, targets)`` per batch.

    images: float [B, 3, H, W] on ``device``, normalised, erased and mixed exactly as the
    teacher saw them; targets: ``SparseTargets(indices [B, K] int64, probs [B, K] float32)``
    read from ``store`` (seeds come from the store too). ``return_labels=True`` yields
    ``(images, targets, labels)``.

    sampler: None -> ``PairedSampler`` (DDP-aware: world size / rank from torch.distributed;
    keeps Mixup/CutMix partners in one batch, so batch_size must be even when mixing). Any
    sampler works without mixing (e.g. ``DistributedSampler``); with mixing every partner
    must be in the batch (ValueError naming the sample otherwise). ``set_epoch(e)`` sets
    the store epoch and the sampler's epoch.

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
                 return_labels: bool = False, check_complete: bool = True):
        if isinstance(store, (str, os.PathLike)):
            store = LogitStore.open(os.fspath(store))
        if not isinstance(store, LogitStore):
            raise TypeError(f"store must be a tinyvit.LogitStore or a path, got {type(store).__name__}")
        self.store = store
        self.check_complete = check_complete
        self.return_labels = return_labels
        where = f"store {store.path!r}"
        self._where = where
        if not isinstance(aug_config, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(aug_config).__name__}")
        check_compatible(store, dataset=dataset, aug_config=aug_config, num_classes=num_classes)
        check_replay(store, dataset, aug_config, epochs=[epoch])  # ReplayMismatchError
        base_seed = stored_base_seed(store)
        super().__init__(dataset, aug_config, base_seed=int(base_seed), batch_size=batch_size,
                         num_workers=num_workers, sampler=sampler, device=device, epoch=epoch,
                         drop_last=drop_last, num_threads=num_threads, pin_memory=pin_memory,
                         _store=store)

    def _check_epoch(self, epoch: int) -> None:
        super()._check_epoch(epoch)
        if epoch >= self.store.epochs:
            raise EpochMissingError(f"{self._where}: epoch {epoch} not in the store (it has "
                                    f"{self.store.epochs} epochs: 0..{self.store.epochs - 1})")
        if self.check_complete:
            missing = self.store.missing(epoch)
            if missing.size:
                raise RecordMissingError(
                    f"{self._where}: epoch {epoch} is incomplete: {missing.size} of "
                    f"{self.store.num_samples} records missing (first: sample {int(missing[0])}); "
                    "rerun tinyvit save-logits for this epoch")

    def __iter__(self):
        for cpu in self._cpu_iter():
            x, _, _ = _assemble(cpu, self.cfg, self._aug, self.epoch, self.num_samples,
                                self.base_seed, self.device, self.pin_memory)
            nb = self.pin_memory
            targets = SparseTargets(cpu["topk_indices"].to(self.device, non_blocking=nb),
                                    cpu["topk_probs"].to(self.device, non_blocking=nb))
            if self.return_labels:
                labels = cpu.get("labels")
                yield x, targets, None if labels is None else labels.to(self.device, non_blocking=nb)
            else:
                yield x, targets


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
