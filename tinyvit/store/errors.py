"""Every logit-store error, one hierarchy (``StoreError``). The classes are defined in
:mod:`tinyvit.errors` (which also registers them with ``_C._register_error_kinds``, kinds
``store.<name>``, the one C++ -> Python error path); this module re-exports them, same objects."""
from __future__ import annotations

from ..errors import (ChecksumError, CorruptRecordError, DatasetMismatchError,  # noqa: F401
                      EpochMissingError, FileSizeError, FingerprintMismatchError,
                      FormatVersionError, InvalidRecordError, ManifestError, ReadOnlyError,
                      RecordMissingError, ReplayMismatchError, SampleIndexError, ShapeMismatchError,
                      StoreError, StoreExistsError, StoreIOError, StoreMismatchError,
                      TruncatedFileError)

__all__ = ['StoreError', 'ManifestError', 'FormatVersionError', 'StoreExistsError', 'StoreIOError',
           'FileSizeError', 'TruncatedFileError', 'CorruptRecordError', 'ChecksumError',
           'RecordMissingError', 'SampleIndexError', 'EpochMissingError', 'ShapeMismatchError',
           'InvalidRecordError', 'FingerprintMismatchError', 'ReadOnlyError',
           'StoreMismatchError', 'DatasetMismatchError', 'ReplayMismatchError']
