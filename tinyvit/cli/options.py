"""Command-line options shared by subcommands: the AugConfig fields as ``--options``."""
from __future__ import annotations

import argparse
from typing import Optional

from ..augment.config import AugConfig

__all__ = ['add_aug_arguments', 'aug_config_from_args']


def add_aug_arguments(p: argparse.ArgumentParser, defaults_from_store: bool = False) -> None:
    """AugConfig fields as --options. Unset options keep AugConfig's defaults (or, for train
    --distill, the store's recorded config)."""
    g = p.add_argument_group("augmentation (AugConfig; part of the store's fingerprint)")
    g.add_argument("--img-size", type=int, default=None, help="output size (default 224)")
    g.add_argument("--interpolation", default=None, choices=["bicubic", "bilinear", "nearest", "random"])
    g.add_argument("--scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="RandomResizedCrop area range (default 0.08 1.0)")
    g.add_argument("--hflip", type=float, default=None, help="flip probability (default 0.5)")
    g.add_argument("--auto-augment", default=None,
                   help="timm RandAugment string, or 'none' (default rand-m9-mstd0.5-inc1)")
    g.add_argument("--color-jitter", type=float, default=None)
    g.add_argument("--reprob", type=float, default=None, help="RandomErasing probability (default 0.25)")
    g.add_argument("--mixup", type=float, default=None, help="Mixup alpha (default 0.8; 0 = off)")
    g.add_argument("--cutmix", type=float, default=None, help="CutMix alpha (default 1.0; 0 = off)")
    g.add_argument("--mean", type=float, nargs=3, default=None)
    g.add_argument("--std", type=float, nargs=3, default=None)


_AUG_FIELDS = {"img_size": "img_size", "interpolation": "interpolation", "scale": "scale",
               "hflip": "hflip", "auto_augment": "auto_augment", "color_jitter": "color_jitter",
               "reprob": "re_prob", "mixup": "mixup_alpha", "cutmix": "cutmix_alpha",
               "mean": "mean", "std": "std"}


def aug_config_from_args(args, base: Optional[AugConfig] = None) -> AugConfig:
    d = base.to_dict() if base is not None else {}
    for arg, field in _AUG_FIELDS.items():
        v = getattr(args, arg, None)
        if v is None:
            continue
        if field == "auto_augment" and v.lower() in ("none", "off", ""):
            v = None
        d[field] = tuple(v) if isinstance(v, list) else v
    if base is not None:
        return AugConfig.from_dict(d)
    return AugConfig(**d)
