"""manifest.json: the store's self-description, published atomically, validated on read."""
from __future__ import annotations

import errno
import json
import os
import secrets
import stat

from .._ext import _C
from .errors import FormatVersionError, ManifestError, StoreIOError

FORMAT_NAME = "tinyvit-logit-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EPOCH_FILE = "epoch_{:05d}.bin"
ENCODINGS = ("fp16", "compact")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_manifest(path: str, manifest: dict, exclusive: bool) -> bool:
    """Atomically publish manifest.json: tmp file + fsync, then link (exclusive) or rename.

    Returns False when ``exclusive`` and a manifest already exists (someone else created it).
    Any OS error (a full disk, a read-only file system) raises StoreIOError naming the file;
    the tmp file is removed and the previous manifest.json, if any, is left as it was.
    """
    final = os.path.join(path, MANIFEST)
    tmp = os.path.join(path, f".{MANIFEST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreIOError(f"{tmp}: cannot create manifest tmp file: {e.strerror}") from None
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (e.g. close to a full disk)
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            try:
                os.link(tmp, final)  # atomic and fails if it exists: first creator wins
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                if os.path.lexists(final):  # file systems without hard links
                    return False
                os.rename(tmp, final)
                tmp = None
        else:
            os.replace(tmp, final)
            tmp = None
    except OSError as e:
        raise StoreIOError(f"{final}: cannot write manifest: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path)
    return True


# The store's size limits, defined once in csrc/core/store/store_format.h (the C++ layout and
# epoch-file checks use the same constants); "text" holds how error messages print them.
LIMITS = _C._store_limits()
_MAX_MANIFEST_BYTES = LIMITS["max_manifest_bytes"]


def limit_violation(num_samples: int, num_classes: int, topk: int, epochs: int):
    """(field, value, allowed range as text) of the first count outside LIMITS, else None."""
    lim, text = LIMITS, LIMITS["text"]
    for field, v, lo, hi, hi_text in (
            ("num_samples", num_samples, 1, lim["max_samples"], text["max_samples"]),
            ("num_classes", num_classes, 1, lim["max_classes"], text["max_classes"]),
            ("topk", topk, 1, min(num_classes, lim["max_topk"]),
             f"min(num_classes, {text['max_topk']})"),
            ("epochs", epochs, 0, lim["max_epochs"], text["max_epochs"])):
        if not lo <= v <= hi:
            return field, v, f"[{lo}, {hi_text}]"
    return None


def index_dtype(num_classes: int) -> str:
    """The one index dtype of a store with num_classes classes (uint16 when they fit)."""
    return "uint16" if num_classes <= LIMITS["max_u16_classes"] else "int32"


def _read_bytes_regular(fpath: str, limit: int) -> bytes:
    """Read a regular file; anything else (a FIFO, a device, a directory) is refused without
    blocking (O_NONBLOCK on open, S_ISREG on the open descriptor)."""
    fd = os.open(fpath, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{fpath}: manifest is not a regular file")
        if st.st_size > limit:
            raise ManifestError(f"{fpath}: manifest is {st.st_size} bytes (more than {limit})")
        chunks, n = [], 0
        while n <= limit:
            b = os.read(fd, min(1 << 20, limit + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
        if n > limit:
            raise ManifestError(f"{fpath}: manifest grew past {limit} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _show(v) -> str:
    """repr of a manifest value for an error message, cut short (a field may be megabytes)."""
    r = repr(v)
    return r if len(r) <= 80 else r[:60] + f"... ({len(r)} chars)"


_INT_FIELDS = ("format_version", "num_samples", "num_classes", "topk", "record_size", "epochs")
_STR_FIELDS = ("format", "index_dtype", "value_encoding", "store_id", "checksum", "epoch_file")


def _read_manifest(path: str) -> dict:
    mpath = os.path.join(path, MANIFEST)
    try:
        raw = _read_bytes_regular(mpath, _MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestError(f"{mpath}: manifest missing (not a logit store, or creation did "
                            f"not finish)") from None
    except OSError as e:
        raise ManifestError(f"{mpath}: cannot read manifest: {e}") from None
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"{mpath}: manifest is not valid JSON: {e}") from None
    except RecursionError:
        raise ManifestError(f"{mpath}: manifest is not valid JSON: nested too deeply") from None
    if not isinstance(m, dict):
        raise ManifestError(f"{mpath}: manifest must be a JSON object, got {type(m).__name__}")
    if m.get("format") != FORMAT_NAME:
        raise ManifestError(f"{mpath}: field 'format' must be {FORMAT_NAME!r}, got "
                            f"{_show(m.get('format'))}")
    v = m.get("format_version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise ManifestError(f"{mpath}: field 'format_version' missing or not an integer: {_show(v)}")
    if v != FORMAT_VERSION:
        raise FormatVersionError(f"{mpath}: field 'format_version' is {v}; this tinyvit reads "
                                 f"version {FORMAT_VERSION}")
    for k in _INT_FIELDS:
        x = m.get(k)
        if not isinstance(x, int) or isinstance(x, bool):
            raise ManifestError(f"{mpath}: field {k!r} missing or not an integer: {_show(x)}")
    for k in _STR_FIELDS:
        if not isinstance(m.get(k), str):
            raise ManifestError(f"{mpath}: field {k!r} missing or not a string: {_show(m.get(k))}")
    if "aug_fingerprint" not in m:
        raise ManifestError(f"{mpath}: field 'aug_fingerprint' missing (a string, or null for "
                            f"stores written without one)")
    if not isinstance(m["aug_fingerprint"], (str, type(None))):
        raise ManifestError(f"{mpath}: field 'aug_fingerprint' must be a string or null, got "
                            f"{type(m['aug_fingerprint']).__name__}")
    if not isinstance(m.get("meta"), dict):
        raise ManifestError(f"{mpath}: field 'meta' missing or not a JSON object: "
                            f"{type(m.get('meta')).__name__}")
    n, c, k, e = m["num_samples"], m["num_classes"], m["topk"], m["epochs"]
    bad = limit_violation(n, c, k, e)
    if bad is not None:
        raise ManifestError(f"{mpath}: field {bad[0]!r} = {bad[1]} outside {bad[2]}")
    if m["value_encoding"] not in ENCODINGS:
        raise ManifestError(f"{mpath}: field 'value_encoding' = {_show(m['value_encoding'])}, "
                            f"expected one of {ENCODINGS}")
    want_dtype = index_dtype(c)
    if m["index_dtype"] != want_dtype:
        raise ManifestError(f"{mpath}: field 'index_dtype' = {_show(m['index_dtype'])}, expected "
                            f"{want_dtype!r} for num_classes = {c}")
    if m["checksum"] != "crc32c":
        raise ManifestError(f"{mpath}: field 'checksum' = {_show(m['checksum'])}, expected 'crc32c'")
    if m["epoch_file"] != EPOCH_FILE:
        raise ManifestError(f"{mpath}: field 'epoch_file' = {_show(m['epoch_file'])}, expected "
                            f"{EPOCH_FILE!r}")
    try:
        sid = int(m["store_id"], 16)
        if not 0 <= sid < 1 << 64 or len(m["store_id"]) != 16:
            raise ValueError
    except ValueError:
        raise ManifestError(f"{mpath}: field 'store_id' = {_show(m['store_id'])} is not 16 hex "
                            f"digits") from None
    layout = _C._store_layout(m["value_encoding"], k, c, sid)
    if m["record_size"] != layout["record_size"]:
        raise ManifestError(f"{mpath}: field 'record_size' = {m['record_size']}, but "
                            f"{m['value_encoding']} records with K={k}, C={c} are "
                            f"{layout['record_size']} bytes")
    return m
