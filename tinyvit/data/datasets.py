"""Data sources for save-logits / train / DistillLoader.

A dataset here is an indexable collection of *sources* (what ``tinyvit.replay`` takes:
JPEG bytes, a path, a PIL image or a numpy array) with optional integer labels and a
``fingerprint()`` that changes whenever the sample order or content changes. The logit
store records the fingerprint, and ``DistillLoader`` refuses a store made from another
dataset, because record ``i`` is only meaningful for the image at index ``i``.

- ``ImageFolder(root)``: ``root/<class>/<image>`` (torchvision's layout); classes sorted,
  files sorted by relative path; fingerprint = sha256 of every (relative path, size).
  The listing is a cached index, verified at every open (index.py).
- ``FashionMNIST(root, split, subset)``: the idx ``.gz`` files of Debian's
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), read with numpy;
  sources are 28x28 uint8 grayscale arrays (replay converts them to RGB).
- ``TarShards(spec)`` (tarshards.py): webdataset tar shards, random access by index.
- ``open_dataset(spec)``: ``"fashion-mnist"``, ``"fashion-mnist:DIR"``, a directory, or a
  tar shard spec (``/data/shard-{000000..001023}.tar``).
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional, Sequence

import numpy as np

from .idx import DatasetError, read_idx as _read_idx
from .indexed import IndexedDataset

__all__ = ["DatasetError", "ImageFolder", "FashionMNIST", "ArrayDataset", "open_dataset",
           "FASHION_MNIST_DIR", "IMG_EXTENSIONS"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class _Base:
    classes: Sequence[str] = ()
    targets: Optional[np.ndarray] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labels(self, indices) -> np.ndarray:
        if self.targets is None:
            raise DatasetError(f"{self!r} has no labels")
        return self.targets[np.asarray(indices, dtype=np.int64)]


class ImageFolder(IndexedDataset):
    """``root/<class>/**/<file>`` with an image extension; sample i = i-th path in sorted
    order of (class, relative path). ``ds[i]`` is the file path (replay reads it; JPEGs take
    the C++ decoder). When replayed, a file that cannot be decoded raises
    ``tinyvit.errors.ImageDecodeError`` and one that cannot be read an ``OSError``
    (PermissionError, FileNotFoundError, ...), each naming the path.

    The listing lives in a verified index (tinyvit.data.index): built once (in parallel,
    with a progress bar), cached in ``index`` (default: a file under
    ``$TINYVIT_INDEX_DIR`` or ``~/.cache/tinyvit/index`` keyed by the root), and reopened
    by every rank and worker in milliseconds. validate: 'dirs' (default; every directory's
    mtime -- catches files added, removed, renamed), 'full' (also every file's size and
    mtime) or 'none'. ``index=False`` lists into memory and writes nothing. A directory that
    cannot be listed, or an entry with an image extension that is not a regular file, is
    refused (DatasetError naming it), never skipped. File and class names that are not
    valid UTF-8 work (os.fsencode / surrogateescape, as the OS gives them).
    """

    _KIND = "folder"
    _ROW_ATTRS = ("relpaths", "sizes", "targets", "_wh")

    def __init__(self, root: str, extensions: Sequence[str] = IMG_EXTENSIONS, *,
                 index=None, validate: str = "dirs", num_threads: Optional[int] = None,
                 progress: Optional[bool] = None):
        from . import folder_index as _fx

        root = os.fspath(root)
        if not os.path.isdir(root):
            raise DatasetError(f"ImageFolder: {root!r} is not a directory")
        if validate not in ("dirs", "full", "none"):
            raise ValueError(f"validate must be 'dirs', 'full' or 'none', got {validate!r}")
        self.root = os.path.abspath(root)
        exts = tuple(e.lower() for e in extensions)

        def build():
            return _fx.build_folder_index(self.root, exts, num_threads=num_threads,
                                          progress=progress)

        self._open_index(index, lambda i: _fx.folder_index_stale(i, self.root, exts, validate),
                         build, identity=self.root + "\0" + "\0".join(exts))

    def _attach_arrays(self, ix, rows, pick) -> None:
        from .index import PathList

        a = ix.arrays
        self.classes = list(ix.header["classes"])
        self.relpaths = PathList(a["path_blob"], a["path_off"], rows)
        self.sizes = pick(a["size"])
        self.targets = pick(a["label"])
        self._wh = pick(a["wh"])

    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, i: int) -> str:
        return os.path.join(self.root, self.relpaths[i])

    def _size_source(self, i: int):
        return self[i]

    def _compute_fingerprint(self) -> str:
        from .folder_index import folder_fingerprint

        return folder_fingerprint(self.relpaths, self.sizes.tolist())

    def _name(self) -> str:
        return f"ImageFolder {self.root!r}"

    def __repr__(self) -> str:
        return f"ImageFolder({self.root!r}, {len(self)} images, {len(self.classes)} classes)"


class ArrayDataset(_Base):
    """In-memory uint8 images ``(N, H, W)`` or ``(N, H, W, 3)`` with labels; fingerprint =
    sha256 of the pixels, shape and labels."""

    def __init__(self, images: np.ndarray, targets=None, classes: Sequence[str] = (),
                 name: str = "array"):
        self.images = np.ascontiguousarray(images, dtype=np.uint8)
        self.targets = None if targets is None else np.asarray(targets, np.int64)
        if self.targets is not None and len(self.targets) != len(self.images):
            raise DatasetError(f"{name}: {len(self.images)} images but {len(self.targets)} labels")
        self.classes = tuple(classes) if classes else (
            tuple(str(c) for c in range(int(self.targets.max()) + 1)) if self.targets is not None
            and len(self.targets) else ())
        self.name = name
        self._fp = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]

    def source_sizes(self, indices) -> np.ndarray:
        n = len(np.asarray(indices).reshape(-1))
        return np.tile(np.array([[self.images.shape[2], self.images.shape[1]]], np.int64), (n, 1))

    def fingerprint(self) -> str:
        if self._fp is None:
            h = hashlib.sha256(b"tinyvit-array-v1\0")
            h.update(repr(self.images.shape).encode())
            h.update(self.images.tobytes())
            if self.targets is not None:
                h.update(self.targets.astype("<i8").tobytes())
            self._fp = "ar1-" + h.hexdigest()[:32]
        return self._fp

    def __repr__(self) -> str:
        return f"{self.name}({len(self)} images {self.images.shape[1:]}, {len(self.classes)} classes)"


class FashionMNIST(ArrayDataset):
    """Fashion-MNIST from its idx files. ``split``: 'train' (60k) or 'test' (10k).
    ``subset``: None (all) or n (the first n samples in file order; the files are shuffled,
    so classes are balanced to within a few percent)."""

    def __init__(self, root: str = FASHION_MNIST_DIR, split: str = "train",
                 subset: Optional[int] = None):
        if split not in ("train", "test"):
            raise DatasetError(f"Fashion-MNIST: split must be 'train' or 'test', got {split!r}")
        if not os.path.isdir(root):
            raise DatasetError(f"Fashion-MNIST: {root!r} is not a directory (install Debian's "
                               "dataset-fashion-mnist or pass fashion-mnist:DIR)")
        prefix = "train" if split == "train" else "t10k"

        def find(stem):
            for name in (stem + ".gz", stem):
                p = os.path.join(root, name)
                if os.path.exists(p):
                    return p
            return os.path.join(root, stem + ".gz")

        images = _read_idx(find(f"{prefix}-images-idx3-ubyte"), 3)
        labels = _read_idx(find(f"{prefix}-labels-idx1-ubyte"), 1)
        if len(images) != len(labels):
            raise DatasetError(f"Fashion-MNIST {root!r}: {len(images)} images but "
                               f"{len(labels)} labels")
        if labels.size and labels.max() >= 10:
            raise DatasetError(f"Fashion-MNIST {root!r}: label {int(labels.max())} >= 10")
        if subset is not None:
            if not 1 <= int(subset) <= len(images):
                raise DatasetError(f"Fashion-MNIST: subset must be in [1, {len(images)}], "
                                   f"got {subset}")
            images, labels = images[:int(subset)], labels[:int(subset)]
        super().__init__(images, labels, FASHION_MNIST_CLASSES,
                         name=f"FashionMNIST[{split}]")
        self.root, self.split = root, split


def open_dataset(spec: str, split: str = "train", subset: Optional[int] = None):
    """``fashion-mnist`` / ``fashion-mnist:DIR`` (split, subset apply) or an ImageFolder
    directory (for ImageFolder the split is a subdirectory ``train``/``val`` when present).
    Raises DatasetError naming the path."""
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        root = spec.split(":", 1)[1] if ":" in spec else FASHION_MNIST_DIR
        return FashionMNIST(root or FASHION_MNIST_DIR, split=split, subset=subset)
    from .tarshards import TarShards, is_shard_spec

    if is_shard_spec(spec):
        # like a folder's train/val subdirectories: split 'test' takes the spec with
        # 'train' -> 'val' when those shards exist (else the same shards, as for folders)
        if split == "test" and "train" in spec:
            from .tarshards import expand_shards

            val = spec.replace("train", "val")
            if all(os.path.isfile(p) for p in expand_shards(val)):
                spec = val
        ds = TarShards(spec)
        return ds.subset(int(subset)) if subset is not None else ds
    root = spec
    sub = {"train": "train", "test": "val"}[split] if split in ("train", "test") else split
    if os.path.isdir(os.path.join(root, sub)):
        root = os.path.join(root, sub)
    ds = ImageFolder(root)
    if subset is not None:
        ds = ds.subset(int(subset))
    return ds


def _subset_imagefolder(ds: ImageFolder, n: int) -> ImageFolder:
    return ds.subset(n)  # kept for callers of the old name


def dataset_fingerprint(ds) -> Optional[str]:
    fp = getattr(ds, "fingerprint", None)
    return fp() if callable(fp) else None
