"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

Data path: record (store) -> plan (seed -> augmentation parameters, C++) -> pixels
-> uint8 batch -> device ops -> sparse soft cross-entropy.
"""
from types import ModuleType as _ModuleType

from ._ext import _C, build_info
from .rng import PCG32, pcg32_u32
from .aug_config import PLAN_FORMAT_VERSION, AugConfig, parse_rand_augment
from .plan import make_plan, pack_plans, plan_device_params
from .pairing import (PairedSampler, mix_partner, mix_partners, pair_permutation, sample_seed,
                      sample_seeds)
from .replay import ImageDecodeError, replay, replay_batch
from .device_ops import (DeviceAugment, batch_partners, mix, mix_targets, normalize,
                         random_erase)
from .store import (
    ChecksumError,
    CorruptRecordError,
    EpochMissingError,
    FileSizeError,
    FingerprintMismatchError,
    FormatVersionError,
    InvalidRecordError,
    LogitStore,
    ManifestError,
    ReadOnlyError,
    RecordMissingError,
    SampleIndexError,
    ShapeMismatchError,
    StoreError,
    StoreExistsError,
    StoreIOError,
    TruncatedFileError,
)
from .loss import SparseSoftCrossEntropy, dense_soft_cross_entropy, sparse_soft_cross_entropy
from .datasets import ArrayDataset, DatasetError, FashionMNIST, ImageFolder, open_dataset
from .loader import (DatasetMismatchError, DistillLoader, ReplayLoader, SparseTargets,
                     StoreMismatchError)
from .runtime import ModelError, TeacherOutputError
from . import models  # TinyViT family from contraction factors (timm imported lazily)

__version__ = "0.1.0"

__all__ = sorted(name for name, obj in list(globals().items())
                 if not name.startswith("_") and not isinstance(obj, _ModuleType))
__all__ += ["models", "__version__"]
