"""The record side of the data path: the memory-mapped logit store.

- ``format``/``manifest``: what is on disk (``manifest.py``; the record layout lives in
  ``csrc/core/store``), ``logit_store.py``: ``LogitStore`` (create, open, write, read,
  missing), ``errors.py``: every store error, ``compat.py``: the one check that a store
  belongs to a dataset / augmentation config / model.
"""
from .errors import (ChecksumError, CorruptRecordError, DatasetMismatchError, EpochMissingError,
                     FileSizeError, FingerprintMismatchError, FormatVersionError, InvalidRecordError,
                     ManifestError, ReadOnlyError, RecordMissingError, SampleIndexError,
                     ShapeMismatchError, StoreError, StoreExistsError, StoreIOError,
                     StoreMismatchError, TruncatedFileError)
from .manifest import FORMAT_VERSION
from .logit_store import LogitStore
from .compat import check_compatible

__all__ = ["LogitStore", "check_compatible", "FORMAT_VERSION", "StoreError", "ManifestError",
           "FormatVersionError", "StoreExistsError", "StoreIOError", "FileSizeError",
           "TruncatedFileError", "CorruptRecordError", "ChecksumError", "RecordMissingError",
           "SampleIndexError", "EpochMissingError", "ShapeMismatchError", "InvalidRecordError",
           "FingerprintMismatchError", "ReadOnlyError", "StoreMismatchError", "DatasetMismatchError"]
