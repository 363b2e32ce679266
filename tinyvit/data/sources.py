"""What a dataset item (a *source*) is, and its (width, height): the plan's crop depends on it."""
from __future__ import annotations

import os
import stat

import numpy as np

__all__ = ['source_sizes', 'source_size']


def source_sizes(dataset, indices) -> np.ndarray:
    """(n, 2) int64 (width, height) of the source images (the plan's crop depends on it).
    Uses ``dataset.source_sizes`` when the dataset has it (arrays: the shape; ImageFolder:
    header reads, cached), else reads each source's header with Pillow."""
    fn = getattr(dataset, "source_sizes", None)
    if callable(fn):
        return np.asarray(fn(indices), np.int64).reshape(-1, 2)
    out = np.empty((len(indices), 2), np.int64)
    for k, i in enumerate(np.asarray(indices).tolist()):
        out[k] = source_size(dataset[i])
    return out


def source_size(src):
    if isinstance(src, np.ndarray):
        return src.shape[1], src.shape[0]
    from PIL import Image

    if isinstance(src, Image.Image):
        return src.size
    if isinstance(src, (bytes, bytearray, memoryview)):
        import io

        try:
            with Image.open(io.BytesIO(bytes(src))) as im:
                return im.size
        except Exception as exc:  # noqa: BLE001 - an undecodable header, typed and named
            from ..augment.replay import ImageDecodeError

            raise ImageDecodeError(f"<bytes len={len(src)}>: cannot read the image header: "
                                   f"{type(exc).__name__}: {exc}") from None
    path = os.fspath(src)
    # Pillow would block forever opening a FIFO named .jpg; refuse what is not a regular file.
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path}: not a regular file (a FIFO, socket or device), refused")
    # opened here, outside the decode guard: a file that cannot be read raises its OSError
    # (PermissionError, ...) naming the path, as replay does; only a header Pillow cannot
    # parse is an ImageDecodeError (Pillow's own "cannot identify" is an OSError too)
    with open(path, "rb") as f:
        try:
            with Image.open(f) as im:
                return im.size
        except Exception as exc:  # an undecodable header: same error type replay would raise
            from ..augment.replay import ImageDecodeError

            raise ImageDecodeError(f"{path}: cannot read the image header: "
                                   f"{type(exc).__name__}: {exc}") from None
