"""The one compatibility check between a store and what is about to use it.

A record ``i`` of a store is only meaningful for image ``i`` of the dataset it was saved
from, replayed under the augmentation config it was saved with, for a model with its
number of classes. ``DistillLoader``, ``save-logits`` (resuming or growing a store) and
``train --distill`` all call ``check_compatible`` before any batch is produced.
"""
from __future__ import annotations

from typing import Optional

from .errors import DatasetMismatchError, FingerprintMismatchError, StoreMismatchError

__all__ = ["check_compatible", "stored_base_seed"]


def stored_base_seed(store) -> int:
    """meta.base_seed of a store written by tinyvit save-logits (pairs Mixup/CutMix partners)."""
    meta = store.manifest.get("meta")
    base_seed = meta.get("base_seed") if isinstance(meta, dict) else None
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise StoreMismatchError(f"store {store.path!r}: meta.base_seed missing or not an integer "
                                 f"({base_seed!r}; not written by tinyvit save-logits); needed to "
                                 "pair Mixup/CutMix partners")
    return base_seed


def check_compatible(store, *, dataset=None, aug_config=None, num_classes: Optional[int] = None,
                     topk: Optional[int] = None, base_seed: Optional[int] = None,
                     value_encoding: Optional[str] = None) -> None:
    """Raise a typed error naming the field and both values unless ``store`` fits.

    dataset: ``len(dataset) == store.num_samples`` (StoreMismatchError) and, when both
    sides have one, the dataset fingerprint (DatasetMismatchError); aug_config: its
    fingerprint (FingerprintMismatchError); num_classes, topk, base_seed, value_encoding:
    equal to the store's (StoreMismatchError). Arguments left None are not checked.
    """
    where = f"store {store.path!r}"
    if dataset is not None:
        if store.num_samples != len(dataset):
            raise StoreMismatchError(f"{where}: num_samples {store.num_samples} != len(dataset) "
                                     f"{len(dataset)} (store saved from another dataset?)")
        fp = getattr(dataset, "fingerprint", None)
        stored = store.manifest.get("dataset_fingerprint")
        if callable(fp) and stored is not None:
            mine = fp()
            if mine != stored:
                raise DatasetMismatchError(f"{where}: dataset_fingerprint {stored!r} != this "
                                           f"dataset's {mine!r} ({dataset!r})")
    if aug_config is not None:
        fp = aug_config.fingerprint()
        if store.aug_fingerprint != fp:
            raise FingerprintMismatchError(
                f"{where}: aug_fingerprint {store.aug_fingerprint!r} != this AugConfig's {fp!r} "
                "(the seeds replay other pixels under another augmentation config)")
    if num_classes is not None and int(num_classes) != store.num_classes:
        raise StoreMismatchError(f"{where}: num_classes {store.num_classes} != the model's "
                                 f"{num_classes}")
    if topk is not None and int(topk) != store.topk:
        raise StoreMismatchError(f"{where}: topk {store.topk} != {topk}")
    if value_encoding is not None and value_encoding != store.value_encoding:
        raise StoreMismatchError(f"{where}: value_encoding {store.value_encoding!r} != the "
                                 f"requested {value_encoding!r} (an existing store keeps its "
                                 "encoding; write a new store to change it)")
    if base_seed is not None:
        sb = stored_base_seed(store)
        if sb != int(base_seed):
            raise StoreMismatchError(f"{where}: meta.base_seed {sb} != --base-seed {base_seed}")
