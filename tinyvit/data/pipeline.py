"""The replay pipeline: the one place where a batch of training images is assembled.

    (epoch, indices) -> seeds (the store's records, or sample_seed(base_seed, epoch, i))
      -> sources -> replay_batch(return_params=True): uint8 pixels AND the device params,
         from ONE plan per sample -> store top-k, labels                    [CPU stage]
      -> partners (batch_partners) -> to device -> DeviceAugment (normalize, RandomErasing,
         Mixup/CutMix) -> output dtype and memory format                      [device stage]

Every step is a function of (dataset image, seed, partner's image, partner's seed) only, never
of the batch composition or position, so the student loaders (``DistillLoader``,
``ReplayLoader``), the teacher pass (``TeacherBatches``), ``tinyvit show`` and the replay
attestation (its uint8 stage: ``replay_pixels``) all see the same bits (tested).

The CPU stage runs in DataLoader workers when ``num_workers > 0``: a ``ReplayPipeline`` and its
``EpochBatches`` pickle (the store and the datasets do). The pipeline itself always computes
in float32 (what is bit-exact with the teacher); the output dtype cast is its last step.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..augment.config import AugConfig
from ..augment.device import DeviceAugment, batch_partners
from ..augment.replay import replay_batch
from ..augment.seeds import sample_seeds

__all__ = ["ReplayPipeline", "EpochBatches", "DeviceBatch", "replay_pixels"]


def _sources(dataset, idx):
    return [dataset[int(i)] for i in idx]


def _names(dataset, idx):
    """What replay errors name per sample (a shard and key, not ``<bytes len=...>``), for
    datasets that say (``source_name``); None lets replay name path sources itself."""
    name_of = getattr(dataset, "source_name", None)
    return None if name_of is None else [name_of(int(i)) for i in idx]


def replay_pixels(dataset, cfg: AugConfig, indices, seeds, *, num_threads: int = 1) -> torch.Tensor:
    """The uint8 stage alone: the replayed pixels (uint8 [B, H, W, 3], the bytes the loaders
    feed the device stage) of dataset ``indices`` with their ``seeds``, on ``num_threads``
    threads (1 by default: what the replay attestation digests)."""
    return replay_batch(_sources(dataset, indices), [int(s) for s in seeds], cfg,
                        num_threads=num_threads, names=_names(dataset, indices))


class DeviceBatch(NamedTuple):
    """A batch after the device stage, on the device: ``images`` [B, 3, H, W] (the requested
    dtype / memory format), ``lam`` [B] own-image weights, ``partner`` int64 [B] batch
    positions of each sample's mix partner (own position when not mixing), ``labels`` int64
    [B] or None, ``topk`` (indices int64 [B, K], probs float32 [B, K]) or None (no store)."""

    images: torch.Tensor
    lam: torch.Tensor
    partner: torch.Tensor
    labels: Optional[torch.Tensor]
    topk: Optional[Tuple[torch.Tensor, torch.Tensor]]


class ReplayPipeline:
    """seed -> plan -> pixels + device params -> (store read, labels) | partners -> device ->
    normalize, erase, mix -> dtype, memory format. ``store``: seeds and top-k come from its
    records (``store.read``); None: seeds are ``sample_seed(base_seed, epoch, i)``."""

    def __init__(self, dataset, cfg: AugConfig, base_seed: int, store=None):
        if not isinstance(cfg, AugConfig):
            raise TypeError(f"aug_config must be a tinyvit.AugConfig, got {type(cfg).__name__}")
        self.dataset, self.cfg, self.base_seed, self.store = dataset, cfg, int(base_seed), store
        self.num_samples = len(dataset)
        self._mixed = DeviceAugment(cfg)
        # mixing switched off (ReplayLoader.mixup_enabled = False): only the device step
        # changes; pixels, crops and erasing stay those of cfg's plans
        self._unmixed = (DeviceAugment(dataclasses.replace(cfg, mixup_alpha=0.0, cutmix_alpha=0.0))
                         if cfg.mixing else self._mixed)

    # ---- CPU stage ------------------------------------------------------------------------
    def cpu_batch(self, epoch: int, indices, num_threads: Optional[int] = None) -> dict:
        """One batch, everything the CPU does: ``indices``, ``seeds`` (int64), ``images``
        (uint8 [B, H, W, 3]), ``params`` (the same plans' device arrays), ``topk_indices`` /
        ``topk_probs`` (with a store), ``labels`` (when the dataset has ``targets``)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        out = {"indices": torch.from_numpy(idx)}
        if self.store is not None:
            seeds, out["topk_indices"], out["topk_probs"] = self.store.read(epoch, idx)
            seeds_np = seeds.numpy()
        else:
            seeds_np = sample_seeds(self.base_seed, epoch, idx).astype(np.int64)
            seeds = torch.from_numpy(seeds_np)
        out["seeds"] = seeds
        # One plan per sample: the pixels and the device params come from the same plan.
        out["images"], params = replay_batch(_sources(self.dataset, idx), seeds_np.tolist(),
                                             self.cfg, num_threads=num_threads, return_params=True,
                                             names=_names(self.dataset, idx))
        out["params"] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        targets = getattr(self.dataset, "targets", None)
        if targets is not None:
            out["labels"] = torch.from_numpy(np.asarray(targets, np.int64)[idx])
        return out

    def pixels(self, indices, seeds, num_threads: int = 1) -> torch.Tensor:
        """The uint8 stage of given ``(indices, seeds)`` (``replay_pixels``)."""
        return replay_pixels(self.dataset, self.cfg, indices, seeds, num_threads=num_threads)

    def cpu_batches(self, epoch: int, batches, *, num_workers: int = 0,
                    num_threads: Optional[int] = None, pin_memory: bool = False):
        """Iterator of ``cpu_batch`` dicts over ``batches`` (index arrays), in order, in
        ``num_workers`` DataLoader worker processes (0: here, replay on a C++ pool of
        ``num_threads``; in a worker one thread unless ``num_threads``)."""
        threads = num_threads if num_workers == 0 else (num_threads or 1)
        dl = DataLoader(EpochBatches(self, epoch, threads), sampler=batches, batch_size=None,
                        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False,
                        prefetch_factor=2 if num_workers > 0 else None)
        return iter(dl)

    # ---- device stage ---------------------------------------------------------------------
    def device_batch(self, cpu: dict, epoch: int, device, *, mixing: bool = True,
                     non_blocking: bool = False, dtype: torch.dtype = torch.float32,
                     memory_format: torch.memory_format = torch.contiguous_format) -> DeviceBatch:
        """uint8 batch -> device -> normalize, erase, mix (when ``mixing`` and the config
        mixes; partners must be in the batch, ValueError naming the sample otherwise) -> cast
        to ``dtype`` (after the float32 pipeline) in ``memory_format``."""
        mixing = mixing and self.cfg.mixing
        aug = self._mixed if mixing else self._unmixed
        params = {k: v.numpy() for k, v in cpu["params"].items()}
        partner = batch_partners(cpu["indices"].numpy(), epoch, self.num_samples,
                                 self.base_seed) if mixing else None
        x, lam = aug(cpu["images"].to(device, non_blocking=non_blocking), params, partner)
        if x.dtype != dtype:
            x = x.to(dtype)
        if memory_format is torch.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if partner is None:
            partner = torch.arange(x.shape[0])

        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        topk = (move(cpu["topk_indices"]), move(cpu["topk_probs"])) if "topk_indices" in cpu else None
        return DeviceBatch(x, lam, partner.to(device), move(cpu.get("labels")), topk)


class EpochBatches:
    """Map-style dataset for a DataLoader whose item is a whole batch: ``ds[indices]`` is
    ``pipeline.cpu_batch(epoch, indices, num_threads)``. Pickles into worker processes."""

    def __init__(self, pipeline: ReplayPipeline, epoch: int, num_threads: Optional[int]):
        self.pipeline, self.epoch, self.num_threads = pipeline, epoch, num_threads

    def __len__(self):
        return self.pipeline.num_samples

    def __getitem__(self, batch):
        return self.pipeline.cpu_batch(self.epoch, batch, self.num_threads)
