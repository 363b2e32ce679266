"""make_plan: decode a 4-byte seed into every random augmentation parameter (C++).

The draw order is fixed and documented in csrc/core/plan/plan.cpp and docs/plan.md
("Plan order (plan format version 1)"); ``PLAN_FORMAT_VERSION`` (part of ``AugConfig.fingerprint()``) changes
whenever it does.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from .._ext import _C
from .config import AugConfig, cpp_config


def make_plan(seed: int, size: Tuple[int, int], cfg: AugConfig) -> dict:
    """The augmentation plan of ``seed`` for a source image of ``size = (width, height)``.

    Returns a dict: ``src_size`` (w, h); ``crop`` (x, y, w, h) in source pixels;
    ``interpolation`` of the crop resize; ``flip``; ``ra``: the RandAugment ops that apply,
    in order, each ``{'op', 'arg', 'resample'}`` (arg resolved as timm's level functions,
    translate in output pixels; resample None for non-geometric ops); ``jitter``: None or
    ``{'brightness', 'contrast', 'saturation', 'hue', 'order'}``; ``erase``: boxes
    ``{'x', 'y', 'w', 'h', 'noise_seed'}`` in output pixels; ``mix``: 'none' | 'mixup' |
    'cutmix'; ``lam``: weight of this sample's own image; ``cut_box``: (x0, y0, x1, y1)
    half-open, output pixels, for cutmix else None.

    seed must be in [0, 2**32 - 1] (ValueError / OverflowError naming ``seed``).
    """
    return _C.make_plan(seed, size, cpp_config(cfg))


def plan_device_params(seeds: Sequence[int], sizes, cfg: AugConfig) -> Dict[str, np.ndarray]:
    """The part of many plans the device ops need, packed as numpy arrays (C++, GIL free),
    for callers with the source sizes in hand. ``replay_batch(..., return_params=True)``
    returns the same arrays from the plans it replayed (no second plan, no size read).

    ``sizes``: (N, 2) array-like of (width, height). Returns ``erase_boxes`` int32 (N, B, 4)
    [x, y, w, h] (B = most boxes of any sample; unused rows zero), ``erase_seeds`` int64
    (N, B), ``erase_count`` int32 (N,), ``mix`` int8 (N,) 0 none / 1 mixup / 2 cutmix,
    ``lam`` float32 (N,), ``cut_box`` int32 (N, 4) [x0, y0, x1, y1].
    """
    seeds = np.asarray(seeds)
    sizes = np.asarray(sizes)
    if sizes.ndim != 2 or sizes.shape[1] != 2:
        raise ValueError(f"sizes must be (N, 2) (width, height) pairs, got shape {sizes.shape}")
    return _C.plan_device_params(seeds.reshape(-1), np.ascontiguousarray(sizes[:, 0]),
                                 np.ascontiguousarray(sizes[:, 1]), cpp_config(cfg))


__all__ = ["make_plan", "plan_device_params"]
