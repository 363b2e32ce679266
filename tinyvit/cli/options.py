"""Command-line pieces shared by subcommands: the help formatter, value checks, and the
AugConfig fields as ``--options``."""
from __future__ import annotations

import argparse
from typing import Optional

from ..augment.config import AugConfig

__all__ = ['HelpFormatter', 'add_aug_arguments', 'aug_config_from_args', 'positive_int',
           'nonneg_int', 'probability', 'positive_float', 'nonneg_float', 'add_common_arguments']


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps description line breaks; appends ``(default: X)`` once, and only where there is a
    real default (not for flags, not for None = "decided at run time", said in the help)."""

    def _get_help_string(self, action):
        h = action.help or ""
        d = action.default
        if "%(default)" in h or "default" in h.lower() or d is None or d is False or d is argparse.SUPPRESS \
                or isinstance(action, argparse._StoreTrueAction):
            return h
        return h + " (default: %(default)s)"


def _checked(kind, ok, what):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _checked(int, lambda v: v >= 1, ">= 1")
nonneg_int = _checked(int, lambda v: v >= 0, ">= 0")
probability = _checked(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")
positive_float = _checked(float, lambda v: v > 0, "> 0")
nonneg_float = _checked(float, lambda v: v >= 0, ">= 0")


def add_common_arguments(p: argparse.ArgumentParser, *, batch_size: int, data_required: bool = True) -> None:
    """--data and --batch-size: one meaning in every subcommand."""
    p.add_argument("--data", required=data_required, default=None if data_required else "fashion-mnist",
                   help="dataset: an ImageFolder directory (with train/ and val/ subfolders, or the "
                   "class folders directly), or fashion-mnist[:DIR] (Debian dataset-fashion-mnist)")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help="images per batch (per process)")


def add_aug_arguments(p: argparse.ArgumentParser) -> None:
    """AugConfig fields as --options. Unset options keep AugConfig's defaults (or, for train
    --distill, the store's recorded config)."""
    d = AugConfig()
    g = p.add_argument_group("augmentation (AugConfig; part of the store's fingerprint; unset = AugConfig's "
                             "default, or for train --distill the store's recorded value)")
    g.add_argument("--img-size", type=positive_int, default=None, help=f"output side in px (AugConfig: {d.height})")
    g.add_argument("--interpolation", default=None, choices=["bicubic", "bilinear", "nearest", "random"],
                   help=f"resize filter (AugConfig: {d.interpolation})")
    g.add_argument("--scale", type=probability, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help=f"RandomResizedCrop area range (AugConfig: {d.scale[0]} {d.scale[1]})")
    g.add_argument("--hflip", type=probability, default=None, help=f"flip probability (AugConfig: {d.hflip})")
    g.add_argument("--auto-augment", default=None,
                   help=f"timm RandAugment string, or 'none' (AugConfig: {d.auto_augment})")
    g.add_argument("--color-jitter", type=nonneg_float, default=None,
                   help="colour jitter strength, used when --auto-augment is none (AugConfig: off)")
    g.add_argument("--reprob", type=probability, default=None,
                   help=f"RandomErasing probability (AugConfig: {d.re_prob})")
    g.add_argument("--mixup", type=nonneg_float, default=None, help=f"Mixup alpha, 0 = off (AugConfig: {d.mixup_alpha})")
    g.add_argument("--cutmix", type=nonneg_float, default=None,
                   help=f"CutMix alpha, 0 = off (AugConfig: {d.cutmix_alpha})")
    g.add_argument("--mean", type=float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help=f"normalisation mean (AugConfig: ImageNet's {' '.join(f'{v:g}' for v in d.mean)})")
    g.add_argument("--std", type=positive_float, nargs=3, default=None, metavar=("R", "G", "B"),
                   help=f"normalisation std (AugConfig: ImageNet's {' '.join(f'{v:g}' for v in d.std)})")


_AUG_FIELDS = {"img_size": "img_size", "interpolation": "interpolation", "scale": "scale",
               "hflip": "hflip", "auto_augment": "auto_augment", "color_jitter": "color_jitter",
               "reprob": "re_prob", "mixup": "mixup_alpha", "cutmix": "cutmix_alpha",
               "mean": "mean", "std": "std"}


def aug_config_from_args(args, base: Optional[AugConfig] = None) -> AugConfig:
    """AugConfig from the options over ``base``; its ValueErrors name the field and value."""
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
