"""Small deterministic image trees and shards for the data tests."""
from __future__ import annotations

import io
import os

import numpy as np


def encode(fmt: str, size, seed: int = 0, **kw) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    mode = "L" if fmt == "PGM" else "RGB"
    shape = (h, w) if mode == "L" else (h, w, 3)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    buf = io.BytesIO()
    img.save(buf, "PPM" if fmt == "PGM" else fmt, **kw)
    return buf.getvalue()


def pinned_tree(root) -> None:
    """A tree whose listing and fingerprint are pinned (content = fixed bytes, so the
    fingerprint -- relative paths and sizes -- does not depend on any encoder)."""
    files = {
        "cat/a.jpg": 10, "cat/B.JPEG": 11, "cat/sub/deep/c.png": 12, "cat/sub/d.jpg": 13,
        "cat/notes.txt": 5, "dog/z.jpg": 20, "dog/y.webp": 21, "dog/x.bmp": 22,
        "dog/ünï.jpg": 23, "emu/0.ppm": 30, "emu/sub b/1.tif": 31, "emu/.hidden.jpg": 32,
    }
    for rel, n in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(bytes((n + k) % 256 for k in range(n * 7)))
    os.makedirs(os.path.join(root, "empty_class"), exist_ok=True)


# ImageFolder(pinned_tree).fingerprint() as computed by main at 239ca50 (before the index)
PINNED_FINGERPRINT = "if1-89ce28afc4e6be4c12f1cd04c30e0638"


def old_listing(root, exts):
    """ImageFolder's listing as main wrote it before the index (the reference)."""
    root = os.path.abspath(root)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    rel, labels, sizes = [], [], []
    for c, name in enumerate(classes):
        files = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames.sort()
            for f in filenames:
                if f.lower().endswith(exts):
                    files.append(os.path.relpath(os.path.join(dirpath, f), root))
        for f in sorted(files):
            rel.append(f)
            labels.append(c)
            sizes.append(os.stat(os.path.join(root, f)).st_size)
    return classes, rel, labels, sizes
