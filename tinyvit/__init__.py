"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

The data path, one subpackage per stage (docs/README.md has the picture):

    record (tinyvit.store) -> plan (tinyvit.augment.plan, C++) -> pixels (tinyvit.augment.replay)
    -> uint8 batch (tinyvit.data.pipeline, the one replay pipeline) -> device ops
    (tinyvit.augment.device) -> sparse soft cross-entropy (tinyvit.loss)

The loaders (tinyvit.data.loader) compose a sampler (tinyvit.data.sampler), that pipeline and
an optional store. Jobs (save-logits, train, evaluate, demo, contraction search) live in
tinyvit.jobs, their command line in tinyvit.cli, the TinyViT model family in tinyvit.models,
every exception in tinyvit.errors.

The top level holds what a training script needs (``__all__``); the plumbing (seeds, plans,
RNG, single device ops, the dense reference loss) is imported from its submodule. Names that
used to be here still work for one release, with a DeprecationWarning naming the new path.
"""
import importlib as _importlib
import warnings as _warnings

from ._ext import build_info
from . import errors
from .augment.config import AugConfig
from .augment.replay import replay, replay_batch
from .augment.device import DeviceAugment, mix_targets
from .store import LogitStore
from .loss import SparseSoftCrossEntropy, sparse_soft_cross_entropy
from .data.datasets import ArrayDataset, FashionMNIST, ImageFolder, open_dataset
from .data.tarshards import TarShards
from .data.loader import DistillLoader, ReplayLoader, SparseTargets
from .integrations.timm import eval_config, eval_transform
from . import models  # TinyViT family from contraction factors (timm imported lazily)

__version__ = "0.1.0"

# What a user needs, by the job it does (docs/api.md says why each is here):
__all__ = [
    # the augmentation config and its replay (see what the student sees)
    "AugConfig", "replay", "replay_batch",
    # datasets (sources of pixels)
    "ArrayDataset", "FashionMNIST", "ImageFolder", "TarShards", "open_dataset",
    # the teacher's stored logits and the loaders that replay them
    "LogitStore", "DistillLoader", "ReplayLoader", "SparseTargets",
    # the device half of the augmentation (own loops) and hard-label targets
    "DeviceAugment", "mix_targets",
    # the loss
    "sparse_soft_cross_entropy", "SparseSoftCrossEntropy",
    # validation that matches training (timm terms)
    "eval_config", "eval_transform",
    # modules and build facts
    "errors", "models", "build_info", "__version__",
]

# Removed from the top level: name -> the module it lives in now. Kept for one release (0.1.x)
# through __getattr__, which warns; remove in 0.2.
_MOVED = {
    **dict.fromkeys(["PCG32", "pcg32_u32"], "tinyvit.augment.rng"),
    **dict.fromkeys(["PLAN_FORMAT_VERSION", "parse_rand_augment"], "tinyvit.augment.config"),
    **dict.fromkeys(["make_plan", "plan_device_params"], "tinyvit.augment.plan"),
    "PairedSampler": "tinyvit.data.sampler",
    **dict.fromkeys(["mix_partner", "mix_partners", "pair_permutation",
                     "sample_seed", "sample_seeds"], "tinyvit.augment.seeds"),
    **dict.fromkeys(["batch_partners", "mix", "normalize", "random_erase"], "tinyvit.augment.device"),
    "dense_soft_cross_entropy": "tinyvit.loss",
    **dict.fromkeys(["ChecksumError", "CorruptRecordError", "DatasetMismatchError", "EpochMissingError",
                     "FileSizeError", "FingerprintMismatchError", "FormatVersionError",
                     "InvalidRecordError", "ManifestError", "ReadOnlyError", "RecordMissingError",
                     "SampleIndexError", "ShapeMismatchError", "StoreError", "StoreExistsError",
                     "StoreIOError", "StoreMismatchError", "TruncatedFileError", "ReplayMismatchError",
                     "DatasetError", "ImageDecodeError", "EpochError", "ModelError",
                     "TeacherOutputError"], "tinyvit.errors"),
}

_SUBPACKAGES = ("augment", "cli", "data", "errors", "integrations", "jobs", "loss", "models", "store")


def __getattr__(name):
    """The one-release deprecation aliases of ``_MOVED`` (PEP 562): warn, then return the very
    object of the new location (nothing is cached here, so every access warns). Subpackages
    not imported yet (``tinyvit.jobs``, ``tinyvit.cli``) import on first access, as before."""
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    where = _MOVED.get(name)
    if where is None:
        raise AttributeError(f"module 'tinyvit' has no attribute {name!r}")
    _warnings.warn(f"tinyvit.{name} is deprecated and will be removed from the top level in "
                   f"tinyvit 0.2; import it from {where} (from {where} import {name})",
                   DeprecationWarning, stacklevel=2)
    return getattr(_importlib.import_module(where), name)


def __dir__():
    """The public names and the subpackages (not the deprecated aliases)."""
    return sorted(set(__all__) | set(_SUBPACKAGES))
