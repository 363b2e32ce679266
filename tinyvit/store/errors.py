"""Every logit-store error, one hierarchy (``StoreError``). C++ raises them by name through
``_C._register_error_kinds`` (kinds ``store.<name>``, the one C++ -> Python error path); messages name the file and the field."""
from __future__ import annotations

from .._ext import _C

__all__ = ['StoreError', 'ManifestError', 'FormatVersionError', 'StoreExistsError', 'StoreIOError',
           'FileSizeError', 'TruncatedFileError', 'CorruptRecordError', 'ChecksumError',
           'RecordMissingError', 'SampleIndexError', 'EpochMissingError', 'ShapeMismatchError',
           'InvalidRecordError', 'FingerprintMismatchError', 'ReadOnlyError',
           'StoreMismatchError', 'DatasetMismatchError', 'ReplayMismatchError']


class StoreError(Exception):
    """Base class of every logit-store error. Messages name the file and the field."""


class ManifestError(StoreError):
    """manifest.json missing, unreadable, not JSON, or a field missing / of the wrong type."""


class FormatVersionError(ManifestError):
    """manifest.json declares a format version this library does not read."""


class StoreExistsError(StoreError, FileExistsError):
    """create() on a directory that already holds a store (pass exist_ok=True to reuse it)."""


class StoreIOError(StoreError, OSError):
    """An operating-system error on a data file (open, mmap, pwrite, fsync)."""


class FileSizeError(StoreError):
    """A data file does not have num_samples * record_size bytes."""


class TruncatedFileError(FileSizeError):
    """A data file is shorter than num_samples * record_size bytes."""


class CorruptRecordError(StoreError):
    """A record's content is invalid (its checksum verified, the bytes are still bad)."""


class ChecksumError(CorruptRecordError):
    """A nonzero record whose checksum does not verify: torn, corrupted, or misplaced."""


class RecordMissingError(StoreError):
    """A record that was never written (all-zero bytes) was read."""


class SampleIndexError(StoreError, IndexError):
    """A sample index outside [0, num_samples)."""


class EpochMissingError(StoreError, LookupError):
    """An epoch outside [0, epochs) or whose data file is absent."""


class ShapeMismatchError(StoreError, ValueError):
    """Arrays passed to write/read do not match the store's K, C, batch size or dtypes."""


class InvalidRecordError(StoreError, ValueError):
    """Values refused on write: seed outside [0, 2^32), duplicate class, prob outside [0, 1]..."""


class FingerprintMismatchError(StoreError):
    """open(aug_fingerprint=...) differs from the fingerprint the store was written with."""


class ReadOnlyError(StoreError):
    """write() on a store opened with mode='r'."""


# StoreException kinds of csrc/core/store -> their classes, registered in the one C++ -> Python
# error registry (csrc/python/errors.h) as "store.<kind>".
_STORE_KINDS = {
    "io": StoreIOError,
    "truncated_file": TruncatedFileError,
    "file_size": FileSizeError,
    "checksum": ChecksumError,
    "record_missing": RecordMissingError,
    "corrupt_record": CorruptRecordError,
    "sample_index": SampleIndexError,
    "epoch_missing": EpochMissingError,
    "shape_mismatch": ShapeMismatchError,
    "invalid_record": InvalidRecordError,
    "read_only": ReadOnlyError,
}
_C._register_error_kinds({f"store.{k}": cls for k, cls in _STORE_KINDS.items()})
if set(_C._store_error_kinds()) != {f"store.{k}" for k in _STORE_KINDS}:  # pragma: no cover
    raise ImportError("tinyvit._C raises store error kinds this tinyvit/store/errors.py does not map: "
                      f"{sorted(set(_C._store_error_kinds()) - {f'store.{k}' for k in _STORE_KINDS})}")


class StoreMismatchError(StoreError, ValueError):
    """The store does not belong to this dataset / config / model: names the field and both
    values (num_samples vs len(dataset), num_classes, topk, base_seed)."""


class DatasetMismatchError(StoreMismatchError):
    """The store was saved from a dataset with another fingerprint (other files, order or
    content)."""


class ReplayMismatchError(StoreMismatchError):
    """This machine would show the student other pixels than the teacher saw: the replayed
    pixels of an attested sample differ, the pixel pipeline differs (plan format,
    libjpeg-turbo version, backend), an epoch in use has no attestation, or attest.json is
    malformed. The message names the epoch, sample and component. Defined here (store level)
    so the store's error hierarchy is complete; raised by tinyvit/data/attest.py."""
