"""Replay attestation: proof that this machine replays the pixels the teacher saw.

A store's records are only valid for the exact uint8 images the teacher was shown. Those
are a function of (source bytes, seed, config, pixel pipeline); the config and dataset
fingerprints cover the first three, not the pipeline (libjpeg-turbo version, plan format)
nor file contents that kept their size. So when save-logits starts writing an epoch's
records it records, in ``<store>/attest.json``, the SHA-256 of the replayed uint8 pixels of a few
fixed samples (with their seeds) and the pipeline identity of the machine that did it.
Opening the store for training replays the same samples (milliseconds) and raises
``ReplayMismatchError`` naming the epoch, the sample and the differing component.

Rules (docs/store.md, "Replay attestation"):

* a store with an ``attest.json`` must attest every epoch that is used: an epoch without an
  entry is refused (it may have been saved elsewhere, or its entry removed), never skipped;
* ``attest.json`` is untrusted input: read with a size cap (``max_bytes``: by the store's
  epochs) and a linear pre-check of nesting depth and separator count (so ``json`` never
  builds more than an attestation of this store can hold),
  then validated field by field (types, ranges, the fixed sample set, 64-hex digests); any
  defect is a one-line ``ReplayMismatchError`` naming the file and the field;
* stores saved before attestation existed have no ``attest.json``: they open with a
  warning, and ``tinyvit verify STORE --data SPEC --attest`` attests them from this
  machine's replay (it can only attest what this machine replays).

Lives in the data layer: it needs datasets and replay. Its error class is store-level
(``tinyvit.store.errors.ReplayMismatchError``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import warnings
from typing import Iterable, Optional

import numpy as np

from ..store.errors import ReplayMismatchError

__all__ = ["ReplayMismatchError", "ATTEST_FILE", "pipeline_identity", "attest_samples",
           "record_epoch", "check_replay", "replay_digests", "load_attestation"]

ATTEST_FILE = "attest.json"
ATTEST_VERSION = 1
NUM_SAMPLES = 4
# Bounds on the untrusted file: an entry is ~600 bytes (at most ~6 KB with 16 identity
# components of 256 characters), so a store of E epochs gets 4 KiB + 8 KiB per epoch, never
# more than 4 MiB (> 500 epochs at the worst case, > 6,000 typical); the document is 5 levels
# deep (doc / epochs / entry / samples / sample).
MAX_BYTES = 4 << 20
PER_EPOCH_BYTES = 8 << 10
SEPS_PER_EPOCH = 64  # ',' and ':' of an entry: ~20 (~50 with 16 identity components)


def max_bytes(store) -> int:
    """The size attest.json of ``store`` may have: what its epochs can need, capped."""
    return min(MAX_BYTES, 4096 + PER_EPOCH_BYTES * max(0, int(store.epochs)))
MAX_DEPTH = 5
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_EPOCH_KEY = re.compile(r"(0|[1-9][0-9]{0,8})\Z")


def pipeline_identity() -> dict:
    """What, besides (source, seed, config), the replayed pixels depend on."""
    from ..augment.config import PLAN_FORMAT_VERSION
    from .._ext import build_info

    info = build_info()
    jpeg = (f"libjpeg-turbo {info['libjpeg_turbo_version']}" if info.get("libjpeg_turbo")
            else (f"libjpeg {info.get('jpeg_lib_version')}" if info.get("jpeg") else "none"))
    return {"plan_format": int(PLAN_FORMAT_VERSION), "jpeg": jpeg, "backend": "cpp"}


def attest_samples(num_samples: int, count: int = NUM_SAMPLES) -> np.ndarray:
    """The fixed samples attested: spread over the dataset (first, last, between), so
    class-sorted datasets contribute several classes / files."""
    return np.unique(np.linspace(0, num_samples - 1, min(count, num_samples)).round()
                     .astype(np.int64))


def replay_digests(dataset, cfg, samples, seeds) -> list:
    """SHA-256 of the uint8 (H, W, 3) pixels replay_batch gives the loaders, per sample."""
    from ..augment.replay import replay_batch

    sources = [dataset[int(i)] for i in samples]
    out = replay_batch(sources, [int(s) for s in seeds], cfg, num_threads=1).numpy()
    return [hashlib.sha256(out[k].tobytes()).hexdigest() for k in range(len(sources))]


def _path(store) -> str:
    return os.path.join(store.path, ATTEST_FILE)


# ---- reading: bounded, then validated ------------------------------------------------------
def _read_bytes(path: str, cap: int) -> Optional[bytes]:
    """The file's bytes, at most ``cap``; None when absent. O_NONBLOCK + a regular-file
    check: a FIFO or device named attest.json must not block the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > cap:
            raise ValueError(f"{st.st_size} bytes > the {cap} bytes an attestation of this store "
                             "can have")
        chunks, left = [], cap + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > cap:
            raise ValueError(f"more than {cap} bytes (the file grows while read?)")
        return data
    finally:
        os.close(fd)


def _structure(data: bytes) -> tuple:
    """(nesting depth, separators) of a JSON text, brackets / commas / colons inside strings
    ignored. Vectorised and linear in time and memory (no regex, no recursion): a quote opens
    or closes a string unless an odd run of backslashes precedes it."""
    a = np.frombuffer(data, np.uint8)
    if a.size == 0:
        return 0, 0
    pos = np.arange(a.size, dtype=np.int32)
    last_plain = np.maximum.accumulate(np.where(a != 0x5C, pos, -1))  # last non-backslash <= i
    q = np.flatnonzero(a == 0x22)
    run = (q - 1) - last_plain[np.maximum(q - 1, 0)]  # backslashes right before each quote
    run[q == 0] = 0
    quote = np.zeros(a.size, np.int8)
    quote[q[run % 2 == 0]] = 1
    outside = (np.cumsum(quote, dtype=np.int32) & 1) == 0
    del pos, last_plain, quote
    step = (((a == 0x5B) | (a == 0x7B)) & outside).astype(np.int8) - \
        (((a == 0x5D) | (a == 0x7D)) & outside).astype(np.int8)
    seps = int(np.count_nonzero(((a == 0x2C) | (a == 0x3A)) & outside))
    return int(np.cumsum(step, dtype=np.int32).max(initial=0)), seps


def _no_duplicates(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k[:40]!r}")
        seen.add(k)
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes, max_seps: int):
    depth, seps = _structure(data)
    if depth > MAX_DEPTH:
        raise ValueError(f"nested {depth} levels deep (an attestation has {MAX_DEPTH})")
    if seps > max_seps:  # e.g. a list of 2 million zeros: refused before json builds it
        raise ValueError(f"{seps} ',' / ':' separators, more than the {max_seps} an attestation "
                         "of this store can have")
    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                      parse_constant=_reject_constant)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_identity(ident, bad) -> None:
    if not isinstance(ident, dict) or not ident or len(ident) > 16:
        bad("'identity' is not an object of 1..16 components")
    for k, v in ident.items():
        if len(k) > 64 or not ((isinstance(v, str) and len(v) <= 256) or _is_int(v)):
            bad(f"identity component {k[:64]!r}: not a short string or an integer")


def _check_samples(samples, want, bad) -> None:
    if not isinstance(samples, list) or len(samples) != len(want):
        n = len(samples) if isinstance(samples, list) else type(samples).__name__
        bad(f"'samples' must list the {len(want)} attested samples, has {n}")
    for k, (row, i_want) in enumerate(zip(samples, want)):
        if not isinstance(row, list) or len(row) != 3:
            bad(f"samples[{k}] is not [sample, seed, sha256]")
        i, s, d = row
        if not _is_int(i) or i != i_want:
            bad(f"samples[{k}]: sample {i!r}, expected {i_want} (the fixed attested samples)")
        if not _is_int(s) or not 0 <= s < 1 << 32:
            bad(f"sample {i}: seed {s!r} is not an integer in [0, 2^32)")
        if not isinstance(d, str) or not _HEX64.match(d):
            bad(f"sample {i}: digest {str(d)[:80]!r} is not 64 lowercase hex digits")


def _validate(doc, store, where: str) -> dict:
    """Every field of a parsed attest.json, strictly: ReplayMismatchError on the first defect."""
    def bad(msg):
        raise ReplayMismatchError(f"{where}: {msg}")

    if not isinstance(doc, dict) or set(doc) != {"version", "epochs"}:
        got = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
        bad(f"not an object with exactly 'version' and 'epochs' (has {got})")
    if not _is_int(doc["version"]) or doc["version"] != ATTEST_VERSION:
        bad(f"version {doc['version']!r} (this library reads version {ATTEST_VERSION})")
    if not isinstance(doc["epochs"], dict):
        bad(f"'epochs' is {type(doc['epochs']).__name__}, not an object")
    want = attest_samples(store.num_samples).tolist()
    for key, entry in doc["epochs"].items():
        if not _EPOCH_KEY.match(key) or int(key) >= store.epochs:
            bad(f"epoch key {key[:40]!r} is not an epoch of this store (0..{store.epochs - 1})")
        if not isinstance(entry, dict) or set(entry) != {"identity", "samples"}:
            bad(f"epoch {key}: not an object with exactly 'identity' and 'samples'")
        ebad = (lambda msg, key=key: bad(f"epoch {key}: {msg}"))
        _check_identity(entry["identity"], ebad)
        _check_samples(entry["samples"], want, ebad)
    return doc


def load_attestation(store) -> Optional[dict]:
    """The validated attest.json of ``store``; None when it has none (saved before
    attestation existed). Any defect: ReplayMismatchError, one line, naming the file."""
    where = f"store {store.path!r}: {ATTEST_FILE}"
    try:
        data = _read_bytes(_path(store), max_bytes(store))
        if data is None:
            return None
        doc = _parse(data, SEPS_PER_EPOCH * (1 + max(0, int(store.epochs))))
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        msg = " ".join(str(exc).split())[:200]
        raise ReplayMismatchError(f"{where} unreadable: {type(exc).__name__}: {msg}") from None
    return _validate(doc, store, where)


# ---- writing ---------------------------------------------------------------------------------
def _store_mode(store) -> int:
    """attest.json gets the mode of the store's manifest (0644 unless changed): whoever can
    read the store can check its attestation."""
    try:
        return stat.S_IMODE(os.stat(os.path.join(store.path, "manifest.json")).st_mode) & 0o666
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o644 & ~umask


def _write(store, doc: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".attest-", dir=store.path)
    try:
        os.fchmod(fd, _store_mode(store))  # mkstemp creates 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(store))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record_epoch(store, dataset, cfg, epoch: int, *, new: bool = True) -> dict:
    """Attest ``epoch`` (save-logits calls it before writing the epoch's records; rank 0 only:
    the pixels are a function of (source, seed, config, pipeline), not of the teacher). Seeds are
    the ones save-logits used (sample_seeds(base_seed, epoch, i)). An epoch attested
    before (a resumed or re-run job) is checked instead: this machine must replay the
    same pixels, else ReplayMismatchError -- its records would mix two pipelines.

    ``new=False`` (save-logits wrote none of this epoch's records in this run): an epoch
    without an entry is refused instead of attested -- its records were written by an
    earlier run, maybe on another machine, and this machine can only vouch for its own
    replay. ``tinyvit verify STORE --data SPEC --attest`` attests it explicitly."""
    from ..augment.seeds import sample_seeds
    from ..store.compat import stored_base_seed
    from .index import locked

    samples = attest_samples(store.num_samples)
    seeds = sample_seeds(stored_base_seed(store), epoch, samples).astype(np.int64)
    entry = {"identity": pipeline_identity(),
             "samples": [[int(i), int(s), d] for i, s, d in
                         zip(samples, seeds, replay_digests(dataset, cfg, samples, seeds))]}
    with locked(_path(store)):  # epoch segments saved by concurrent jobs share the file
        doc = load_attestation(store) or {"version": ATTEST_VERSION, "epochs": {}}
        old = doc["epochs"].get(str(epoch))
        if old is not None:
            _compare(store, epoch, old, entry["identity"], {i: d for i, _, d in entry["samples"]})
            return old
        if not new:
            raise ReplayMismatchError(
                f"store {store.path!r}: epoch {epoch} is complete but has no replay attestation "
                f"in {ATTEST_FILE} (written by an earlier run or an older tinyvit, or its entry "
                "was removed); nothing was attested: check and attest it with `tinyvit verify "
                "STORE --data SPEC --attest` on the machine that saved it")
        doc["epochs"][str(epoch)] = entry
        _write(store, doc)
    return entry


# ---- checking --------------------------------------------------------------------------------
def _compare(store, epoch, att: dict, ident: dict, digests: dict) -> None:
    where = f"store {store.path!r}"
    theirs = att["identity"]
    for key in sorted(set(theirs) | set(ident)):
        if theirs.get(key) != ident.get(key):
            raise ReplayMismatchError(
                f"{where}: epoch {epoch}: pixel pipeline component {key!r} differs: the teacher's "
                f"logits were saved with {theirs.get(key)!r}, this machine has {ident.get(key)!r} "
                "(the student would see other pixels; rebuild tinyvit against the same library "
                "or re-save the logits here)")
    for i, _, d in att["samples"]:
        if digests.get(int(i)) != d:
            raise ReplayMismatchError(
                f"{where}: epoch {epoch}: sample {i}: replayed pixels differ from the teacher's "
                f"(sha256 {str(digests.get(int(i)))[:16]}... != attested {d[:16]}...; component: "
                "source bytes -- the dataset file for this sample changed, or the decoder)")


def _check_epoch(store, dataset, cfg, e: int, entry: dict, base_seed: int, ident: dict) -> None:
    from ..augment.seeds import sample_seeds

    samples = [i for i, _, _ in entry["samples"]]
    seeds = [s for _, s, _ in entry["samples"]]
    if max(samples, default=-1) >= len(dataset):
        raise ReplayMismatchError(f"store {store.path!r}: epoch {e}: attested sample "
                                  f"{max(samples)} >= len(dataset) {len(dataset)}")
    # The attested seeds must be the ones this store's records carry. save-logits writes
    # sample_seed(base_seed, epoch, i), so they are checked against that (no record read:
    # opening a loader must not read training records out of order).
    want = sample_seeds(base_seed, e, samples).astype(np.int64).tolist()
    for i, a, b in zip(samples, seeds, want):
        if a != b:
            raise ReplayMismatchError(f"store {store.path!r}: epoch {e}: sample {i}: attested "
                                      f"seed {a} != sample_seed(base_seed={base_seed}, {e}, {i}) "
                                      f"= {b} (component: seed; {ATTEST_FILE} of another store?)")
    _compare(store, e, entry, ident, dict(zip(samples, replay_digests(dataset, cfg, samples, seeds))))


def check_replay(store, dataset, cfg, epochs: Optional[Iterable[int]] = None) -> int:
    """Replay the attested samples of ``epochs`` (default: every attested epoch) and raise
    ReplayMismatchError if this machine differs, or if one of ``epochs`` holds records but
    has no entry in a store that has an attestation. Returns the number of epochs checked; 0 with a warning
    for a store without attest.json (saved before attestation existed)."""
    from ..store.compat import stored_base_seed

    doc = load_attestation(store)
    if doc is None:
        warnings.warn(f"store {store.path!r} has no replay attestation ({ATTEST_FILE}; saved "
                      "by an older tinyvit, or removed): cannot check that this machine replays "
                      "the teacher's pixels (attest it: tinyvit verify STORE --data SPEC --attest)",
                      RuntimeWarning, stacklevel=2)
        return 0
    att = doc["epochs"]
    todo = sorted(int(e) for e in att) if epochs is None else [int(e) for e in epochs]
    for e in todo:
        if str(e) not in att and _has_records(store, e):
            have = sorted(int(k) for k in att)
            raise ReplayMismatchError(
                f"store {store.path!r}: epoch {e} has no replay attestation in {ATTEST_FILE} "
                f"(attested epochs: {have[:10]}{' ...' if len(have) > 10 else ''}); an epoch "
                "is attested when save-logits writes it: it was not saved here, or its entry was "
                "removed (attest it explicitly: tinyvit verify STORE --data SPEC --attest)")
    todo = [e for e in todo if str(e) in att]
    base_seed = stored_base_seed(store)
    ident = pipeline_identity()
    for e in todo:
        _check_epoch(store, dataset, cfg, e, att[str(e)], base_seed, ident)
    return len(todo)


def _has_records(store, epoch: int) -> bool:
    """Whether an unattested epoch holds records its attestation would vouch for. An epoch
    not in the store, or with no record written, has nothing to mismatch: the caller's own
    checks name it (EpochMissingError, RecordMissingError). Only reached when the entry is
    missing, so the scan (holes are skipped unread) is on the refusal path only."""
    from ..store.errors import EpochMissingError

    if not 0 <= epoch < store.epochs:
        return False
    try:
        return store.missing(epoch).size < store.num_samples
    except EpochMissingError:
        return False


def attest_existing(store, dataset, cfg, epochs: Iterable[int]) -> list:
    """``tinyvit verify --attest``: attest every complete epoch of ``epochs`` that has no
    entry yet from this machine's replay (entries already there are checked, never
    replaced). Returns the epochs newly attested. An incomplete epoch is refused
    (RecordMissingError): an attestation vouches for a finished epoch."""
    from ..store.errors import RecordMissingError

    before = load_attestation(store)
    have = set(before["epochs"]) if before else set()
    added = []
    for e in epochs:
        missing = store.missing(int(e))
        if missing.size:
            raise RecordMissingError(f"store {store.path!r}: epoch {e} is incomplete ({missing.size} "
                                     f"of {store.num_samples} records missing): not attested")
        record_epoch(store, dataset, cfg, int(e))
        if str(int(e)) not in have:
            added.append(int(e))
    return added
