"""Sparse teacher-logit store (paper Sec. 3.1, "sparse soft labels").

For every (epoch, sample) the store keeps the augmentation seed and the teacher's top-K
class indices and probabilities, in fixed-size records addressed by sample index, so that
many writer processes (ranks, machines on a shared POSIX file system) fill disjoint samples
of the same epoch with no coordination, and a trainer reads a batch with one C++ call.

Layout on disk (full description: docs/store.md, csrc/core/store/store_format.h)::

    STORE/manifest.json        format, N, C, K, dtypes, encoding, fingerprints, epochs ...
    STORE/epoch_00000.bin      N records of record_size bytes; record i at offset i*record_size
    STORE/epoch_00001.bin      ...

Each record carries a CRC32C check bound to (store, epoch, sample): an unwritten record (a
sparse-file hole, all zeros) or a torn one never verifies, so ``missing(epoch)`` is exactly the
set of records a rerun must (re)write.

The record contract (one definition, enforced by the C++ record decoder, so ``read``,
``missing``, ``audit`` / ``tinyvit verify`` and ``tinyvit inspect`` always agree): a record is
VALID when its check verifies and its content is what ``write`` accepts -- class indices in
[0, C) and distinct, probabilities finite in [0, 1] summing to at most 1 + 2e-3 (the write
tolerance 1e-3 plus fp16 rounding), compact scale/bitmap well formed. ``read`` returns only
VALID records and raises otherwise: RecordMissingError (never written), ChecksumError (torn,
corrupted, misplaced), CorruptRecordError (check verifies, content invalid: a forged record or
a writer bug), each naming the file, epoch, sample and field. ``missing(epoch)`` lists every
record that is not VALID. Each record is copied once into private memory and both verified and
decoded from that copy, so a record rewritten concurrently is returned either as the old or as
the new version, never a mix. No file-system condition (a full tmpfs, a file truncated by
someone else, an I/O error) becomes a signal: it is a StoreError (see csrc/core/store/store_io.h).

Typical use::

    store = LogitStore.create("/data/in21k_logits", num_samples=N, num_classes=21841,
                              topk=100, aug_fingerprint=aug_hash, epochs=90)
    # on every rank, for its shard:        (create on one rank, or all with exist_ok=True)
    with LogitStore.open("/data/in21k_logits", mode="r+") as s:
        todo = s.missing(epoch)             # resume: only what is not verified yet
        ... s.write(epoch, idx, seeds, topk_idx, topk_probs)
    # training:
    store = LogitStore.open("/data/in21k_logits", aug_fingerprint=aug_hash)
    seeds, idx, probs = store.read(epoch, batch_sample_indices)
"""
from __future__ import annotations

import datetime
import json
import os
import secrets
import threading
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

from .._ext import _C
from .errors import (EpochMissingError, FingerprintMismatchError, ManifestError, ReadOnlyError, StoreError,
                     ShapeMismatchError, StoreExistsError, StoreIOError)
from .manifest import (ENCODINGS, EPOCH_FILE, FORMAT_NAME, FORMAT_VERSION, MANIFEST,
                       _read_manifest, _write_manifest, index_dtype, limit_violation)

__all__ = ['LogitStore', 'FORMAT_VERSION']


def _as_int64_1d(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ShapeMismatchError(f"{name} must be integers, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ShapeMismatchError(f"{name} must be 1-D, got shape {list(t.shape)}")
    return t.to(device="cpu", dtype=torch.int64).contiguous()


def _new_manifest(num_samples, num_classes, topk, value_encoding, epochs, aug_fingerprint, teacher,
                  dataset_fingerprint, meta) -> dict:
    """manifest.json of a new store (checked arguments; a fresh random store_id, which every
    record's check is bound to). TypeError when teacher / dataset_fingerprint / meta are not
    JSON-serialisable."""
    store_id = secrets.randbits(64)
    layout = _C._store_layout(value_encoding, topk, num_classes, store_id)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "num_samples": num_samples,
        "num_classes": num_classes,
        "topk": topk,
        "index_dtype": index_dtype(num_classes),
        "value_encoding": value_encoding,
        "record_size": layout["record_size"],
        "record_layout": {k: v for k, v in layout.items() if k != "record_size"},
        "epochs": epochs,
        "epoch_file": EPOCH_FILE,
        "checksum": "crc32c",
        "byte_order": "little",
        "store_id": f"{store_id:016x}",
        "aug_fingerprint": aug_fingerprint,
        "teacher": teacher,
        "dataset_fingerprint": dataset_fingerprint,
        "meta": meta or {},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    try:
        json.dumps(manifest)
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"teacher/dataset_fingerprint/meta must be JSON-serialisable: "
                        f"{e}") from None
    return manifest


# ---- the store ------------------------------------------------------------------------------
class LogitStore:
    """A directory of per-epoch files of fixed-size sparse soft-label records.

    Do not construct directly: use :meth:`create` or :meth:`open`. Thread-safe for reads;
    picklable (a DataLoader worker reopens it by path).
    """

    def __init__(self, path: str, manifest: dict, mode: str):
        self.path = os.path.abspath(path)
        self.mode = mode
        self._m = manifest
        self._store_id = int(manifest["store_id"], 16)
        self._files: dict = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str,
        num_samples: int,
        num_classes: int,
        topk: int,
        *,
        aug_fingerprint: Optional[str],
        meta: Optional[dict] = None,
        teacher: Any = None,
        dataset_fingerprint: Optional[str] = None,
        value_encoding: str = "fp16",
        epochs: int = 1,
        exist_ok: bool = False,
    ) -> "LogitStore":
        """Create a store (directory, sparse epoch files, then manifest.json) open in mode "r+".

        ``aug_fingerprint`` identifies the augmentation pipeline whose seeds are stored (a
        string, e.g. a hash of its config; None only if seeds are not used); ``teacher`` and
        ``dataset_fingerprint`` describe the teacher and the data (JSON-serialisable); ``meta``
        is any extra JSON object. ``value_encoding``: "fp16" (paper) or "compact" (8-bit log
        levels, see docs/store.md). With ``exist_ok`` an existing store with the same N, C, K,
        encoding, epochs and aug_fingerprint is opened instead (ranks may all call create);
        anything else raises StoreExistsError / ManifestError.
        """
        for name, v in (("num_samples", num_samples), ("num_classes", num_classes),
                        ("topk", topk), ("epochs", epochs)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
        num_samples, num_classes, topk, epochs = map(int, (num_samples, num_classes, topk, epochs))
        bad = limit_violation(num_samples, num_classes, topk, epochs)
        if bad is not None:
            raise ValueError(f"{bad[0]} must be in {bad[2]}, got {bad[1]}")
        if value_encoding not in ENCODINGS:
            raise ValueError(f"value_encoding must be one of {ENCODINGS}, got {value_encoding!r}")
        if aug_fingerprint is not None and not isinstance(aug_fingerprint, str):
            raise TypeError("aug_fingerprint must be a string or None")
        if meta is not None and not isinstance(meta, dict):
            raise TypeError("meta must be a dict (JSON object) or None")
        path = os.path.abspath(os.fspath(path))
        mpath = os.path.join(path, MANIFEST)
        if os.path.lexists(mpath):
            return cls._reuse(path, exist_ok, num_samples, num_classes, topk, value_encoding,
                              epochs, aug_fingerprint)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise StoreIOError(f"{path}: cannot create the store directory: {e.strerror or e}"
                               ) from None
        manifest = _new_manifest(num_samples, num_classes, topk, value_encoding, epochs,
                                 aug_fingerprint, teacher, dataset_fingerprint, meta)
        store = cls(path, manifest, "r+")
        # Epoch files first, manifest last: a visible manifest means a complete store. Files
        # are created without O_TRUNC, so a concurrent creator never destroys written records.
        try:
            for e in range(epochs):
                store._epoch(e, create=True)
            published = _write_manifest(path, manifest, exclusive=True)
        except BaseException:
            store._closed = True  # nothing to flush: no record was written
            store._files = {}
            raise
        if not published:
            store.close()
            return cls._reuse(path, exist_ok, num_samples, num_classes, topk, value_encoding,
                              epochs, aug_fingerprint)
        return store

    @classmethod
    def _reuse(cls, path, exist_ok, num_samples, num_classes, topk, value_encoding, epochs,
               aug_fingerprint) -> "LogitStore":
        mpath = os.path.join(path, MANIFEST)
        if not exist_ok:
            raise StoreExistsError(f"{mpath}: a store already exists here (exist_ok=True reuses "
                                   f"it)")
        store = cls.open(path, mode="r+")
        want = {"num_samples": num_samples, "num_classes": num_classes, "topk": topk,
                "value_encoding": value_encoding, "epochs": epochs,
                "aug_fingerprint": aug_fingerprint}
        for k, v in want.items():
            if store._m.get(k) != v:
                store.close()
                raise ManifestError(f"{mpath}: existing store has field {k!r} = "
                                    f"{store._m.get(k)!r}, create() asked for {v!r}")
        return store

    @classmethod
    def open(cls, path: str, mode: str = "r", aug_fingerprint: Optional[str] = None
             ) -> "LogitStore":
        """Open an existing store. mode "r" (read) or "r+" (read and write records).

        With ``aug_fingerprint`` (open for training) the store must have been written with the
        same augmentation fingerprint, else FingerprintMismatchError.
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        path = os.path.abspath(os.fspath(path))
        m = _read_manifest(path)
        if aug_fingerprint is not None and m.get("aug_fingerprint") != aug_fingerprint:
            raise FingerprintMismatchError(
                f"{os.path.join(path, MANIFEST)}: field 'aug_fingerprint' is "
                f"{m.get('aug_fingerprint')!r}, but the training pipeline's is "
                f"{aug_fingerprint!r}: the stored seeds would replay different augmentations")
        return cls(path, m, mode)

    def add_epochs(self, count: int) -> None:
        """Append ``count`` empty epochs (new sparse files, then the manifest is replaced
        atomically). Other processes see them after reopening."""
        self._check_writable()
        count = int(count)
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        m = dict(self._m)
        start = m["epochs"]
        m["epochs"] = start + count
        for e in range(start, start + count):
            self._epoch(e, create=True)
        _write_manifest(self.path, m, exclusive=False)
        self._m = m

    # -- properties ---------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        """A copy of manifest.json's content."""
        return json.loads(json.dumps(self._m))

    num_samples = property(lambda self: self._m["num_samples"], doc="N, records per epoch.")
    num_classes = property(lambda self: self._m["num_classes"], doc="C, teacher classes.")
    topk = property(lambda self: self._m["topk"], doc="K, stored classes per record.")
    epochs = property(lambda self: self._m["epochs"], doc="Number of epochs in the store.")
    value_encoding = property(lambda self: self._m["value_encoding"], doc="'fp16' or 'compact'.")
    index_dtype = property(lambda self: self._m["index_dtype"], doc="'uint16' or 'int32'.")
    record_size = property(lambda self: self._m["record_size"], doc="Bytes per record.")
    aug_fingerprint = property(lambda self: self._m["aug_fingerprint"])

    @property
    def aug_config(self) -> Optional[dict]:
        """The augmentation config whose seeds the store holds, as recorded by save-logits
        (manifest ``meta.aug_config``): a copy of that JSON object, or None when the store
        records none. ManifestError naming the file when it is there but not an object.

        Plain data on purpose: the store and ``tinyvit.augment`` are independent peers (see
        ``.importlinter``). ``tinyvit.data.store_config.store_aug_config(store)`` builds the
        ``AugConfig`` from it (``AugConfig.from_dict(store.aug_config)`` by hand)."""
        stored = self._m["meta"].get("aug_config")
        if stored is None:
            return None
        if not isinstance(stored, dict):
            raise ManifestError(f"{os.path.join(self.path, MANIFEST)}: field 'meta.aug_config' is not "
                                f"a JSON object: {type(stored).__name__}")
        return json.loads(json.dumps(stored))

    @property
    def nbytes(self) -> int:
        """Logical size of all epoch files: epochs * num_samples * record_size."""
        return self.epochs * self.num_samples * self.record_size

    def _listing(self) -> set:
        try:
            return set(os.listdir(self.path))  # one call, not one stat / open per epoch
        except OSError as e:
            raise StoreIOError(f"{self.path}: cannot list the store: {e.strerror or e}") from None

    def absent_epochs(self) -> set:
        """Epochs in [0, epochs) whose data file does not exist, from one directory listing (a
        store declaring 2^20 epochs costs one call, not 2^20 failed opens). StoreIOError
        naming the directory when it cannot be listed."""
        present = self._listing()
        return {e for e in range(self.epochs) if EPOCH_FILE.format(e) not in present}

    def disk_usage(self) -> int:
        """Bytes actually allocated on disk by the epoch files that exist (sparse-aware).
        StoreIOError naming the file for anything but an absent file (e.g. a symlink loop)."""
        total = 0
        present = self._listing()
        for e in range(self.epochs):
            name = EPOCH_FILE.format(e)
            if name not in present:
                continue
            try:
                total += os.stat(os.path.join(self.path, name)).st_blocks * 512
            except FileNotFoundError:
                pass
            except OSError as ex:
                raise StoreIOError(f"{os.path.join(self.path, name)}: cannot stat data file: "
                                   f"{ex.strerror or ex}") from None
        return total

    # -- records ------------------------------------------------------------------------
    def epoch_path(self, epoch: int) -> str:
        """The data file of ``epoch`` (whether or not it exists)."""
        return os.path.join(self.path, EPOCH_FILE.format(epoch))

    def _epoch(self, epoch, create: bool = False):
        f = self._files.get(epoch)
        if f is not None:
            return f
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise TypeError(f"epoch must be an integer, got {type(epoch).__name__}")
        epoch = int(epoch)
        if not create and not 0 <= epoch < self.epochs:
            raise EpochMissingError(f"{os.path.join(self.path, MANIFEST)}: epoch {epoch} not in "
                                    f"the store (field 'epochs' = {self.epochs})")
        with self._lock:
            f = self._files.get(epoch)
            if f is None:
                m = self._m
                f = _C._StoreEpoch(self.epoch_path(epoch), m["value_encoding"], m["topk"],
                                   m["num_classes"], self._store_id, m["num_samples"], epoch,
                                   self.mode == "r+" or create, create)
                self._files[epoch] = f
        return f

    def _check_writable(self):
        if self.mode != "r+":
            raise ReadOnlyError(f"{self.path}: store opened read-only (mode='r'); open with "
                                f"mode='r+' to write")

    def write(self, epoch: int, sample_indices, seeds, topk_indices, topk_probs) -> None:
        """Write B records of ``epoch``: seeds[B] (0 <= seed < 2^32), topk_indices[B, K]
        (distinct classes in [0, C)), topk_probs[B, K] (in [0, 1], sum <= 1 + 1e-3).

        Accepts tensors / arrays / lists. The batch is validated completely before any byte is
        written; each record is then written in place with pwrite (no locks: writers of
        disjoint samples never interfere). Rewriting a sample replaces its record.
        """
        self._check_writable()
        f = self._epoch(epoch)
        K = self.topk
        s = _as_int64_1d(sample_indices, "sample_indices")
        B = s.shape[0]
        sd = torch.as_tensor(seeds)
        if sd.dtype.is_floating_point or sd.dtype.is_complex or sd.dtype == torch.bool:
            raise ShapeMismatchError(f"{self.path}: seeds must be integers, got dtype {sd.dtype}")
        ix = torch.as_tensor(topk_indices)
        if ix.dtype.is_floating_point or ix.dtype.is_complex or ix.dtype == torch.bool:
            raise ShapeMismatchError(f"{self.path}: topk_indices must be integers, got dtype "
                                     f"{ix.dtype}")
        pr = torch.as_tensor(topk_probs)
        if not pr.dtype.is_floating_point:
            raise ShapeMismatchError(f"{self.path}: topk_probs must be floating point, got "
                                     f"dtype {pr.dtype}")
        for name, t, shape in (("seeds", sd, (B,)), ("topk_indices", ix, (B, K)),
                               ("topk_probs", pr, (B, K))):
            if tuple(t.shape) != shape:
                raise ShapeMismatchError(
                    f"{self.path}: {name} has shape {list(t.shape)}, expected {list(shape)} "
                    f"(B = {B} samples, K = {K} of the store)")
        f.write(s, sd.to("cpu", torch.int64).contiguous(), ix.to("cpu", torch.int64).contiguous(),
                pr.to("cpu", torch.float32).contiguous())

    def read(self, epoch: int, sample_indices, out: Optional[Sequence[torch.Tensor]] = None,
             pin_memory: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read B records: (seeds int64[B], indices int64[B, K], probs float32[B, K]).

        One C++ call (GIL released): copy the records (by sample index, from a SIGBUS-guarded
        read-only mapping) into private memory, verify every checksum and the record contract
        on that copy, widen. ``out`` = preallocated (seeds, indices, probs) CPU tensors (e.g. pinned)
        to fill. ``pin_memory`` allocates pinned outputs when CUDA is available. Raises
        RecordMissingError / ChecksumError / CorruptRecordError naming epoch and sample.
        """
        f = self._files.get(epoch)
        if f is None:
            f = self._epoch(epoch)
        if type(sample_indices) is torch.Tensor and sample_indices.dtype == torch.int64 \
                and sample_indices.dim() == 1 and sample_indices.is_contiguous() \
                and sample_indices.device.type == "cpu":
            s = sample_indices
        else:
            s = _as_int64_1d(sample_indices, "sample_indices")
        if out is None:
            B, K = s.shape[0], self._m["topk"]
            pin = bool(pin_memory) and torch.cuda.is_available()
            out = (torch.empty(B, dtype=torch.int64, pin_memory=pin),
                   torch.empty((B, K), dtype=torch.int64, pin_memory=pin),
                   torch.empty((B, K), dtype=torch.float32, pin_memory=pin))
        elif len(out) != 3:
            raise ShapeMismatchError("out must be a (seeds, indices, probs) tuple of 3 tensors")
        f.read(s, out[0], out[1], out[2])
        return out[0], out[1], out[2]

    def missing(self, epoch: int, first: int = 0, count: Optional[int] = None) -> np.ndarray:
        """Sample indices (sorted int64 array) of ``epoch`` whose record is not VALID (module
        docstring): never written, torn, corrupted, or invalid content -- exactly the samples
        read() refuses, and those a resumed writer must rewrite. Only samples
        [first, first + count) (default: to the end), e.g. a chunk at a time for a progress bar.
        Reads with pread in 1 MiB chunks and skips sparse holes without reading them."""
        n = self.num_samples - first if count is None else count
        return self._epoch(epoch).missing(first, n).numpy()

    def audit(self, epoch: int, first: int = 0, count: Optional[int] = None) -> dict:
        """Counts of verified / missing / bad records and content findings (see verify CLI)."""
        n = self.num_samples - first if count is None else count
        return self._epoch(epoch).audit(first, n)

    def raw_record(self, epoch: int, sample: int) -> bytes:
        """The record's bytes as stored (for inspection)."""
        return self._epoch(epoch).raw_record(sample)

    def flush(self) -> None:
        """fdatasync every epoch file written through this handle (durability across a
        machine crash; a killed process needs no flush: the page cache keeps its records)."""
        for f in list(self._files.values()):
            f.sync()

    def close(self) -> None:
        """Flush (mode r+) and release the mappings. Idempotent."""
        if self._closed:
            return
        try:
            if self.mode == "r+":
                self.flush()
        finally:
            self._closed = True
            self._files = {}

    def __enter__(self) -> "LogitStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        return (LogitStore.open, (self.path, self.mode))

    def __repr__(self) -> str:
        m = self._m
        return (f"LogitStore({self.path!r}, mode={self.mode!r}, N={m['num_samples']}, "
                f"C={m['num_classes']}, K={m['topk']}, encoding={m['value_encoding']!r}, "
                f"epochs={m['epochs']}, record_size={m['record_size']})")
