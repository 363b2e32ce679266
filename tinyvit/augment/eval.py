"""The one evaluation transform: what ``eval_config`` describes, applied to a source.

timm's eval transform (``create_transform(**eval_config, is_training=False)``, crop_mode
'center'), written once and used by ``tinyvit train``'s evaluation (``jobs/evaluate.py``), by
``tinyvit.eval_transform`` and the Lightning data module:

1. the source to RGB the way training converts it (``augment/pil.py``: arrays, any Pillow mode);
2. resize (Pillow, the configured filter) so that the image covers ``size / crop_pct``:
   square sizes as torchvision's ``Resize(int)`` (short side to ``floor(S / crop_pct)``, long side
   truncated), non-square as timm's ``ResizeKeepRatio`` (the side that fits first to its
   target, the other rounded); skipped when the size already matches (as torchvision does);
3. centre crop to (H, W) with torchvision's offsets (``round((n - H) / 2)``);
4. (``EvalTransform`` only) ``ToTensor`` + ``Normalize(mean, std)``.

Images smaller than the crop are upsampled by step 2 (never padded: ``crop_pct <= 1``). When no
resize is needed an array source never touches Pillow, so the pixels cannot depend on Pillow
vs pillow-simd. ``tests/test_eval_transform.py`` checks it against timm, numerically.
"""
from __future__ import annotations

import io
import math
import numbers
import os
from typing import Tuple

import numpy as np
import torch

from .config import EVAL_CROP_MODES, EVAL_INTERPOLATIONS, AugConfig, eval_config
from .pil import array_to_rgb, to_rgb

__all__ = ["resolve_eval_config", "eval_geometry", "eval_image", "EvalTransform"]


def resolve_eval_config(spec) -> dict:
    """An eval config (timm keys) from an ``eval_config`` dict, an AugConfig (its default
    ``eval_config()``) or an int ``S``: the whole image resized to S x S (crop_pct 1.0, bicubic;
    the fixed-size datasets' evaluation, e.g. the demo's 28 x 28 Fashion-MNIST)."""
    if isinstance(spec, AugConfig):
        return eval_config(spec)
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"eval size must be >= 1, got {spec}")
        return eval_config(AugConfig(img_size=int(spec)), crop_pct=1.0)
    if not isinstance(spec, dict):
        raise TypeError(f"eval config must be an eval_config dict, an AugConfig or an int size, "
                        f"got {type(spec).__name__}")
    missing = [k for k in ("input_size", "interpolation", "crop_pct") if k not in spec]
    if missing:
        raise ValueError(f"eval config: missing key(s) {missing} (build it with eval_config)")
    size = spec["input_size"]
    if not (isinstance(size, (tuple, list)) and len(size) == 3
            and all(isinstance(v, numbers.Integral) and v >= 1 for v in size)):
        raise ValueError(f"eval config: input_size must be (C, H, W) positive ints, got {size!r}")
    if spec["interpolation"] not in EVAL_INTERPOLATIONS:
        raise ValueError(f"eval config: interpolation must be one of {EVAL_INTERPOLATIONS}, "
                         f"got {spec['interpolation']!r}")
    c = spec["crop_pct"]
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0 < c <= 1:
        raise ValueError(f"eval config: crop_pct must be a number in (0, 1], got {c!r}")
    if spec.get("crop_mode", "center") not in EVAL_CROP_MODES:
        raise ValueError(f"eval config: crop_mode must be one of {EVAL_CROP_MODES}, "
                         f"got {spec['crop_mode']!r}")
    return dict(spec)


def eval_geometry(src_hw: Tuple[int, int], ecfg: dict):
    """``((resized_h, resized_w), (top, left))`` of the eval transform for a source of
    ``src_hw`` = (h, w): integer arithmetic exactly as torchvision / timm compute it."""
    h, w = (int(v) for v in src_hw)
    out_h, out_w = (int(v) for v in ecfg["input_size"][1:])
    crop_pct = float(ecfg["crop_pct"])
    sh, sw = math.floor(out_h / crop_pct), math.floor(out_w / crop_pct)
    if sh == sw:  # torchvision Resize(int): the short side to sh, the long side truncated
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(sh * long / short)
        nh, nw = (new_long, sh) if w <= h else (sh, new_long)
    else:  # timm ResizeKeepRatio(longest=0): scale by the smaller of the two ratios, round
        ratio = min(h / sh, w / sw)
        nh, nw = round(h * 1.0 / ratio), round(w * 1.0 / ratio)
    if nh < out_h or nw < out_w:  # pragma: no cover - impossible for crop_pct <= 1
        raise AssertionError(f"eval resize {nh}x{nw} does not cover the crop {out_h}x{out_w}")
    return (nh, nw), (int(round((nh - out_h) / 2.0)), int(round((nw - out_w) / 2.0)))


def _pil_rgb(src):
    from PIL import Image

    if isinstance(src, Image.Image):
        return to_rgb(src)
    if isinstance(src, np.ndarray):
        return Image.fromarray(array_to_rgb(src), "RGB")
    if isinstance(src, (bytes, bytearray, memoryview)):  # e.g. TarShards samples
        return to_rgb(Image.open(io.BytesIO(bytes(src))))
    return to_rgb(Image.open(os.fspath(src)))


def eval_image(src, spec) -> np.ndarray:
    """uint8 [H, W, 3]: the eval transform of ``src`` (array, Pillow image, encoded bytes or
    path) for ``spec`` (see :func:`resolve_eval_config`), before ToTensor / Normalize."""
    ecfg = resolve_eval_config(spec)
    out_h, out_w = (int(v) for v in ecfg["input_size"][1:])
    if isinstance(src, np.ndarray):
        rgb = array_to_rgb(src)
        (nh, nw), (top, left) = eval_geometry(rgb.shape[:2], ecfg)
        if (nh, nw) == rgb.shape[:2]:  # no resize: numpy only, no Pillow on the path
            return np.array(rgb[top:top + out_h, left:left + out_w])  # a copy: never a view of the source
    from PIL import Image

    img = _pil_rgb(src)
    (nh, nw), (top, left) = eval_geometry((img.height, img.width), ecfg)
    if (nh, nw) != (img.height, img.width):
        resample = getattr(Image.Resampling, ecfg["interpolation"].upper())
        img = img.resize((nw, nh), resample)
    return np.array(np.asarray(img, np.uint8)[top:top + out_h, left:left + out_w])  # writable copy


class EvalTransform:
    """``transform(img) -> float32 [3, H, W]`` normalised tensor: :func:`eval_image`, then
    timm's ``ToTensor`` + ``Normalize(mean, std)``. ``config`` is the eval config (timm keys)."""

    def __init__(self, spec):
        self.config = resolve_eval_config(spec)
        if "mean" not in self.config or "std" not in self.config:
            raise ValueError("EvalTransform: the eval config needs mean and std (build it with eval_config)")
        self._mean = torch.tensor(self.config["mean"], dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(self.config["std"], dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img) -> torch.Tensor:
        x = torch.from_numpy(eval_image(img, self.config)).permute(2, 0, 1).float().div(255)
        return (x - self._mean) / self._std

    def __repr__(self) -> str:
        return f"EvalTransform({self.config!r})"
