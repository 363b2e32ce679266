"""WebDataset-layout tar shards as a dataset: ``TarShards("/data/in21k/shard-{000000..001023}.tar")``.

A shard holds samples as consecutive members sharing a key (``n01440764_10026.jpg``,
``n01440764_10026.cls``, ...: key = the member path up to the first dot of its file
name). Sample i is the i-th sample in (shard order, member order); ``ds[i]`` is its image
bytes, read with one ``pread`` at the offset recorded in the index -- nothing is
extracted, nothing is scanned per step. Labels come from the ``.cls`` member (an integer
as text) or a ``.json`` member (``label`` / ``cls`` key); class names from ``classes``
(a list, or a text file with one name per line; default ``classes.txt`` next to the first
shard when it exists, else ``"0".."C-1"``).

The member index (tinyvit.data.index: shard, offset, size, (width, height), label, key
per sample) is built once in parallel (tar headers are walked in C++, no data read but
the label members and the first bytes of each image), cached like ImageFolder's, and
validated by every shard's size and mtime. fingerprint(): sha256 of every (shard file
name, key, image size, label), so a store saved from these shards refuses other ones.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import OrderedDict
from typing import List, Optional

import numpy as np

from .idx import DatasetError
from .indexed import IndexedDataset

__all__ = ["TarShards", "expand_shards", "is_shard_spec"]

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "pgm", "tif", "tiff")
_BRACE = re.compile(r"\{([^{}]*)\}")
_MAX_OPEN = 64


def expand_shards(spec) -> List[str]:
    """Brace expansion as webdataset writes it: ``{000..123}`` (zero-padded to the
    wider bound) and ``{a,b,c}``; several groups multiply. A list passes through."""
    if isinstance(spec, (list, tuple)):
        return [os.fspath(p) for p in spec]
    spec = os.fspath(spec)
    m = _BRACE.search(spec)
    if not m:
        return [spec]
    body = m.group(1)
    r = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if r:
        lo, hi = int(r.group(1)), int(r.group(2))
        if hi < lo:
            raise DatasetError(f"TarShards: empty range {{{body}}} in {spec!r}")
        a, b = r.group(1), r.group(2)
        padded = (len(a) > 1 and a[0] == "0") or (len(b) > 1 and b[0] == "0")
        width = max(len(a), len(b)) if padded else 0
        items = [str(k).zfill(width) for k in range(lo, hi + 1)]
    else:
        items = body.split(",")
    out = []
    for it in items:
        out.extend(expand_shards(spec[:m.start()] + it + spec[m.end():]))
    return out


def is_shard_spec(spec) -> bool:
    return isinstance(spec, (list, tuple)) or str(spec).endswith(".tar") or ".tar," in str(spec)


def _split(name: str):
    base = name.rsplit("/", 1)
    dot = base[-1].find(".")
    if dot <= 0:
        return None, None
    stem = (base[0] + "/" if len(base) == 2 else "") + base[-1][:dot]
    return stem, base[-1][dot + 1:].lower()


# Labels are class indices: 0 <= label < MAX_CLASSES. The bound is checked before the
# default class names "0".."C-1" are built (a label of 10^12 once built names until 3 GB);
# 10^6 classes (ImageNet-22k has 21,841) keep those names under ~60 MB.
MAX_CLASSES = 1_000_000
_MAX_LABEL_BYTES = 1 << 20   # a .cls / .json label member larger than this is refused
_MAX_JSON_DEPTH = 32         # nesting checked before json.loads (deep input: RecursionError)
_CLS = re.compile(rb"\s*(-?[0-9]{1,40})\s*")  # 40 digits: then bounded below
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def _json_too_deep(data: bytes, limit: int) -> bool:
    """True when JSON text nests brackets deeper than `limit` outside strings. Visits only
    the bracket / quote / backslash bytes, without recursion, and stops at the first
    level over the limit (json.loads itself recurses once per level)."""
    depth, in_str, skip = 0, False, -1
    for m in _JSON_SPECIAL.finditer(data):
        p = m.start()
        if p == skip:  # the byte after a backslash inside a string is escaped
            continue
        c = data[p]
        if in_str:
            if c == 0x5C:
                skip = p + 1
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False


def _checked_label(value: int, where: str) -> int:
    if value < 0:
        raise DatasetError(f"TarShards: {where}: negative label {value} (labels are class "
                           "indices >= 0)")
    if value >= MAX_CLASSES:
        raise DatasetError(f"TarShards: {where}: label {value} is over the limit of "
                           f"{MAX_CLASSES:,} classes")
    return value


def _read_label(fd: int, offset: int, size: int, ext: str, where: str) -> int:
    if size > _MAX_LABEL_BYTES:  # checked before the read: the size comes from the header
        raise DatasetError(f"TarShards: {where}: label member of {size} bytes (over "
                           f"{_MAX_LABEL_BYTES})")
    return _label_of(os.pread(fd, size, offset), ext, where)


def _label_of(data: bytes, ext: str, where: str) -> int:
    """The class index in a .cls member (a decimal integer) or a .json member (the first of
    'label' / 'cls' / 'class' holding an integer; a boolean there is refused, not read as
    0 / 1). DatasetError naming `where` (shard and member) for anything else."""
    if len(data) > _MAX_LABEL_BYTES:
        raise DatasetError(f"TarShards: {where}: label member of {len(data)} bytes (over "
                           f"{_MAX_LABEL_BYTES})")
    if ext == "cls":
        m = _CLS.fullmatch(data)
        if m is None:
            raise DatasetError(f"TarShards: {where}: unreadable label: not a decimal integer: "
                               f"{data[:40]!r}")
        return _checked_label(int(m.group(1)), where)
    if _json_too_deep(data, _MAX_JSON_DEPTH):
        raise DatasetError(f"TarShards: {where}: unreadable label: JSON nested deeper than "
                           f"{_MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(f"TarShards: {where}: unreadable label: {exc}") from None
    for k in ("label", "cls", "class"):
        v = obj.get(k) if isinstance(obj, dict) else None
        if isinstance(v, bool):
            raise DatasetError(f"TarShards: {where}: label {k!r} is a boolean ({v}), not a "
                               "class index")
        if isinstance(v, int):
            return _checked_label(v, where)
    raise DatasetError(f"TarShards: {where}: unreadable label: no integer 'label' / 'cls' / "
                       "'class' key")


def _scan_shard(si: int, path: str):
    """-> (keys, image offsets, sizes, labels (-1 = none), wh) of one shard."""
    from .._ext import _C

    try:
        blob, noff, doff, sizes = _C._tar_members(path)
    except ValueError as exc:
        raise DatasetError(f"TarShards: {exc}") from None
    names = bytes(blob)
    keys, offs, lens, labels, whs = [], [], [], [], []
    cur = None  # key of the sample being collected
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        def flush(s):
            if s is None:
                return
            if s["img"] is None:
                return  # a key without an image member (metadata only): not a sample
            o, n = s["img"]
            keys.append(s["key"])
            offs.append(o)
            lens.append(n)
            labels.append(s["label"])
            head = os.pread(fd, min(n, 1 << 16), o)
            wh = _C._image_header_size(head)
            if wh is None and n > len(head):
                wh = _C._image_header_size(os.pread(fd, min(n, 1 << 20), o))
            whs.append(wh if wh is not None else (-1, -1))

        for k in range(len(doff)):
            name = names[noff[k]:noff[k + 1]].decode("utf-8", "surrogateescape")
            key, ext = _split(name)
            if key is None:
                continue
            if cur is None or cur["key"] != key:
                flush(cur)
                cur = {"key": key, "img": None, "label": -1}
            if ext in IMAGE_EXTS and cur["img"] is None:
                cur["img"] = (int(doff[k]), int(sizes[k]))
            elif ext in ("cls", "json") and cur["label"] < 0:
                cur["label"] = _read_label(fd, int(doff[k]), int(sizes[k]), ext,
                                           f"{path}: member {name!r}")
        flush(cur)
    finally:
        os.close(fd)
    return keys, offs, lens, labels, whs


def _refuse_partial_labels(lab, keys, shards, shard_of) -> None:
    """Labels are all or nothing: a dataset where some samples have a .cls / .json member
    and others have none is refused, naming the first unlabeled and the first labeled one
    (labels themselves are >= 0: negative ones were refused when read)."""
    none, some = lab < 0, lab >= 0
    if none.any() and some.any():
        i, j = int(np.flatnonzero(none)[0]), int(np.flatnonzero(some)[0])
        raise DatasetError(
            f"TarShards: {shards[int(shard_of[i])]}: sample {i} ({keys[i]!r}) has no .cls / "
            f".json label but {int(some.sum())} others do (first: {keys[j]!r} in "
            f"{shards[int(shard_of[j])]})")


def _build(shards: List[str], classes, num_threads, progress):
    from concurrent.futures import ThreadPoolExecutor

    from .index import _default_threads, _pillow_fallback, pack_strings, progress_bar

    h = hashlib.sha256(b"tinyvit-tarshards-v1\0")
    keys, shard, offs, lens, labels, whs = [], [], [], [], [], []
    bar = progress_bar(len(shards), "index: tar shards", progress if progress is not None
                    else len(shards) >= 16)
    bar.unit = "shard"
    with ThreadPoolExecutor(num_threads or _default_threads()) as ex:
        for si, (k, o, n, lab, wh) in enumerate(ex.map(lambda a: _scan_shard(*a),
                                                        enumerate(shards))):
            base = os.path.basename(shards[si]).encode()
            h.update(b"".join(base + b"\0" + kk.encode("utf-8", "surrogateescape") + b"\0" +
                              str(nn).encode() + b"\0" + str(ll).encode() + b"\n"
                              for kk, nn, ll in zip(k, n, lab)))
            keys.extend(k)
            shard.append(np.full(len(k), si, np.int32))
            offs.extend(o)
            lens.extend(n)
            labels.extend(lab)
            whs.extend(wh)
            bar.update(1)
    bar.close()
    if not keys:
        raise DatasetError(f"TarShards: no image members in {len(shards)} shards "
                           f"({shards[0]!r} ...)")
    lab = np.asarray(labels, np.int64)
    _refuse_partial_labels(lab, keys, shards, np.concatenate(shard))
    kblob, koff = pack_strings(keys)
    wh = np.asarray(whs, np.int32).reshape(-1, 2)
    arrays = {"shard": np.concatenate(shard), "offset": np.asarray(offs, np.int64),
              "size": np.asarray(lens, np.int64), "wh": wh, "label": lab,
              "key_blob": kblob, "key_off": koff}
    _pillow_fallback(wh, lambda i: _read(shards[int(arrays["shard"][i])],
                                         int(arrays["offset"][i]), int(arrays["size"][i])))
    stats = [os.stat(p) for p in shards]
    header = {"kind": "tarshards", "count": len(keys), "shards": shards,
              "shard_size": [s.st_size for s in stats],
              "shard_mtime": [s.st_mtime_ns for s in stats],
              "fingerprint": "ts1-" + h.hexdigest()[:32]}
    return header, arrays


def _read(path, offset, size) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _stale(ix, shards) -> Optional[str]:
    hd = ix.header
    if hd.get("kind") != "tarshards" or hd.get("shards") != shards:
        return "describes other shards"
    for p, size, mt in zip(shards, hd["shard_size"], hd["shard_mtime"]):
        try:
            st = os.stat(p)
        except OSError:
            return f"shard {p!r} is gone"
        if st.st_size != size or st.st_mtime_ns != mt:
            return f"shard {p!r} changed"
    return None


class TarShards(IndexedDataset):
    """Tar shards (webdataset layout) as an indexable dataset; see the module docstring.
    ``ds[i]`` -> the image bytes of sample i (JPEG goes straight to the C++ decoder).
    Picklable (DataLoader workers reopen the shards lazily; at most 64 open per process)."""

    _KIND = "tarshards"
    _ROW_ATTRS = ("_shard", "_offset", "sizes", "_wh", "targets", "keys")
    _TRANSIENT = ("_fds",)

    def __init__(self, spec, classes=None, *, index=None, num_threads: Optional[int] = None,
                 progress: Optional[bool] = None):
        self.spec = spec if isinstance(spec, str) else list(spec)
        shards = [os.path.abspath(p) for p in expand_shards(spec)]
        if not shards:
            raise DatasetError(f"TarShards: {spec!r} names no shards")
        missing = [p for p in shards if not os.path.isfile(p)]
        if missing:
            raise DatasetError(f"TarShards: {len(missing)} of {len(shards)} shards do not exist "
                               f"(first: {missing[0]!r}; from {spec!r})")
        self.shards = shards
        self._classes_arg = classes
        self._fds: "OrderedDict[int, int]" = OrderedDict()

        def build():
            return _build(shards, classes, num_threads, progress)

        self._open_index(index, lambda i: _stale(i, shards), build, identity="\0".join(shards))

    def _attach_arrays(self, ix, rows, pick) -> None:
        from .index import PathList

        a = ix.arrays
        self._shard, self._offset, self.sizes = pick(a["shard"]), pick(a["offset"]), pick(a["size"])
        self._wh = pick(a["wh"])
        lab = pick(a["label"])
        self.targets = lab if len(lab) and lab.min() >= 0 else None
        self.keys = PathList(a["key_blob"], a["key_off"], rows)
        self.classes = self._load_classes(self._classes_arg)

    def _load_classes(self, classes) -> list:
        if classes is None:
            default = os.path.join(os.path.dirname(self.shards[0]), "classes.txt")
            classes = default if os.path.isfile(default) else None
        if isinstance(classes, (str, os.PathLike)):
            with open(classes, encoding="utf-8") as f:
                classes = [ln.strip() for ln in f if ln.strip()]
        if classes is None:
            n = int(self.targets.max()) + 1 if self.targets is not None else 0
            if n > MAX_CLASSES:  # labels are bounded when read; this guards the names too
                raise DatasetError(f"TarShards: label {n - 1} is over the limit of "
                                   f"{MAX_CLASSES:,} classes")
            classes = [str(c) for c in range(n)]
        classes = list(classes)
        if self.targets is not None and len(self.targets) and int(self.targets.max()) >= len(classes):
            i = int(np.argmax(self.targets))
            raise DatasetError(f"TarShards: sample {i} ({self.keys[i]!r}) has label "
                               f"{int(self.targets[i])} but there are {len(classes)} classes")
        return classes

    def __len__(self) -> int:
        return len(self._offset)

    def _fd(self, si: int) -> int:
        fd = self._fds.get(si)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN:
                os.close(self._fds.popitem(last=False)[1])
            fd = self._fds[si] = os.open(self.shards[si], os.O_RDONLY | os.O_CLOEXEC)
        else:
            self._fds.move_to_end(si)
        return fd

    def __getitem__(self, i: int) -> bytes:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"TarShards: index {i} out of range for {len(self)} samples")
        si, off, n = int(self._shard[i]), int(self._offset[i]), int(self.sizes[i])
        # pread on a shared descriptor has no file position: safe in forked workers too
        data = os.pread(self._fd(si), n, off)
        if len(data) != n:
            raise DatasetError(f"TarShards: {self.shards[si]}: sample {i} ({self.keys[i]!r}) "
                               f"truncated: {len(data)} of {n} bytes at offset {off}")
        return data

    def source_name(self, i: int) -> str:
        """What an error about sample i names: its shard and key (replay_batch(names=))."""
        i = int(i)
        si = int(self._shard[i])
        return f"{self.shards[si]}: sample {i} (key {self.keys[i]!r})"

    def labels(self, indices) -> np.ndarray:
        if self.targets is None:
            raise DatasetError(f"{self!r} has no labels (.cls / .json members)")
        return self.targets[np.asarray(indices, dtype=np.int64)]

    def _size_source(self, i: int):
        return self[i]

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256(b"tinyvit-tarshards-v1\0")
        lab = self.targets if self.targets is not None else np.full(len(self), -1)
        for i in range(len(self)):
            h.update(os.fsencode(os.path.basename(self.shards[int(self._shard[i])])) + b"\0" +
                     self.keys[i].encode("utf-8", "surrogateescape") + b"\0" +
                     str(int(self.sizes[i])).encode() + b"\0" + str(int(lab[i])).encode() +
                     b"\n")
        return "ts1-" + h.hexdigest()[:32]

    def _reset_transient(self) -> None:
        self._fds = OrderedDict()

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return (f"TarShards({self.spec!r}, {len(self.shards)} shards, {len(self)} samples, "
                f"{len(self.classes)} classes)")
