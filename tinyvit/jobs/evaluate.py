"""Deterministic evaluation: the one eval transform (tinyvit/augment/eval.py: timm's resize +
centre crop for ``eval_config``), normalise, top-1 accuracy (sharded over ranks under torchrun)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..augment.config import AugConfig
from ..augment.eval import eval_image, resolve_eval_config
from .distributed import Dist

__all__ = ['eval_tensors', 'evaluate']


def eval_tensors(dataset, eval_config, indices=None):
    """uint8 [N, H, W, 3] eval images and int64 labels: the one eval transform
    (tinyvit.augment.eval.eval_image, timm's resize + centre crop) for ``eval_config`` -- an
    ``AugConfig.eval_config()`` dict, an AugConfig (its default eval config) or an int S (the
    whole image resized to S x S). Normalisation is left to :func:`evaluate` (on the device)."""
    ecfg = resolve_eval_config(eval_config)
    idx = range(len(dataset)) if indices is None else indices
    imgs = np.stack([eval_image(dataset[int(i)], ecfg) for i in idx])
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
