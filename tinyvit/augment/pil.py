"""The Pillow path of the pixel pipeline: apply a plan (tinyvit.augment.plan.make_plan) with PIL ops.

Serves sources the C++ fast path does not take (PNG, WebP, ..., PIL images, arrays).
It follows timm's RandAugment / transforms exactly as timm calls Pillow, so its output
is whatever this Pillow (or pillow-simd) computes: deterministic for a given Pillow
build, but not guaranteed bit-identical to the C++ path (see docs/pixels.md, "C++ vs Pillow path").
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, deterministically.

    Alpha is dropped (as torchvision/timm loaders' ``convert("RGB")``), palettes are
    expanded, CMYK uses Pillow's conversion, and high bit-depth greyscale (I;16*, I) keeps
    its top 8 of 16 bits (``v >> 8``) instead of Pillow's clipping; float (F) is taken
    as 0..255 and rounded.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.int64)
        a = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(np.repeat(a[..., None], 3, axis=2), "RGB")
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(np.floor(np.nan_to_num(a) + 0.5), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(a[..., None], 3, axis=2), "RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def array_to_rgb(a) -> np.ndarray:
    """uint8 (H, W, 3) from an array: (H, W) grey, (H, W, 1|3|4); uint8, uint16 (top 8 bits),
    bool (0/255) or float in [0, 1] (scaled by 255, rounded)."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"array source must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                         f"got shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.floor(np.nan_to_num(a.astype(np.float64)) * 255.0 + 0.5), 0, 255)
        a = a.astype(np.uint8)
    else:
        raise ValueError(f"array source dtype must be uint8, uint16, bool or float, got {a.dtype}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def _affine(img, matrix, resample, fill):
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=resample,
                         fillcolor=fill)


def _solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def _posterize(img, bits):
    # A LUT rather than ImageOps.posterize: Pillow >= 11 rejects bits = 0, which timm's
    # PosterizeIncreasing produces at magnitude 10 (older Pillow cleared every bit).
    if bits >= 8:
        return img
    mask = 0xFF & ~((1 << (8 - max(0, bits))) - 1)
    return img.point([i & mask for i in range(256)] * 3)


def apply_ra_step(img: Image.Image, op: str, arg: float, resample: str | None, fill) -> Image.Image:
    """One RandAugment op with the plan's resolved argument, as timm's op functions do."""
    r = _RESAMPLE[resample] if resample else Image.Resampling.NEAREST
    fill = tuple(int(v) for v in fill)
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    if op == "Invert":
        return ImageOps.invert(img)
    if op == "Rotate":
        return img.rotate(arg, resample=r, fillcolor=fill)
    if op in ("Posterize", "PosterizeIncreasing"):
        return _posterize(img, int(round(arg)))
    if op in ("Solarize", "SolarizeIncreasing"):
        return ImageOps.solarize(img, arg)
    if op == "SolarizeAdd":
        return _solarize_add(img, int(round(arg)))
    if op in ("Color", "ColorIncreasing"):
        return ImageEnhance.Color(img).enhance(arg)
    if op in ("Contrast", "ContrastIncreasing"):
        return ImageEnhance.Contrast(img).enhance(arg)
    if op in ("Brightness", "BrightnessIncreasing"):
        return ImageEnhance.Brightness(img).enhance(arg)
    if op in ("Sharpness", "SharpnessIncreasing"):
        return ImageEnhance.Sharpness(img).enhance(arg)
    if op == "ShearX":
        return _affine(img, (1, arg, 0, 0, 1, 0), r, fill)
    if op == "ShearY":
        return _affine(img, (1, 0, 0, arg, 1, 0), r, fill)
    if op == "TranslateXRel":
        return _affine(img, (1, 0, arg, 0, 1, 0), r, fill)
    if op == "TranslateYRel":
        return _affine(img, (1, 0, 0, 0, 1, arg), r, fill)
    raise ValueError(f"unknown RandAugment op {op!r}")


def _adjust_hue(img, hue):
    # torchvision's PIL adjust_hue: shift the 8-bit H channel, wrapping; int() then mod 256
    # so negative shifts are defined the same on every platform.
    h, s, v = img.convert("HSV").split()
    np_h = (np.asarray(h, dtype=np.uint8).astype(np.int32) + (int(hue * 255.0) % 256)) % 256
    h = Image.fromarray(np_h.astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def apply_jitter(img, jitter: dict):
    for name in jitter["order"]:
        f = jitter[name]
        if name == "brightness" and f != 1.0:
            img = ImageEnhance.Brightness(img).enhance(f)
        elif name == "contrast" and f != 1.0:
            img = ImageEnhance.Contrast(img).enhance(f)
        elif name == "saturation" and f != 1.0:
            img = ImageEnhance.Color(img).enhance(f)
        elif name == "hue" and f != 0.0:
            img = _adjust_hue(img, f)
    return img


def apply_plan_pil(img: Image.Image, plan: dict, out_hw, fill) -> np.ndarray:
    """Apply plan to an RGB PIL image; returns uint8 (out_h, out_w, 3)."""
    if img.size != tuple(plan["src_size"]):
        raise ValueError(f"plan was made for a {plan['src_size'][0]}x{plan['src_size'][1]} source "
                         f"but the image is {img.size[0]}x{img.size[1]}")
    out_h, out_w = out_hw
    x, y, w, h = plan["crop"]
    img = img.resize((out_w, out_h), resample=_RESAMPLE[plan["interpolation"]],
                     box=(x, y, x + w, y + h))
    if plan["flip"]:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for step in plan["ra"]:
        img = apply_ra_step(img, step["op"], step["arg"], step.get("resample"), fill)
    if plan.get("jitter"):
        img = apply_jitter(img, plan["jitter"])
    return np.asarray(img, dtype=np.uint8).copy()
