"""The ``AugConfig`` a store's seeds replay: built here, above both the store and augment.

``LogitStore.aug_config`` gives the recorded config as plain JSON data (the store does not
depend on ``tinyvit.augment``, its peer); :func:`store_aug_config` turns it into the
``AugConfig``, with one typed error -- ``ManifestError`` naming the manifest and the field --
for a config that is missing, not an object, or not a valid ``AugConfig``.
"""
from __future__ import annotations

import os
from typing import Optional

from ..augment.config import AugConfig
from ..store.errors import ManifestError
from ..store.manifest import MANIFEST

__all__ = ["store_aug_config"]


def store_aug_config(store, *, required: bool = True) -> Optional[AugConfig]:
    """The ``AugConfig`` recorded in ``store`` (a ``LogitStore``) by save-logits.

    A store without one (created directly with ``LogitStore.create``, not by save-logits):
    ManifestError when ``required``, else None (the caller's own config then has to match the
    store's ``aug_fingerprint``, which every loader checks)."""
    stored = store.aug_config  # ManifestError when present but not an object
    where = f"{os.path.join(store.path, MANIFEST)}: field 'meta.aug_config'"
    if stored is None:
        if not required:
            return None
        raise ManifestError(f"{where} is missing (not written by tinyvit save-logits): cannot "
                            f"replay its augmentation")
    try:
        return AugConfig.from_dict(stored)
    except (TypeError, ValueError) as e:  # unknown / wrong-typed fields: a garbled manifest
        raise ManifestError(f"{where} is not a valid AugConfig: {' '.join(str(e).split())}") from None
