"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

The data path, one subpackage per stage (docs/README.md has the picture):

    record (tinyvit.store) -> plan (tinyvit.augment.plan, C++) -> pixels (tinyvit.augment.replay)
    -> uint8 batch (tinyvit.data.loader) -> device ops (tinyvit.augment.device)
    -> sparse soft cross-entropy (tinyvit.loss)

Jobs (save-logits, train, evaluate, demo) live in tinyvit.jobs, their command line in
tinyvit.cli, the TinyViT model family and contraction search in tinyvit.models.
"""
from types import ModuleType as _ModuleType

from ._ext import _C, build_info
from .augment.rng import PCG32, pcg32_u32
from .augment.config import PLAN_FORMAT_VERSION, AugConfig, parse_rand_augment
from .augment.plan import make_plan, plan_device_params
from .augment.seeds import (PairedSampler, mix_partner, mix_partners, pair_permutation, sample_seed,
                            sample_seeds)
from .augment.replay import ImageDecodeError, replay, replay_batch
from .augment.device import (DeviceAugment, batch_partners, mix, mix_targets, normalize,
                             random_erase)
from .store import (
    ChecksumError,
    CorruptRecordError,
    DatasetMismatchError,
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
    StoreMismatchError,
    TruncatedFileError,
)
from .loss import SparseSoftCrossEntropy, dense_soft_cross_entropy, sparse_soft_cross_entropy
from .data.datasets import ArrayDataset, DatasetError, FashionMNIST, ImageFolder, open_dataset
from .data.tarshards import TarShards
from .store.errors import ReplayMismatchError
from .data.loader import DistillLoader, EpochError, ReplayLoader, SparseTargets
from .integrations.timm import eval_config, eval_transform
from .jobs.models import ModelError, TeacherOutputError
from . import models  # TinyViT family from contraction factors (timm imported lazily)

__version__ = "0.1.0"

__all__ = sorted(name for name, obj in list(globals().items())
                 if not name.startswith("_") and not isinstance(obj, _ModuleType))
__all__ += ["models", "__version__"]
