"""The compact, cached image index behind ImageFolder and TarShards.

One file per dataset (``*.tvi``): an 8-byte magic, a little-endian u64 header length, a
JSON header (what the index describes, how to validate it, the dataset fingerprint,
class names, and where each array lies), then the arrays, each 64-byte aligned. The file
is opened with ``mmap`` and every array is a read-only numpy view into the mapping, so
14 M files cost no Python object per file, a reopen parses one JSON header, and forked
DataLoader workers share the pages (a read-only mapping is never copied on write; numpy
views touch no per-element reference counts).

Arrays of a folder index: ``path_blob`` (uint8, the relative paths joined) and
``path_off`` (int64, N + 1), ``size`` (int64 bytes), ``mtime`` (int64 ns), ``wh``
(int32 (N, 2) width/height from the C++ header parse; -1 where Pillow must be asked),
``label`` (int64), plus the directory list (``dir_blob``/``dir_off``/``dir_mtime``)
used to validate it. Tar-shard indexes hold shard / offset / size / wh / label / keys.

Writes are atomic (a temporary file in the same directory, fsync, ``os.replace``) and
builders serialise on an ``fcntl`` lock file, so when 64 ranks start at once one builds
and the others wait and map the result; readers never lock.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import struct
import tempfile
from contextlib import contextmanager
from typing import Dict, Optional

import numpy as np

from .idx import DatasetError

__all__ = ["ImageIndex", "IndexError_", "write_index", "index_cache_dir", "default_index_path",
           "locked", "PathList", "INDEX_VERSION"]

MAGIC = b"TVIDX\x00\x01\n"
INDEX_VERSION = 1
_ALIGN = 64


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


def write_index(path: str, header: dict, arrays: Dict[str, np.ndarray]) -> None:
    """Write an index atomically: readers see the old file or the whole new one."""
    layout, pos = {}, 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        pos = (pos + _ALIGN - 1) // _ALIGN * _ALIGN
        layout[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": pos}
        pos += a.nbytes
    head = dict(header, version=INDEX_VERSION, arrays=layout)
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
                f.write(memoryview(np.ascontiguousarray(a)).cast("B"))
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


class ImageIndex:
    """A mapped index file: ``header`` (dict) and ``arrays`` (read-only numpy views).
    Pickles as its path (a DataLoader worker maps the same file: shared pages)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise IndexError_(f"index {self.path!r}: cannot open: {exc.strerror}") from None
        mm = self._mm
        if mm is None or size < 16 or mm[:8] != MAGIC:
            raise IndexError_(f"index {self.path!r}: bad magic (not a tinyvit index)")
        (hlen,) = struct.unpack("<Q", mm[8:16])
        if 16 + hlen > size:
            raise IndexError_(f"index {self.path!r}: header length {hlen} past the end ({size})")
        try:
            self.header = json.loads(mm[16:16 + hlen].decode())
        except ValueError as exc:
            raise IndexError_(f"index {self.path!r}: header is not JSON: {exc}") from None
        if self.header.get("version") != INDEX_VERSION:
            raise IndexError_(f"index {self.path!r}: version {self.header.get('version')!r}, "
                              f"this library reads {INDEX_VERSION}")
        start = (16 + hlen + _ALIGN - 1) // _ALIGN * _ALIGN
        self.arrays = {}
        for name, spec in self.header["arrays"].items():
            dt = np.dtype(spec["dtype"])
            shape = tuple(spec["shape"])
            count = int(np.prod(shape)) if shape else 1
            off = start + int(spec["offset"])
            if off + count * dt.itemsize > size:
                raise IndexError_(f"index {self.path!r}: array {name!r} runs past the end of the "
                                  f"file (truncated index)")
            self.arrays[name] = np.frombuffer(mm, dt, count, off).reshape(shape)

    def __len__(self) -> int:
        return int(self.header["count"])

    def __reduce__(self):
        return (ImageIndex, (self.path,))

    def nbytes(self) -> int:
        return len(self._mm)

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
    try:
        return max(1, min(32, 4 * len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - not Linux
        return 8


def _progress(total: int, desc: str, enabled: Optional[bool]):
    from tqdm import tqdm

    # default: a bar only when building something big enough to wait for
    return tqdm(total=total, desc=desc, unit="file", dynamic_ncols=True, leave=False,
                disable=not (enabled if enabled is not None else total >= 20000))


def _walk_class(root: str, name: str, exts: tuple):
    """os.walk(root/name) semantics (sorted dirs, symlinked dirs listed but not entered,
    unreadable dirs skipped) -> (sorted relative files, sizes, mtimes, dirs, dir mtimes)."""
    files, dirs, dir_mtimes = [], [], []
    stack = [name]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel)
        try:
            mt = os.stat(full).st_mtime_ns  # before listing: a change during it still shows
            with os.scandir(full) as it:
                entries = list(it)
        except OSError:
            continue
        dirs.append(rel)
        dir_mtimes.append(mt)
        sub = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not e.is_symlink():
                    sub.append(rel + "/" + e.name)
            elif e.name.lower().endswith(exts):
                files.append(rel + "/" + e.name)
        stack.extend(sorted(sub, reverse=True))
    files.sort()
    sizes = np.empty(len(files), np.int64)
    mtimes = np.empty(len(files), np.int64)
    for k, f in enumerate(files):
        try:
            st = os.stat(os.path.join(root, f))
        except OSError as exc:
            raise DatasetError(f"ImageFolder: cannot stat {os.path.join(root, f)!r}: "
                               f"{exc.strerror}") from None
        sizes[k], mtimes[k] = st.st_size, st.st_mtime_ns
    return files, sizes, mtimes, dirs, dir_mtimes


def build_folder_index(root: str, exts: tuple, *, num_threads: Optional[int] = None,
                       progress: Optional[bool] = None):
    """List ``root/<class>/**`` in parallel (one task per class), read every image header
    in C++ threads, and return (header, arrays) of a folder index. The sample order and
    the fingerprint are exactly ImageFolder's (classes sorted, files sorted by relative
    path; sha256 of every (relative path, size))."""
    from concurrent.futures import ThreadPoolExecutor

    from .._ext import _C

    threads = num_threads or _default_threads()
    root_mtime = os.stat(root).st_mtime_ns
    try:
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    except OSError as exc:
        raise DatasetError(f"ImageFolder: cannot list {root!r}: {exc.strerror}") from None
    if not classes:
        raise DatasetError(f"ImageFolder: {root!r} has no class subdirectories")
    h = hashlib.sha256(b"tinyvit-imagefolder-v1\0")
    files, sizes, mtimes, labels = [], [], [], []
    dirs, dir_mtimes = [""], [root_mtime]
    bar = _progress(len(classes), "index: listing classes", progress)
    bar.unit = "class"
    with ThreadPoolExecutor(threads) as ex:
        for c, (f, s, m, d, dm) in enumerate(ex.map(lambda n: _walk_class(root, n, exts),
                                                    classes)):
            h.update(b"".join(r.replace(os.sep, "/").encode() + b"\0" + str(v).encode() + b"\n"
                              for r, v in zip(f, s.tolist())))
            files.extend(f)
            sizes.append(s)
            mtimes.append(m)
            labels.append(np.full(len(f), c, np.int64))
            dirs.extend(d)
            dir_mtimes.extend(dm)
            bar.update(1)
    bar.close()
    if not files:
        raise DatasetError(f"ImageFolder: no images with extensions {exts} under {root!r}")
    blob, off = pack_strings(files)
    del files
    n = len(off) - 1
    wh = np.empty((n, 2), np.int32)
    bar = _progress(n, "index: image headers", progress)
    step = 1 << 16
    for a in range(0, n, step):
        b = min(n, a + step)
        wh[a:b] = _C._read_image_sizes(root, blob[off[a]:off[b]], off[a:b + 1] - off[a], threads)
        bar.update(b - a)
    bar.close()
    _pillow_fallback(wh, lambda i: os.path.join(root, os.fsdecode(blob[off[i]:off[i + 1]].tobytes())))
    dblob, doff = pack_strings(dirs)
    header = {"kind": "folder", "root": root, "extensions": list(exts), "count": n,
              "classes": classes, "fingerprint": "if1-" + h.hexdigest()[:32]}
    arrays = {"path_blob": blob, "path_off": off, "size": np.concatenate(sizes),
              "mtime": np.concatenate(mtimes), "wh": wh, "label": np.concatenate(labels),
              "dir_blob": dblob, "dir_off": doff, "dir_mtime": np.asarray(dir_mtimes, np.int64)}
    return header, arrays


def _pillow_fallback(wh: np.ndarray, source_of) -> None:
    """Headers the C++ parser does not read (TIFF, odd JPEGs): ask Pillow; an unreadable
    one stays -1 and raises ImageDecodeError naming the file when its size is needed."""
    from .sources import source_size

    for i in np.flatnonzero(wh[:, 0] < 0).tolist():
        try:
            wh[i] = source_size(source_of(i))
        except Exception:  # noqa: BLE001 - reported when the sample is used
            pass


def folder_index_stale(index: ImageIndex, root: str, exts: tuple, validate: str) -> Optional[str]:
    """None when ``index`` describes ``root`` now, else why not. validate: 'dirs' (every
    directory's mtime: files added, removed or renamed anywhere), 'full' (also every
    file's size and mtime, parallel stats) or 'none'."""
    hd = index.header
    if hd.get("kind") != "folder" or hd.get("root") != root or tuple(hd.get("extensions", ())) != exts:
        return "describes another folder or extensions"
    if validate == "none":
        return None
    a = index.arrays
    dirs = PathList(a["dir_blob"], a["dir_off"])
    for k, (d, m) in enumerate(zip(dirs, a["dir_mtime"].tolist())):
        try:
            if os.stat(os.path.join(root, d) if d else root).st_mtime_ns != m:
                return f"directory {d or '.'!r} changed"
        except OSError:
            return f"directory {d or '.'!r} is gone"
    if validate == "full":
        from concurrent.futures import ThreadPoolExecutor

        paths = PathList(a["path_blob"], a["path_off"])
        size, mtime = a["size"], a["mtime"]

        def check(rng):
            for i in range(*rng):
                try:
                    st = os.stat(os.path.join(root, paths[i]))
                except OSError:
                    return f"file {paths[i]!r} is gone"
                if st.st_size != size[i] or st.st_mtime_ns != mtime[i]:
                    return f"file {paths[i]!r} changed"
            return None

        n, step = len(paths), 1 << 14
        with ThreadPoolExecutor(_default_threads()) as ex:
            for why in ex.map(check, [(s, min(n, s + step)) for s in range(0, n, step)]):
                if why:
                    return why
    return None


def open_or_build(path: Optional[str], stale, build, *, kind: str, identity: str) -> ImageIndex:
    """Map the index at ``path`` (default: the cache file for identity) when ``stale(index)``
    says it is current, else build it under the lock (re-checking first: another rank may
    have just built it) and write it atomically. An unwritable cache dir is not an error:
    the index is then built in memory (warning)."""
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
            raise
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
