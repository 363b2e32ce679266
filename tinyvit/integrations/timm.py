"""Validation that matches training, in timm's terms: ``eval_config(store)`` gives timm's
data-config keys for the evaluation transform of a store / loader / AugConfig (the config
layer's ``AugConfig.eval_config``, resolved from any of those), and ``eval_transform(store)``
is the one eval transform for it (tinyvit.augment.eval: timm's ``create_transform(...,
is_training=False)``, numerically, with no timm needed), so a trainer's own ``--img-size`` /
``--mean`` / ``--std`` cannot drift from what the store trains with."""
from __future__ import annotations

import os

from ..augment.config import AugConfig
from ..augment.eval import EvalTransform
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


def eval_config(source, crop_pct: float = None) -> dict:
    """``AugConfig.eval_config(crop_pct)`` of the config that trains on ``source`` (AugConfig,
    loader, store or store path): timm's data-config keys ``input_size`` (3, H, W),
    ``interpolation``, ``mean``, ``std``, ``crop_pct`` (default 0.875), ``crop_mode``
    ('center'). What ``tinyvit train`` evaluates with; ``timm.data.create_transform(
    **eval_config(store), is_training=False)`` builds the same transform."""
    return _aug_config_of(source).eval_config(crop_pct)


def eval_transform(source, crop_pct: float = None) -> EvalTransform:
    """The evaluation transform (image -> normalised float32 [3, H, W] tensor) for
    ``eval_config(source, crop_pct)``: tinyvit's one eval transform, equal to timm's."""
    return EvalTransform(eval_config(source, crop_pct))
