"""Deterministic evaluation: resize the short side, centre crop (timm's eval transform),
normalise, top-1 accuracy (sharded over ranks under torchrun)."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from ..augment.config import AugConfig
from .distributed import Dist

__all__ = ['eval_tensors', 'evaluate']


def _eval_resize(src, size: int):
    if isinstance(src, np.ndarray) and src.dtype == np.uint8 and src.shape[:2] == (size, size) \
            and (src.ndim == 2 or src.shape[-1] in (1, 3)):
        # already the eval size: only the grey -> RGB copy Pillow would do; no Pillow on the
        # path, so the bytes cannot depend on Pillow vs pillow-simd
        return np.ascontiguousarray(np.broadcast_to(src.reshape(size, size, -1)[..., :1], (size, size, 3))
                                    if src.ndim == 2 or src.shape[-1] == 1 else src)
    from PIL import Image

    if isinstance(src, np.ndarray):
        img = Image.fromarray(src if src.ndim == 2 or src.shape[-1] == 3 else src[..., 0])
    elif isinstance(src, Image.Image):
        img = src
    elif isinstance(src, (bytes, bytearray, memoryview)):  # e.g. TarShards samples
        import io
        img = Image.open(io.BytesIO(src))
    else:
        img = Image.open(os.fspath(src))
    img = img.convert("RGB")
    w, h = img.size
    if (w, h) != (size, size):
        # resize the short side to size/0.875, centre crop (timm's eval transform); tiny
        # images (<= size) are just resized
        short = size if min(w, h) <= size else int(size / 0.875)
        if w <= h:
            nw, nh = short, max(short, round(h * short / w))
        else:
            nw, nh = max(short, round(w * short / h)), short
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, np.uint8)


def eval_tensors(dataset, img_size: int, indices=None):
    """uint8 [N, H, W, 3] eval images (deterministic resize + centre crop) and int64 labels."""
    idx = range(len(dataset)) if indices is None else indices
    imgs = np.stack([_eval_resize(dataset[int(i)], img_size) for i in idx])
    labels = np.asarray(dataset.targets, np.int64)[np.asarray(list(idx), np.int64)]
    return torch.from_numpy(imgs), torch.from_numpy(labels)


@torch.no_grad()
def evaluate(model, images_u8, labels, cfg: AugConfig, device, batch_size=256, amp=False,
             dist: Optional[Dist] = None, in_chans: int = 3):
    """Top-1 accuracy (rank shards summed with all_reduce under torchrun)."""
    from ..augment.device import normalize

    was = model.training
    model.eval()
    n = images_u8.shape[0]
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    for s in range(rank * batch_size, n, batch_size * world):
        x = normalize(images_u8[s:s + batch_size].to(device), cfg.mean, cfg.std)
        if in_chans == 1:
            x = x.mean(1, keepdim=True)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out = model(x)
        y = labels[s:s + batch_size].to(device)
        correct[0] += (out.argmax(-1) == y).sum()
        correct[1] += y.numel()
    if dist is not None and dist.enabled:
        torch.distributed.all_reduce(correct)
    model.train(was)
    return float(correct[0] / correct[1].clamp_min(1))
