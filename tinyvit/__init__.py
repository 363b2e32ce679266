"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

Data path: record (store) -> plan (seed -> augmentation parameters, C++) -> pixels
-> uint8 batch -> device ops -> sparse soft cross-entropy.
"""
from ._ext import _C, build_info
from .rng import PCG32, pcg32_u32
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

__version__ = "0.1.0"

__all__ = ["PCG32", "build_info", "pcg32_u32", "__version__"]
__all__ += [
    "ChecksumError", "CorruptRecordError", "EpochMissingError", "FileSizeError",
    "FingerprintMismatchError", "FormatVersionError", "InvalidRecordError", "LogitStore",
    "ManifestError", "ReadOnlyError", "RecordMissingError", "SampleIndexError",
    "ShapeMismatchError", "StoreError", "StoreExistsError", "StoreIOError", "TruncatedFileError",
]
