"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

Data path: record (store) -> plan (seed -> augmentation parameters, C++) -> pixels
-> uint8 batch -> device ops -> sparse soft cross-entropy.
"""
from ._ext import _C, build_info
from .loss import SparseSoftCrossEntropy, dense_soft_cross_entropy, sparse_soft_cross_entropy
from .rng import PCG32, pcg32_u32
from .aug_config import PLAN_FORMAT_VERSION, AugConfig, parse_rand_augment
from .plan import make_plan, pack_plans, plan_device_params
from .device_ops import DeviceAugment, batch_partners, mix, mix_targets, normalize, random_erase
from .replay import ImageDecodeError, replay, replay_batch
from .pairing import PairedSampler, mix_partner, mix_partners, pair_permutation, sample_seed, sample_seeds
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
from .datasets import ArrayDataset, DatasetError, FashionMNIST, ImageFolder, open_dataset
from .loader import DatasetMismatchError, DistillLoader, ReplayLoader, SparseTargets, StoreMismatchError
from .runtime import ModelError, TeacherOutputError

__version__ = "0.1.0"

__all__ = ["PCG32", "build_info", "pcg32_u32", "__version__"]
__all__ += ["AugConfig", "PLAN_FORMAT_VERSION", "parse_rand_augment", "make_plan", "pack_plans",
            "plan_device_params", "PairedSampler", "mix_partner", "mix_partners",
            "pair_permutation", "sample_seed", "sample_seeds", "DeviceAugment", "batch_partners",
            "mix", "mix_targets", "normalize", "random_erase"]
__all__ += [
    "ChecksumError", "CorruptRecordError", "EpochMissingError", "FileSizeError",
    "FingerprintMismatchError", "FormatVersionError", "InvalidRecordError", "LogitStore",
    "ManifestError", "ReadOnlyError", "RecordMissingError", "SampleIndexError",
    "ShapeMismatchError", "StoreError", "StoreExistsError", "StoreIOError", "TruncatedFileError",
]
__all__ += ["SparseSoftCrossEntropy", "dense_soft_cross_entropy", "sparse_soft_cross_entropy",
]
__all__ += ["ImageDecodeError", "replay", "replay_batch"]
__all__ += ["ArrayDataset", "DatasetError", "FashionMNIST", "ImageFolder", "open_dataset",
            "DatasetMismatchError", "DistillLoader", "ReplayLoader", "SparseTargets",
            "StoreMismatchError", "ModelError", "TeacherOutputError"]
