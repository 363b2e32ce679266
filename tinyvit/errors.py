"""Every exception class of tinyvit, in one module (docs/errors.md has the tree).

This is the bottom layer: it imports nothing of tinyvit but ``_ext`` (the compiled core), because
C++ raises some of these classes itself. Catch a whole family with its base:

- ``StoreError`` -- a logit store cannot be created, opened, read or written, or does not belong
  to this dataset / config / model (``StoreMismatchError`` and below);
- ``DatasetError`` -- a dataset (or its cached index) cannot be opened or read;
- ``ImageDecodeError`` -- one source image cannot be decoded;
- ``EpochError``, ``ResumeError``, ``ModelError``, ``TeacherOutputError``, ``DemoError``, ``CLIError`` -- a
  loader pass, a resumed run, a model, a teacher's output, the demo's options, a command line.

Every class is also importable from the module that raises it (``tinyvit.store.errors``,
``tinyvit.data.idx``, ``tinyvit.augment.replay``, ...), where it used to be defined; those are
the same objects. Messages are one line and name the file / sample / field.
"""
from __future__ import annotations

from ._ext import _C

__all__ = [
    # logit store
    "StoreError", "ManifestError", "FormatVersionError", "StoreExistsError", "StoreIOError",
    "FileSizeError", "TruncatedFileError", "CorruptRecordError", "ChecksumError",
    "RecordMissingError", "SampleIndexError", "EpochMissingError", "ShapeMismatchError",
    "InvalidRecordError", "FingerprintMismatchError", "ReadOnlyError",
    "StoreMismatchError", "DatasetMismatchError", "ReplayMismatchError",
    # data, pixels, loaders, jobs, command line
    "DatasetError", "IndexError_", "ImageDecodeError", "EpochError", "ResumeError", "ModelError",
    "TeacherOutputError", "DemoError", "CLIError",
]


# ---- logit store ---------------------------------------------------------------------------

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
    malformed. The message names the epoch, sample and component (tinyvit/data/attest.py)."""


# StoreException kinds of csrc/core/store -> their classes, registered in the one C++ -> Python
# error registry (csrc/python/errors.h) as "store.<kind>". Registered here, where the classes
# are defined, so that any import of tinyvit (which imports this module through the store)
# maps every C++ store error before the first store call.
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
    raise ImportError("tinyvit._C raises store error kinds this tinyvit/errors.py does not map: "
                      f"{sorted(set(_C._store_error_kinds()) - {f'store.{k}' for k in _STORE_KINDS})}")


# ---- datasets and pixels --------------------------------------------------------------------

class DatasetError(ValueError):
    """A dataset cannot be opened or read: missing directory/file, malformed idx file, no
    images. The message names the path (and the field for idx headers)."""


class IndexError_(DatasetError):
    """An index file is malformed, of another version, or does not describe what it is
    used for (its file names the field)."""


# Defined by the compiled core (py::register_exception in csrc/python/pixels.cpp), which raises
# it from the C++ decoders; the Python backends raise the same class. Its __module__ names this
# module so that pickling (DataLoader workers) finds it here without a deprecation warning.
ImageDecodeError = _C.ImageDecodeError
ImageDecodeError.__module__ = __name__
ImageDecodeError.__doc__ = (
    "A source could not be decoded (corrupt, truncated, empty or not an image). Subclass of "
    "ValueError; the message starts with the source: its path or '<bytes len=N>'.")


# ---- loaders, jobs, command line ------------------------------------------------------------

class EpochError(RuntimeError):
    """A pass over a loader would silently replay an epoch (``auto_advance=False`` and no
    ``set_epoch`` since the last pass)."""


class ResumeError(ValueError):
    """``last.pt`` in the output directory cannot continue this run (another run's config,
    an unreadable or foreign file). Names the file and the differing field."""


class ModelError(ValueError):
    """A model cannot be built or loaded (unknown timm name, bad module:function, checkpoint
    that does not fit). Names the model / file."""


class TeacherOutputError(ValueError):
    """The teacher's output is not [B, num_classes] (raised before anything is written)."""


class DemoError(ValueError):
    """An option the demo cannot run with (odd --train-samples, --topk out of range, --out not
    a directory); raised before any work. ``tinyvit demo`` prints it as one line."""


class CLIError(Exception):
    """A usage error found after parsing (an option combination, a value out of range)."""
