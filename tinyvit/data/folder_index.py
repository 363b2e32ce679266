"""The folder index: what ``ImageFolder`` caches about ``root/<class>/**`` (tinyvit.data.index
holds the file format, its checks and the open-or-build step shared with ``TarShards``).

``build_folder_index`` lists the tree (one task per class) and reads every image header in C++
threads; ``folder_index_stale`` says whether a cached index still describes the tree; the
fingerprint is ImageFolder's (sha256 of every relative path and size, in sample order).
"""
from __future__ import annotations

import hashlib
import os
import stat
from typing import Optional

import numpy as np

from .idx import DatasetError
from .index import ImageIndex, PathList, _default_threads, _pillow_fallback, pack_strings, progress_bar

__all__ = ["folder_fingerprint", "build_folder_index", "folder_index_stale"]


_FOLDER_FP_SALT = b"tinyvit-imagefolder-v1\0"


def _fp_line(rel: str, size: int) -> bytes:
    # os.fsencode: the name's own bytes, valid UTF-8 or not (surrogateescape); for UTF-8
    # names the same bytes as str.encode(), so fingerprints of existing stores hold
    return os.fsencode(rel.replace(os.sep, "/")) + b"\0" + str(size).encode() + b"\n"


def folder_fingerprint(relpaths, sizes) -> str:
    """ImageFolder's fingerprint: sha256 of every (relative path, size), in order."""
    h = hashlib.sha256(_FOLDER_FP_SALT)
    for r, s in zip(relpaths, sizes):
        h.update(_fp_line(r, s))
    return "if1-" + h.hexdigest()[:32]


def _walk_class(root: str, name: str, exts: tuple):
    """os.walk(root/name) order (sorted dirs; symlinked dirs listed but not entered) ->
    (sorted relative files, sizes, mtimes, dirs, dir mtimes). A directory that cannot be
    listed, or an image-named entry that is not a regular file (a FIFO would block the
    header reader), is refused, naming it: skipping it would make a class silently smaller
    and the cached index would not notice when it became readable."""
    files, dirs, dir_mtimes = [], [], []
    stack = [name]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel)
        try:
            mt = os.stat(full).st_mtime_ns  # before listing: a change during it still shows
            with os.scandir(full) as it:
                entries = list(it)
        except OSError as exc:
            raise DatasetError(f"ImageFolder: cannot list directory {full!r}: "
                               f"{exc.strerror or exc} (make it readable or remove it)") from None
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
    sizes, mtimes = _stat_files(root, files)
    return files, sizes, mtimes, dirs, dir_mtimes


def _stat_files(root: str, files: list):
    sizes = np.empty(len(files), np.int64)
    mtimes = np.empty(len(files), np.int64)
    for k, f in enumerate(files):
        p = os.path.join(root, f)
        try:
            st = os.stat(p)
        except OSError as exc:
            raise DatasetError(f"ImageFolder: cannot stat {p!r}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise DatasetError(f"ImageFolder: {p!r} has an image extension but is not a regular "
                               "file (a FIFO, socket or device)")
        sizes[k], mtimes[k] = st.st_size, st.st_mtime_ns
    return sizes, mtimes


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
    h = hashlib.sha256(_FOLDER_FP_SALT)
    files, sizes, mtimes, labels = [], [], [], []
    dirs, dir_mtimes = [""], [root_mtime]
    bar = progress_bar(len(classes), "index: listing classes", progress, unit="class")
    with ThreadPoolExecutor(threads) as ex:
        for c, (f, s, m, d, dm) in enumerate(ex.map(lambda n: _walk_class(root, n, exts),
                                                    classes)):
            h.update(b"".join(_fp_line(r, v) for r, v in zip(f, s.tolist())))
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
    bar = progress_bar(n, "index: image headers", progress)
    step = 1 << 16
    for a in range(0, n, step):
        b = min(n, a + step)
        # bytes root: a name that is not valid UTF-8 reaches C++ as the OS gave it
        wh[a:b] = _C._read_image_sizes(os.fsencode(root), blob[off[a]:off[b]],
                                       off[a:b + 1] - off[a], threads)
        bar.update(b - a)
    bar.close()
    _pillow_fallback(wh, lambda i: os.path.join(root,
                                                os.fsdecode(blob[off[i]:off[i + 1]].tobytes())))
    dblob, doff = pack_strings(dirs)
    header = {"kind": "folder", "root": root, "extensions": list(exts), "count": n,
              "classes": classes, "fingerprint": "if1-" + h.hexdigest()[:32]}
    arrays = {"path_blob": blob, "path_off": off, "size": np.concatenate(sizes),
              "mtime": np.concatenate(mtimes), "wh": wh, "label": np.concatenate(labels),
              "dir_blob": dblob, "dir_off": doff, "dir_mtime": np.asarray(dir_mtimes, np.int64)}
    return header, arrays


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
