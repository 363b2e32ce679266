"""The compact, cached image index behind ImageFolder and TarShards.

One file per dataset (``*.tvi``): an 8-byte magic, a little-endian u64 header length, a
JSON header (what the index describes, how to validate it, the dataset fingerprint,
class names, where each array lies and its CRC-32, and a checksum of the header itself),
then the arrays, each 64-byte aligned. An open reads the file with ``pread`` into private
memory and verifies everything before any of it is used: the header's structure and types
against a schema per kind, the layout against the file size, every checksum, and the
invariants of the contents (offsets monotonic, labels in range, ...). Any defect raises
IndexError_ naming the file, and ``open_or_build`` rebuilds: a cache never changes what a
dataset *is*. Private memory, not a mapping, because a mapped file truncated under a
running process kills it with SIGBUS on the next numpy access, which no Python code can
guard; the cost was measured (docs/data.md): reading + verifying a 1 M-entry index takes
tens of milliseconds, and forked DataLoader workers still share the pages (never written).

Arrays of a folder index: ``path_blob`` (uint8, the relative paths joined) and
``path_off`` (int64, N + 1), ``size`` (int64 bytes), ``mtime`` (int64 ns), ``wh``
(int32 (N, 2) width/height from the C++ header parse; -1 where Pillow must be asked),
``label`` (int64), plus the directory list (``dir_blob``/``dir_off``/``dir_mtime``)
used to validate it. Tar-shard indexes hold shard / offset / size / wh / label / keys.

Writes are atomic (a temporary file in the same directory, fsync, ``os.replace``) and
builders serialise on an ``fcntl`` lock file, so when 64 ranks start at once one builds
and the others wait and read the result; readers never lock.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import stat
import struct
import sys
import tempfile
import zlib
from contextlib import contextmanager
from typing import Dict, Optional

import numpy as np

from .idx import DatasetError

__all__ = ["ImageIndex", "IndexError_", "write_index", "index_cache_dir", "default_index_path",
           "locked", "PathList", "INDEX_VERSION"]

MAGIC = b"TVIDX\x00\x01\n"
# 2: every array's CRC-32 and a header checksum; read into private memory (see ImageIndex)
INDEX_VERSION = 2
_ALIGN = 64
# a header is a few names per class / shard: far below this; a larger claim is corruption
_MAX_HEADER = 256 << 20
# kind -> {array: (dtype, shape given the header: "n" = count, "n+1", "n,2", "*" = any)}
_ARRAYS = {
    "folder": {"path_blob": ("|u1", "*"), "path_off": ("<i8", "n+1"), "size": ("<i8", "n"),
               "mtime": ("<i8", "n"), "wh": ("<i4", "n,2"), "label": ("<i8", "n"),
               "dir_blob": ("|u1", "*"), "dir_off": ("<i8", "*"), "dir_mtime": ("<i8", "*")},
    "tarshards": {"shard": ("<i4", "n"), "offset": ("<i8", "n"), "size": ("<i8", "n"),
                  "wh": ("<i4", "n,2"), "label": ("<i8", "n"), "key_blob": ("|u1", "*"),
                  "key_off": ("<i8", "n+1")},
}
# kind -> {header field: JSON type}; "strs" / "ints": a list of those
_FIELDS = {
    "folder": {"root": "str", "extensions": "strs", "classes": "strs", "fingerprint": "str"},
    "tarshards": {"shards": "strs", "shard_size": "ints", "shard_mtime": "ints",
                  "fingerprint": "str"},
}


from ..errors import IndexError_  # noqa: E402  (defined with every error in tinyvit.errors)


def index_cache_dir() -> str:
    """``$TINYVIT_INDEX_DIR``, else ``$XDG_CACHE_HOME/tinyvit/index`` (``~/.cache/...``)."""
    d = os.environ.get("TINYVIT_INDEX_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinyvit", "index")


def default_index_path(kind: str, identity: str) -> str:
    """The cache file for a dataset identity (absolute root + options, or the shard list)."""
    key = hashlib.sha256(f"{kind}\0{identity}".encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(index_cache_dir(), f"{kind}-{key}.tvi")


@contextmanager
def locked(path: str):
    """An exclusive advisory lock on ``path + '.lock'`` (created), held for the block."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: builds may race, writes stay atomic
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                raise
        yield
    finally:
        os.close(fd)  # releases the lock


def header_checksum(header: dict) -> str:
    """CRC-32 of the header's canonical JSON without its ``checksum`` field (so an edit of
    any field, classes and fingerprint included, is seen; whitespace is not content)."""
    body = {k: v for k, v in header.items() if k != "checksum"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _digest(blob.encode("ascii"))


def _bytes_of(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _digest(buf) -> str:
    # CRC-32 as the store checks its records (CRC-32C): corruption, not forgery, is what a
    # cache must catch, and zlib's is ~3x cheaper than sha256 here (16 vs 48 ms per 68 MB);
    # zlib releases the GIL on large buffers, so arrays are checked in parallel
    return "crc32:%08x" % zlib.crc32(buf)


def write_index(path: str, header: dict, arrays: Dict[str, np.ndarray]) -> None:
    """Write an index atomically: readers see the old file or the whole new one. Every
    array carries its CRC-32 and the header its own checksum (verified at every open)."""
    arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
    layout, pos = {}, 0
    for name, a in arrays.items():
        pos = (pos + _ALIGN - 1) // _ALIGN * _ALIGN
        layout[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": pos,
                        "crc32": _digest(_bytes_of(a))}
        pos += a.nbytes
    head = dict(header, version=INDEX_VERSION, arrays=layout)
    head["checksum"] = header_checksum(head)
    blob = json.dumps(head, separators=(",", ":")).encode()
    start = (16 + len(blob) + _ALIGN - 1) // _ALIGN * _ALIGN
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tvi", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(blob)) + blob)
            f.write(b"\0" * (start - 16 - len(blob)))
            for name, a in arrays.items():
                f.seek(start + layout[name]["offset"])
                f.write(_bytes_of(a))
            f.truncate(start + pos)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shape_ok(rule: str, shape: tuple, n: int) -> bool:
    return {"*": len(shape) == 1, "n": shape == (n,), "n+1": shape == (n + 1,),
            "n,2": shape == (n, 2)}[rule]


def check_header(hd, size: int, hlen: int) -> Dict[str, tuple]:
    """The header's structure, types and layout against the file size -> {array: (dtype,
    shape, absolute offset, crc32)}. Raises ValueError saying what is wrong (the caller
    names the file). Nothing here trusts a field before its type is checked."""
    if not isinstance(hd, dict):
        raise ValueError(f"header is a JSON {type(hd).__name__}, not an object")
    if hd.get("version") != INDEX_VERSION:
        raise ValueError(f"version {hd.get('version')!r}, this library reads {INDEX_VERSION}")
    if hd.get("checksum") != header_checksum(hd):
        raise ValueError("header checksum mismatch (the header was edited or is corrupt)")
    kind = hd.get("kind")
    if not isinstance(kind, str) or kind not in _ARRAYS:  # (a list or dict is unhashable)
        raise ValueError(f"unknown kind {kind!r}")
    n = hd.get("count")
    if not _is_int(n) or n < 0:
        raise ValueError(f"field 'count' is {n!r}, not a count")
    kinds = {"str": lambda v: isinstance(v, str),
             "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
             "ints": lambda v: isinstance(v, list) and all(_is_int(x) for x in v)}
    for field, t in _FIELDS[kind].items():
        if not kinds[t](hd.get(field)):
            raise ValueError(f"field {field!r} is missing or not a {t}")
    arrays = hd.get("arrays")
    if not isinstance(arrays, dict) or set(arrays) != set(_ARRAYS[kind]):
        raise ValueError(f"field 'arrays' does not list exactly {sorted(_ARRAYS[kind])}")
    start = (16 + hlen + _ALIGN - 1) // _ALIGN * _ALIGN
    out, end = {}, start
    for name, (dtype, rule) in _ARRAYS[kind].items():
        spec = arrays[name]
        if not isinstance(spec, dict) or spec.get("dtype") != dtype:
            raise ValueError(f"array {name!r}: dtype is not {dtype}")
        shape, off, dig = spec.get("shape"), spec.get("offset"), spec.get("crc32")
        if not (isinstance(shape, list) and all(_is_int(s) and s >= 0 for s in shape)
                and _shape_ok(rule, tuple(shape), n)):
            raise ValueError(f"array {name!r}: shape {shape!r} does not fit count {n}")
        if not (_is_int(off) and off >= 0 and isinstance(dig, str)):
            raise ValueError(f"array {name!r}: bad offset or checksum field")
        stop = start + off + math.prod(shape) * np.dtype(dtype).itemsize
        if stop > size:
            raise ValueError(f"array {name!r} runs past the end of the file ({stop} > {size}; "
                             "truncated index)")
        out[name] = (np.dtype(dtype), tuple(shape), start + off, dig)
        end = max(end, stop)
    if end != size:
        raise ValueError(f"file is {size} bytes, its layout ends at {end} (truncated or extended)")
    return out


def _offsets_ok(off: np.ndarray, blob_len: int) -> bool:
    return (len(off) >= 1 and off[0] == 0 and off[-1] == blob_len
            and bool(np.all(off[1:] >= off[:-1])))


def check_content(hd: dict, a: Dict[str, np.ndarray]) -> None:
    """What a checksummed index must still satisfy (another writer's bug must not become a
    crash or a wrong read): offsets monotonic and inside their blobs, sizes >= 0, labels in
    range and grouped, (width, height) both -1 or both > 0, shards and members in range."""
    wh = a["wh"]
    if not _offsets_ok(a["path_off" if "path_off" in a else "key_off"],
                       len(a["path_blob" if "path_blob" in a else "key_blob"])):
        raise ValueError("string offsets are not monotonic inside their blob")
    # (written elementwise: numpy's .all(axis=1) on an (N, 2) int32 array costs 50x more)
    if (a["size"] < 0).any() or ((wh < 1) & (wh != -1)).any() or not np.array_equal(
            wh[:, 0] == -1, wh[:, 1] == -1):
        raise ValueError("a negative file size or an invalid (width, height)")
    lab = a["label"]
    if hd["kind"] == "folder":
        if len(a["dir_off"]) != len(a["dir_mtime"]) + 1 or not _offsets_ok(a["dir_off"],
                                                                             len(a["dir_blob"])):
            raise ValueError("the directory list is inconsistent")
        if hd["classes"] != sorted(set(hd["classes"])) or len(lab) and (
                lab.min() < 0 or lab.max() >= len(hd["classes"]) or (lab[1:] < lab[:-1]).any()):
            raise ValueError("classes unsorted, or labels out of range or not grouped by class")
        return
    ns = len(hd["shards"])
    if len(hd["shard_size"]) != ns or len(hd["shard_mtime"]) != ns:
        raise ValueError("shard_size / shard_mtime do not list every shard")
    sh, off = a["shard"], a["offset"]
    if len(lab) and lab.min() < 0 and (lab.max() >= 0 or lab.min() < -1):
        raise ValueError("labels must all be -1 (unlabelled) or all >= 0")
    if len(sh) and (sh.min() < 0 or sh.max() >= ns or off.min() < 0 or
                    ((off + a["size"]) > np.asarray(hd["shard_size"], np.int64)[sh]).any()):
        raise ValueError("a member's shard, offset or label is out of range")


def _read_private(path: str):
    """-> (header dict, {name: read-only array}) read with pread into private memory: a file
    truncated or rewritten in place after this returns cannot fault the process (a mapping
    would raise SIGBUS on any numpy access), and the bytes checked are the bytes used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO cannot block
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IndexError_(f"index {path!r}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IndexError_(f"index {path!r}: not a regular file")
        size = st.st_size
        head = os.pread(fd, 16, 0)
        if len(head) < 16 or head[:8] != MAGIC:
            raise IndexError_(f"index {path!r}: bad magic (not a tinyvit index)")
        (hlen,) = struct.unpack("<Q", head[8:16])
        if hlen > min(size - 16, _MAX_HEADER):
            raise IndexError_(f"index {path!r}: header length {hlen} past the end of the file "
                             f"({size} bytes; truncated index)")
        try:
            hd = json.loads(os.pread(fd, hlen, 16))
            layout = check_header(hd, size, hlen)
        except (ValueError, RecursionError) as exc:  # JSON, UTF-8, structure: all ValueError
            raise IndexError_(f"index {path!r}: {type(exc).__name__}: {exc}"[:500]) from None
        buf = np.empty(size, np.uint8)
        mv, got = memoryview(buf), 0
        while got < size:
            r = os.preadv(fd, [mv[got:]], got)
            if r <= 0:
                raise IndexError_(f"index {path!r}: truncated while being read")
            got += r
    finally:
        os.close(fd)
    buf.flags.writeable = False
    arrays = {name: np.frombuffer(buf, dt, math.prod(shape), off).reshape(shape)
              for name, (dt, shape, off, _) in layout.items()}
    _verify(path, hd, arrays, layout)
    return hd, arrays, size


def _verify(path, hd, arrays, layout) -> None:
    big = sum(a.nbytes for a in arrays.values()) > (8 << 20)
    digests = _map(lambda k: _digest(_bytes_of(arrays[k])), list(arrays),
                   threads=2 if big else 1)
    for (name, got) in zip(arrays, digests):
        if got != layout[name][3]:
            raise IndexError_(f"index {path!r}: array {name!r} checksum mismatch (the index "
                              "was edited or is corrupt)")
    try:
        check_content(hd, arrays)
    except ValueError as exc:
        raise IndexError_(f"index {path!r}: {exc}") from None


def _map(fn, items, threads: int) -> list:
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, items))


class ImageIndex:
    """An index file read into private memory and verified: ``header`` (dict) and
    ``arrays`` (read-only numpy views). Any defect -- magic, version, header structure or
    types, layout, a checksum, inconsistent contents -- raises IndexError_ naming the file
    (open_or_build then rebuilds). Pickles as its path (a worker reads the same file)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.header, self.arrays, self._nbytes = _read_private(self.path)

    def __len__(self) -> int:
        return int(self.header["count"])

    def __reduce__(self):
        return (ImageIndex, (self.path,))

    def nbytes(self) -> int:
        return self._nbytes

    def __repr__(self) -> str:
        return f"ImageIndex({self.path!r}, {self.header.get('kind')}, {len(self)} entries)"


class PathList:
    """A read-only sequence of strings over (blob, offsets): no Python object per entry
    until one is asked for."""

    def __init__(self, blob: np.ndarray, off: np.ndarray, rows: Optional[np.ndarray] = None):
        self._blob, self._off, self._rows = blob, off, rows

    def __len__(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._off) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} entries")
        r = int(self._rows[i]) if self._rows is not None else i
        return os.fsdecode(self._blob[self._off[r]:self._off[r + 1]].tobytes())

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]

    def __eq__(self, other):
        return list(self) == list(other)


def pack_strings(items) -> tuple:
    """(blob uint8, offsets int64 [n + 1]) of the fs-encoded strings."""
    enc = [os.fsencode(s) for s in items]
    off = np.zeros(len(enc) + 1, np.int64)
    if enc:
        np.cumsum([len(e) for e in enc], out=off[1:])
    return np.frombuffer(b"".join(enc), np.uint8).copy(), off


def _default_threads() -> int:
    """Threads for listing, stat and header reads: I/O-bound, so 4 per usable CPU (at most
    32); the CPU count is replay's (one rule for the whole library)."""
    from ..augment.replay import _default_threads as cpu_threads

    return max(1, min(32, 4 * cpu_threads()))


def progress_bar(total: int, desc: str, enabled: Optional[bool] = None, *, unit: str = "file",
                 unit_scale: bool = False, auto_from: int = 20000):
    """The one progress bar (index builds here, ``tinyvit inspect/verify`` in cli/store.py):
    a tqdm bar on stderr, or a no-op one when disabled. ``enabled=None``: a bar only when
    ``total >= auto_from`` (big enough to wait for)."""
    on = enabled if enabled is not None else total >= auto_from
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm, on = None, False
    if not on:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False,
                file=sys.stderr, dynamic_ncols=True)


class _NoBar:
    unit = ""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _pillow_fallback(wh: np.ndarray, source_of) -> None:
    """Headers the C++ parser does not read (TIFF, odd JPEGs): ask Pillow; an unreadable
    one stays -1 and raises ImageDecodeError naming the file when its size is needed."""
    from .sources import source_size

    for i in np.flatnonzero(wh[:, 0] < 0).tolist():
        try:
            wh[i] = source_size(source_of(i))
        except Exception:  # noqa: BLE001 - reported when the sample is used
            pass


def open_or_build(path: Optional[str], stale, build, *, kind: str, identity: str) -> ImageIndex:
    """Read the index at ``path`` (default: the cache file for identity) when ``stale(index)``
    says it is current, else build it under the lock (re-checking first: another rank may
    have just built it) and write it atomically. A file that fails any check of ImageIndex
    is rebuilt the same way. An unwritable cache dir (EACCES / EPERM / EROFS) is not an
    error: the index is then built in memory (warning); any other failure to write it (the
    path is a directory, ...) is IndexError_ naming the path."""
    path = path or default_index_path(kind, identity)

    def current():
        try:
            ix = ImageIndex(path)
        except (FileNotFoundError, IndexError_):
            return None
        return ix if stale(ix) is None else None

    ix = current()
    if ix is not None:
        return ix
    try:
        with locked(path):
            ix = current()
            if ix is None:
                header, arrays = build()
                write_index(path, header, arrays)
                ix = ImageIndex(path)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            # e.g. the index path is a directory: typed, naming it (the dataset is untouched)
            raise IndexError_(f"index {path!r}: cannot write it: {exc.strerror or exc}") from None
        import warnings

        warnings.warn(f"tinyvit: cannot write the dataset index {path!r} (set TINYVIT_INDEX_DIR);"
                      " building it in memory for this process", RuntimeWarning, stacklevel=3)
        header, arrays = build()
        ix = MemoryIndex(header, arrays)
    return ix


class MemoryIndex:
    """An index held in memory (index=False, or no writable cache): same interface."""

    def __init__(self, header: dict, arrays: Dict[str, np.ndarray]):
        self.path = None
        self.header = dict(header, version=INDEX_VERSION)
        self.arrays = arrays

    def __len__(self) -> int:
        return int(self.header["count"])
