"""The one reader of idx files (MNIST / Fashion-MNIST: big-endian header, uint8 payload)."""
from __future__ import annotations

import gzip
import struct

import numpy as np

__all__ = ['read_idx', 'DatasetError']


from ..errors import DatasetError  # noqa: E402  (defined with every error in tinyvit.errors)


def read_idx(path: str, want_ndim=None) -> np.ndarray:
    """An idx file (big-endian header: 0, 0, dtype 0x08 = uint8, ndim; dims u32)."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"Fashion-MNIST: {path!r} does not exist (install Debian's "
                           "dataset-fashion-mnist or pass fashion-mnist:DIR)") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"Fashion-MNIST: cannot read {path!r}: {exc}") from None
    if len(data) < 4:
        raise DatasetError(f"Fashion-MNIST: {path!r}: truncated header ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DatasetError(f"Fashion-MNIST: {path!r}: bad magic (dtype byte 0x{dtype:02x}, "
                           "expected 0x08 uint8)")
    if want_ndim is not None and ndim != want_ndim:
        raise DatasetError(f"Fashion-MNIST: {path!r}: ndim {ndim}, expected {want_ndim}")
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"Fashion-MNIST: {path!r}: truncated header")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    need = int(np.prod(dims))
    payload = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if payload.size != need:
        raise DatasetError(f"Fashion-MNIST: {path!r}: {payload.size} data bytes, header dims "
                           f"{dims} need {need}")
    return payload.reshape(dims)
