"""Replay attestation: proof that this machine replays the pixels the teacher saw.

A store's records are only valid for the exact uint8 images the teacher was shown. Those
are a function of (source bytes, seed, config, pixel pipeline); the config and dataset
fingerprints cover the first three, not the pipeline (libjpeg-turbo version, plan format)
nor file contents that kept their size. So when save-logits completes an epoch it
records, in ``<store>/attest.json``, the SHA-256 of the replayed uint8 pixels of a few
fixed samples (with their seeds) and the pipeline identity of the machine that did it.
Opening the store for training replays the same samples (milliseconds) and raises
``ReplayMismatchError`` naming the epoch, the sample and the differing component.

Stores saved before attestation existed have no attest.json: they open with a warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from typing import Iterable, Optional

import numpy as np

from .errors import StoreMismatchError

__all__ = ["ReplayMismatchError", "ATTEST_FILE", "pipeline_identity", "attest_samples",
           "record_epoch", "check_replay", "replay_digests"]

ATTEST_FILE = "attest.json"
ATTEST_VERSION = 1
NUM_SAMPLES = 4


from ..errors import ReplayMismatchError  # noqa: E402  (defined with every error in tinyvit.errors)


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


def _load(store) -> Optional[dict]:
    p = _path(store)
    try:
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ReplayMismatchError(f"store {store.path!r}: {ATTEST_FILE} unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != ATTEST_VERSION or \
            not isinstance(doc.get("epochs"), dict):
        raise ReplayMismatchError(f"store {store.path!r}: {ATTEST_FILE}: version "
                                  f"{doc.get('version') if isinstance(doc, dict) else None!r} / "
                                  f"no 'epochs' (this library writes version {ATTEST_VERSION})")
    return doc


def record_epoch(store, dataset, cfg, epoch: int) -> dict:
    """Attest ``epoch`` (call once its records are all written; rank 0 only). Seeds are
    the ones save-logits used (sample_seeds(base_seed, epoch, i)). An epoch attested
    before (a resumed or re-run job) is checked instead: this machine must replay the
    same pixels, else ReplayMismatchError -- its records would mix two pipelines."""
    from ..augment.seeds import sample_seeds
    from ..data.index import locked
    from .compat import stored_base_seed

    samples = attest_samples(store.num_samples)
    seeds = sample_seeds(stored_base_seed(store), epoch, samples).astype(np.int64)
    entry = {"identity": pipeline_identity(),
             "samples": [[int(i), int(s), d] for i, s, d in
                         zip(samples, seeds, replay_digests(dataset, cfg, samples, seeds))]}
    with locked(_path(store)):  # epoch segments saved by concurrent jobs share the file
        doc = _load(store) or {"version": ATTEST_VERSION, "epochs": {}}
        old = doc["epochs"].get(str(epoch))
        if old is not None:
            _compare(store, epoch, old, entry["identity"], {i: d for i, _, d in entry["samples"]})
            return old
        doc["epochs"][str(epoch)] = entry
        fd, tmp = tempfile.mkstemp(prefix=".attest-", dir=store.path)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(store))
    return entry


def _compare(store, epoch, att: dict, ident: dict, digests: dict) -> None:
    where = f"store {store.path!r}"
    theirs = att.get("identity") or {}
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


def check_replay(store, dataset, cfg, epochs: Optional[Iterable[int]] = None) -> int:
    """Replay the attested samples of ``epochs`` (default: every attested epoch) and raise
    ReplayMismatchError if this machine differs. Returns the number of epochs checked;
    0 with a warning for a store without attestation (saved before it existed)."""
    doc = _load(store)
    if doc is None:
        warnings.warn(f"store {store.path!r} has no replay attestation ({ATTEST_FILE}; saved "
                      "by an older tinyvit): cannot check that this machine replays the "
                      "teacher's pixels", RuntimeWarning, stacklevel=2)
        return 0
    att = doc["epochs"]
    todo = sorted(int(e) for e in att) if epochs is None else \
        [int(e) for e in epochs if str(int(e)) in att]
    from ..augment.seeds import sample_seeds
    from .compat import stored_base_seed

    base_seed = stored_base_seed(store)
    ident = pipeline_identity()
    for e in todo:
        entry = att[str(e)]
        try:
            samples = [int(i) for i, _, _ in entry["samples"]]
            seeds = [int(s) for _, s, _ in entry["samples"]]
        except (KeyError, TypeError, ValueError):
            raise ReplayMismatchError(f"store {store.path!r}: {ATTEST_FILE}: epoch {e}: "
                                      "malformed 'samples'") from None
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
        digests = dict(zip(samples, replay_digests(dataset, cfg, samples, seeds)))
        _compare(store, e, entry, ident, digests)
    return len(todo)


def verify_cli(store, data: str, epochs, log=print) -> int:
    """``tinyvit verify --data SPEC``: check_replay with the store's own config; prints
    one line, returns the number of findings (0 or 1)."""
    from ..augment.config import AugConfig
    from ..data.datasets import open_dataset
    from .errors import StoreError

    try:
        n = check_replay(store, open_dataset(data), AugConfig.from_dict(
            store.manifest["meta"]["aug_config"]), epochs=epochs)
    except (StoreError, ValueError, KeyError, TypeError) as ex:
        log(f"replay: {type(ex).__name__}: {ex}")
        return 1
    log(f"replay: OK ({n} attested epochs replay the teacher's pixels on this machine)")
    return 0
