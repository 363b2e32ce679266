"""Per-sample seeds, Mixup/CutMix partners and a sampler that keeps partners together.

Everything here is a pure function of (base_seed, epoch, index, num_samples), never of
the sampler, rank or world size, so a student run replays the teacher's mixing exactly.

* ``sample_seed(base_seed, epoch, index)``: output number ``index`` of
  PCG32(base_seed << 32 | epoch, kStreamSeeds) (O(log index) jump-ahead). This is the
  4-byte seed the logit store saves.
* Pairing: an epoch permutation pi of [0, N) (keyed 8-round Feistel network with cycle
  walking, keys from PCG32(base_seed << 32 | epoch, kStreamPairing)); positions (2k, 2k+1)
  are partners. With odd N the sample at position N-1 is its own partner (mixing with
  itself leaves it unchanged).
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Sampler

from .._ext import _C


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """Augmentation seed (uint32) of dataset sample ``index`` in ``epoch``."""
    _check_index(index, "index")
    return int(_C.sample_seeds(base_seed, epoch, np.array([index], dtype=np.uint64))[0])


def sample_seeds(base_seed: int, epoch: int, indices) -> np.ndarray:
    """Vectorised ``sample_seed``: uint32 array, one seed per index."""
    return _C.sample_seeds(base_seed, epoch, np.asarray(indices).reshape(-1))


def mix_partner(epoch: int, index: int, num_samples: int, base_seed: int) -> int:
    """Dataset index that sample ``index`` mixes with in ``epoch`` (an involution)."""
    _check_index(index, "index")
    return int(_C.mix_partners(epoch, np.array([index], dtype=np.uint64), num_samples,
                               base_seed)[0])


def mix_partners(epoch: int, indices, num_samples: int, base_seed: int) -> np.ndarray:
    """Vectorised ``mix_partner`` (int64 array)."""
    return _C.mix_partners(epoch, np.asarray(indices).reshape(-1), num_samples, base_seed)


def pair_permutation(epoch: int, num_samples: int, base_seed: int, positions=None) -> np.ndarray:
    """The epoch's pairing permutation (position -> dataset index), all of it or at
    ``positions``."""
    if positions is None:
        positions = np.arange(num_samples, dtype=np.int64)
    return _C.pair_permutation(epoch, np.asarray(positions).reshape(-1), num_samples, base_seed)


def _check_index(index, name):
    if isinstance(index, bool) or not hasattr(index, "__index__"):
        raise TypeError(f"{name} must be an integer, got {type(index).__name__}")
    if int(index) < 0:
        raise ValueError(f"{name} must be >= 0, got {int(index)}")


class PairedSampler(Sampler):
    """Distributed sampler that yields both members of every Mixup/CutMix pair back to back.

    Pair slots k = 0 .. ceil(N/2) - 1 of the epoch permutation are dealt to ranks round-robin
    (slot k to rank k % world_size, like DistributedSampler); a slot yields
    ``pi(2k), pi(2k+1)`` (an odd N's last slot yields its lone sample twice, as a pair with
    itself). So with an even batch size every batch holds whole pairs and mixing needs no
    extra decode, and partners are identical under any world size (they depend only on
    (base_seed, epoch, N)). Unless drop_last, slots are padded by wrapping around so every
    rank gets the same number (DistributedSampler's rule, applied to pairs).

    World size and rank: when ``num_replicas`` / ``rank`` are not given they are read from
    torch.distributed every time the order is computed (``indices()``, ``__iter__``,
    ``__len__``), not frozen at construction, so a sampler (or loader) built before
    ``init_process_group`` -- Lightning, Accelerate -- shards correctly once the group
    exists. Explicit values that disagree with an initialised process group raise
    ValueError (every rank would otherwise read the same shard).

    Call ``set_epoch(e)`` before each epoch. ``len()`` counts samples yielded on this rank.
    """

    def __init__(self, num_samples: int, base_seed: int, batch_size: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 drop_last: bool = False):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
        if batch_size is not None and (batch_size < 2 or batch_size % 2):
            raise ValueError(f"batch_size must be even (pairs stay in one batch), got {batch_size}")
        if num_replicas is not None and num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if num_replicas is not None and rank is not None and not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas - 1}], got {rank}")
        if not 0 <= base_seed <= 0xFFFFFFFF:
            raise ValueError(f"base_seed must be in [0, 2**32 - 1], got {base_seed}")
        self.num_samples_total = num_samples
        self.base_seed = base_seed
        self.batch_size = batch_size
        self._replicas_arg, self._rank_arg = num_replicas, rank
        self.drop_last = drop_last
        self.epoch = 0
        self.num_pairs = (num_samples + 1) // 2
        # a DistillLoader owning this sampler: set_epoch goes through it, so that
        # ``loader.sampler.set_epoch(e)`` (Lightning, timm) moves the store epoch too
        self._owner = None

    def world(self):
        """``(num_replicas, rank)`` now: the explicit values, else torch.distributed's."""
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if ready else 1
        grank = dist.get_rank() if ready else 0
        n = world if self._replicas_arg is None else self._replicas_arg
        r = grank if self._rank_arg is None else self._rank_arg
        if ready and ((self._replicas_arg is not None and n != world)
                      or (self._rank_arg is not None and r != grank)):
            raise ValueError(f"PairedSampler was given num_replicas={self._replicas_arg}, "
                             f"rank={self._rank_arg} but the process group has world size "
                             f"{world}, rank {grank}; omit them to follow the process group")
        if not 0 <= r < n:
            raise ValueError(f"rank must be in [0, {n - 1}], got {r}")
        return n, r

    @property
    def num_replicas(self) -> int:
        return self.world()[0]

    @property
    def rank(self) -> int:
        return self.world()[1]

    def _pairs_per_rank(self, n: int) -> int:
        return self.num_pairs // n if self.drop_last else math.ceil(self.num_pairs / n)

    @property
    def pairs_per_rank(self) -> int:
        return self._pairs_per_rank(self.world()[0])

    def set_epoch(self, epoch: int) -> None:
        if self._owner is not None:
            self._owner.set_epoch(epoch)  # calls back _set_epoch with the store's epoch
        else:
            self._set_epoch(epoch)

    def _set_epoch(self, epoch: int) -> None:
        epoch = int(epoch)
        if not 0 <= epoch <= 0xFFFFFFFF:
            raise ValueError(f"epoch must be in [0, 2**32 - 1], got {epoch}")
        self.epoch = epoch

    def slots(self) -> np.ndarray:
        """Pair slots of this rank, in order."""
        n, r = self.world()
        k = np.arange(self._pairs_per_rank(n), dtype=np.int64) * n + r
        return k % self.num_pairs

    def indices(self) -> np.ndarray:
        """The dataset indices this rank yields this epoch (int64)."""
        slots = self.slots()
        first = 2 * slots
        second = np.where(first + 1 < self.num_samples_total, first + 1, first)
        positions = np.stack([first, second], axis=1).reshape(-1)
        if positions.size == 0:
            return positions
        return pair_permutation(self.epoch, self.num_samples_total, self.base_seed, positions)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return 2 * self.pairs_per_rank


__all__ = ["sample_seed", "sample_seeds", "mix_partner", "mix_partners", "pair_permutation",
           "PairedSampler"]
