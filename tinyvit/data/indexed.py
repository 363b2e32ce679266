"""What ImageFolder and TarShards share, written once: a dataset whose listing is an index.

Both open-or-build an index (tinyvit.data.index: a verified file in the cache, or held in
memory with ``index=False``), attach the arrays of the rows they use (all, or a subset),
take (width, height) from the index with a Pillow fallback for headers the C++ parser does
not read, compute their fingerprint only when a subset changed it, and pickle as the index
path (a DataLoader worker reads the same file) instead of the per-row arrays.

A subclass says what its index is (``_KIND``), which attributes hold per-row arrays
(``_ROW_ATTRS``: dropped when pickling, re-attached after), which are per-process state
(``_TRANSIENT``), and implements ``_attach_arrays`` (the views of its rows),
``_size_source`` (what Pillow opens for a size the index lacks) and ``_compute_fingerprint``.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .idx import DatasetError

__all__ = ["IndexedDataset"]


class IndexedDataset:
    _KIND = ""
    _ROW_ATTRS: tuple = ()
    _TRANSIENT: tuple = ()
    classes: list = []
    targets: Optional[np.ndarray] = None

    # ---- open / attach -------------------------------------------------------------------
    def _open_index(self, index, stale, build, identity: str) -> None:
        """``index``: None / True (the cache file), False (in memory) or a path."""
        from . import index as _ix

        if index is False:
            ix = _ix.MemoryIndex(*build())
        else:
            ix = _ix.open_or_build(None if index in (None, True) else os.fspath(index), stale,
                                   build, kind=self._KIND, identity=identity)
        self._attach(ix, None)

    def _attach(self, ix, rows: Optional[np.ndarray]) -> None:
        self._index, self._rows = ix, rows
        self._fp = ix.header["fingerprint"] if rows is None else None
        self.__dict__.pop("_sizes", None)  # Pillow sizes are cached by row position
        pick = (lambda x: x) if rows is None else (lambda x: x[rows])
        self._attach_arrays(ix, rows, pick)

    def _attach_arrays(self, ix, rows, pick) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def index_path(self) -> Optional[str]:
        """The index file this dataset reads (None: held in memory)."""
        return self._index.path

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ---- samples -------------------------------------------------------------------------
    def sources(self, indices) -> list:
        return [self[int(i)] for i in indices]

    def labels(self, indices) -> np.ndarray:
        if self.targets is None:
            raise DatasetError(f"{self!r} has no labels")
        return self.targets[np.asarray(indices, dtype=np.int64)]

    def source_sizes(self, indices) -> np.ndarray:
        """(n, 2) (width, height) from the index (read once from the headers in C++);
        only headers the C++ parser does not read go through Pillow (cached). An
        unreadable header raises tinyvit.errors.ImageDecodeError naming the file."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        out = self._wh[idx].astype(np.int64)
        bad = np.flatnonzero(out[:, 0] < 0)
        if bad.size:
            from .sources import source_size

            cache = self.__dict__.setdefault("_sizes", {})
            for k in bad.tolist():
                i = int(idx[k])
                wh = cache.get(i)
                if wh is None:
                    wh = cache[i] = source_size(self._size_source(i))
                out[k] = wh
        return out

    def _size_source(self, i: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = self._compute_fingerprint()
        return self._fp

    def _compute_fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def subset(self, n: int):
        """Keep n samples spread evenly over the order (every class keeps samples: rows are
        grouped by class); in place, returns self. The fingerprint is then recomputed."""
        n = int(n)
        if not 1 <= n <= len(self):
            raise DatasetError(f"{self._name()}: subset must be in [1, {len(self)}], got {n}")
        keep = np.unique(np.linspace(0, len(self) - 1, n).round().astype(np.int64))
        self._attach(self._index, keep if self._rows is None else self._rows[keep])
        return self

    def _name(self) -> str:
        return type(self).__name__

    # ---- pickling ------------------------------------------------------------------------
    def __getstate__(self):
        # a file-backed index travels as its path (a worker reads the same file); the per-row
        # views would otherwise be pickled by value
        drop = set(self._ROW_ATTRS) | set(self._TRANSIENT)
        state = {k: v for k, v in self.__dict__.items() if k not in drop}
        if self._index.path is not None:
            state["_index"] = None
            state["_index_path"] = self._index.path
            state["_index_fp"] = self._index.header["fingerprint"]
        return state

    def __setstate__(self, state):
        from .index import ImageIndex

        path = state.pop("_index_path", None)
        fp = state.pop("_index_fp", None)
        self.__dict__.update(state)
        ix = self._index
        if path is not None:
            ix = ImageIndex(path)
            if ix.header["fingerprint"] != fp:
                raise DatasetError(f"{self._name()}: index {path!r} was rebuilt for other data "
                                   f"({ix.header['fingerprint']} != {fp}) while this dataset "
                                   "was in use")
        keep_fp, sizes = self._fp, self.__dict__.get("_sizes")
        self._attach(ix, self._rows)
        self._fp = keep_fp
        if sizes is not None:
            self._sizes = sizes
        self._reset_transient()

    def _reset_transient(self) -> None:
        pass
