"""Validation that matches training, in timm's terms: ``eval_config(store)`` gives timm's
data-config keys for the evaluation transform of a store / loader / AugConfig, and
``eval_transform(store)`` builds it with ``timm.data.create_transform`` (timm imported only
there), so a trainer's own ``--img-size`` / ``--mean`` / ``--std`` cannot drift from what the
store trains with."""
from __future__ import annotations

import os

from ..augment.config import AugConfig
from ..data.loader import DistillLoader, ReplayLoader
from ..data.store_config import store_aug_config
from ..store import LogitStore

__all__ = ["eval_config", "eval_transform"]


def _aug_config_of(source) -> AugConfig:
    if isinstance(source, AugConfig):
        return source
    if isinstance(source, (ReplayLoader, DistillLoader)):  # two classes: no common base
        return source.cfg
    if isinstance(source, (str, os.PathLike)):
        source = LogitStore.open(os.fspath(source))
    if isinstance(source, LogitStore):
        return store_aug_config(source)  # ManifestError: none recorded, or garbled
    raise TypeError(f"expected an AugConfig, a loader, a LogitStore or a store path, got "
                    f"{type(source).__name__}")


def eval_config(source) -> dict:
    """The evaluation transform matching training on ``source`` (AugConfig, loader, store or
    store path), as timm's data config keys: ``input_size`` (3, H, W), ``interpolation``
    (the training one; 'random' -> 'bicubic'), ``mean``, ``std``, ``crop_pct`` 0.875 (resize
    the short side to size / crop_pct, centre crop; what ``tinyvit train`` evaluates with).
    ``timm.data.create_transform(**eval_config(store))`` builds it; ``eval_transform`` does."""
    cfg = _aug_config_of(source)
    interp = "bicubic" if cfg.interpolation == "random" else cfg.interpolation
    return {"input_size": (3, cfg.height, cfg.width), "interpolation": interp,
            "mean": tuple(cfg.mean), "std": tuple(cfg.std), "crop_pct": 0.875}


def eval_transform(source):
    """timm's evaluation transform (PIL image -> normalised tensor) for ``eval_config(source)``,
    so validation uses the training size, interpolation and normalisation."""
    from timm.data import create_transform

    return create_transform(is_training=False, **eval_config(source))
