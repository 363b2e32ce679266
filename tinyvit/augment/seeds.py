"""Per-sample seeds and Mixup/CutMix partners (pure functions; the sampler that keeps
partners together, ``PairedSampler``, is traversal order and lives in ``tinyvit.data.sampler``).

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

import numpy as np

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


__all__ = ["sample_seed", "sample_seeds", "mix_partner", "mix_partners", "pair_permutation"]
