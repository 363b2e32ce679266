"""Per-batch augmentation ops in torch (CPU or CUDA), driven by the plans.

normalize -> random_erase -> mix, as timm's ToTensor+Normalize, RandomErasing and Mixup
('elem' mode, each sample mixing with its pair partner). They draw nothing: every random
value comes from the plans (``tinyvit.augment.plan.plan_device_params``), and erase noise from
PCG32(box noise_seed) computed in C++ on the CPU, so CPU and CUDA give identical bits
(each step is a sequence of separately rounded IEEE float ops; no fused kernels).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._ext import _C
from .config import AugConfig
from .seeds import mix_partners

_MODES = ("const", "rand", "pixel")


def _as_tensor(a, device=None, dtype=None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    return t.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else t


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              layout: str = "auto", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 batch -> float NCHW ``(x / 255 - mean) / std`` (torchvision's ToTensor then
    Normalize, same rounding). ``layout``: 'nhwc', 'nchw' or 'auto' (NHWC when the last
    dimension is 3 and the second is not)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError("images must be a 4-D uint8 torch.Tensor (N, H, W, C) or (N, C, H, W), "
                        f"got {getattr(images, 'dtype', type(images).__name__)} "
                        f"{tuple(getattr(images, 'shape', ()))}")
    if layout == "auto":
        layout = "nhwc" if images.shape[-1] == 3 and images.shape[1] != 3 else "nchw"
    if layout == "nhwc":
        images = images.permute(0, 3, 1, 2)
    elif layout != "nchw":
        raise ValueError(f"layout must be 'auto', 'nhwc' or 'nchw', got {layout!r}")
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std need {c} values (one per channel), got {len(mean)}/{len(std)}")
    m = torch.tensor(mean, dtype=dtype, device=images.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=dtype, device=images.device).view(1, c, 1, 1)
    x = images.contiguous().to(dtype).div_(255)
    return x.sub_(m).div_(s)


def random_erase(x: torch.Tensor, params: Dict[str, np.ndarray], mode: str) -> torch.Tensor:
    """RandomErasing in place on a normalized float NCHW batch from the plans' erase boxes.

    mode 'const' fills 0, 'rand' one normal per channel, 'pixel' one normal per value (CHW
    order), the normals being ``_C.erase_noise(noise_seed, n)``. Returns ``x``.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    boxes = np.asarray(params["erase_boxes"])
    counts = np.asarray(params["erase_count"])
    seeds = np.asarray(params["erase_seeds"])
    n, c, h, w = x.shape
    if len(counts) != n:
        raise ValueError(f"params describe {len(counts)} samples but the batch has {n}")
    items = [(i, k) for i in range(n) for k in range(int(counts[i]))]
    items = [(i, k) for i, k in items if boxes[i, k, 2] > 0 and boxes[i, k, 3] > 0]
    for i, k in items:
        bx, by, bw, bh = (int(v) for v in boxes[i, k])
        if bx < 0 or by < 0 or bx + bw > w or by + bh > h:
            raise ValueError(f"sample {i}: erase box {(bx, by, bw, bh)} outside the {w}x{h} image "
                             "(plans made for another img_size?)")
    if not items:
        return x
    if mode == "const":
        for i, k in items:
            bx, by, bw, bh = (int(v) for v in boxes[i, k])
            x[i, :, by:by + bh, bx:bx + bw] = 0
        return x
    sizes = [c if mode == "rand" else c * int(boxes[i, k, 2]) * int(boxes[i, k, 3])
             for i, k in items]
    noise_np = _C.erase_noise_batch(np.array([seeds[i, k] for i, k in items], np.int64),
                                    np.array(sizes, np.int64))
    noise = torch.from_numpy(noise_np).to(device=x.device, dtype=x.dtype, non_blocking=False)
    offset = 0
    for (i, k), size in zip(items, sizes):
        bx, by, bw, bh = (int(v) for v in boxes[i, k])
        chunk = noise[offset:offset + size]
        offset += size
        if mode == "rand":
            x[i, :, by:by + bh, bx:bx + bw] = chunk.view(c, 1, 1)
        else:
            x[i, :, by:by + bh, bx:bx + bw] = chunk.view(c, bh, bw)
    return x


def mix(x: torch.Tensor, params: Dict[str, np.ndarray],
        partner: Union[torch.Tensor, Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mixup/CutMix in place ('elem' mode): sample i mixes with ``x[partner[i]]`` as it was
    before mixing, with ITS plan's lam / cut box. Mixup: ``x_i * lam + x_p * (1 - lam)``;
    CutMix: the box [x0, x1) x [y0, y1) is copied from the partner. Returns (x, lam) with
    lam (N,) the weight of each sample's own image (1 where not mixed; for CutMix the
    area-corrected value), for mixing targets with ``mix_targets``.
    """
    n, _, h, w = x.shape
    mode = np.asarray(params["mix"]).astype(np.int64).reshape(-1)
    if mode.size != n:
        raise ValueError(f"params describe {mode.size} samples but the batch has {n}")
    part = np.asarray(partner.cpu() if isinstance(partner, torch.Tensor) else partner,
                      dtype=np.int64).reshape(-1)
    if part.shape != (n,) or (n and (part.min() < 0 or part.max() >= n)):
        raise ValueError(f"partner must be {n} positions in [0, {n}), got {part.tolist()}")
    lam_np = np.asarray(params["lam"], dtype=np.float32).reshape(-1)
    eff = torch.from_numpy(np.where(mode != 0, lam_np, np.float32(1))).to(
        device=x.device, dtype=x.dtype)
    rows_m = np.nonzero(mode == 1)[0]
    rows_c = np.nonzero(mode == 2)[0]
    if rows_m.size == 0 and rows_c.size == 0:
        return x, eff
    dev = x.device

    def index(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    # gather every partner image BEFORE writing anything: partners mix from pre-mix images
    src_m = x[index(part[rows_m])] if rows_m.size else None
    src_c = x[index(part[rows_c])] if rows_c.size else None
    if rows_m.size:
        im = index(rows_m)
        lam4 = eff[im].view(-1, 1, 1, 1)
        x[im] = x[im] * lam4 + src_m * (1 - lam4)  # two rounded products and a rounded sum
    if rows_c.size:
        ic = index(rows_c)
        box = index(np.asarray(params["cut_box"], dtype=np.int64).reshape(n, 4)[rows_c])
        k = rows_c.size
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        inside = ((ys >= box[:, 1].view(k, 1, 1)) & (ys < box[:, 3].view(k, 1, 1))
                  & (xs >= box[:, 0].view(k, 1, 1)) & (xs < box[:, 2].view(k, 1, 1)))
        x[ic] = torch.where(inside.unsqueeze(1), src_c, x[ic])
    return x, eff


def mix_targets(targets: torch.Tensor, lam: torch.Tensor, partner,
                num_classes: Optional[int] = None, smoothing: float = 0.0) -> torch.Tensor:
    """``t_i * lam_i + t_partner(i) * (1 - lam_i)``. Integer class targets are one-hot encoded
    first (with timm's label smoothing: off = smoothing / C, on = 1 - smoothing + off)."""
    if not targets.is_floating_point():
        if num_classes is None:
            raise ValueError("num_classes is required for integer class targets")
        off = smoothing / num_classes
        t = torch.full((targets.numel(), num_classes), off, device=targets.device)
        t.scatter_(1, targets.long().view(-1, 1), 1.0 - smoothing + off)
        targets = t
    partner = _as_tensor(partner).to(device=targets.device, dtype=torch.int64)
    lam = lam.to(device=targets.device, dtype=targets.dtype).view(-1, *([1] * (targets.dim() - 1)))
    return targets * lam + targets[partner] * (1 - lam)


def batch_partners(indices, epoch: int, num_samples: int, base_seed: int) -> torch.Tensor:
    """Positions in this batch of each sample's mix partner (dataset ``indices`` of the
    batch, in order). Raises ValueError naming the sample when a partner is not in the batch
    (use ``PairedSampler`` with an even batch size so it always is)."""
    idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices,
                     dtype=np.int64).reshape(-1)
    partners = mix_partners(epoch, idx, num_samples, base_seed)
    first = {}
    for pos, i in enumerate(idx.tolist()):
        first.setdefault(i, pos)
    out = np.empty(len(idx), np.int64)
    for pos, (i, p) in enumerate(zip(idx.tolist(), partners.tolist())):
        if p == i:
            out[pos] = pos
        elif p in first:
            out[pos] = first[p]
        else:
            raise ValueError(f"sample {i} (batch position {pos}): its mix partner {p} is not in "
                             "the batch; use tinyvit.data.sampler.PairedSampler with an even batch size")
    return torch.from_numpy(out)


class DeviceAugment:
    """normalize -> RandomErasing -> Mixup/CutMix for one AugConfig.

    ``aug(images_u8, params, partner)`` -> (x, lam): images uint8 NHWC/NCHW on any device,
    ``params`` from ``replay_batch(..., return_params=True)`` (or ``plan_device_params``),
    ``partner`` positions from ``batch_partners`` (ignored when the config has no mixing).
    """

    def __init__(self, cfg: AugConfig, dtype: torch.dtype = torch.float32):
        if not isinstance(cfg, AugConfig):
            raise TypeError(f"cfg must be a tinyvit.AugConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.dtype = dtype

    def __call__(self, images: torch.Tensor, params: Dict[str, np.ndarray],
                 partner=None) -> Tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        x = normalize(images, cfg.mean, cfg.std, dtype=self.dtype)
        if x.shape[2:] != (cfg.height, cfg.width):
            raise ValueError(f"images are {tuple(x.shape[2:])} but the config's img_size is "
                             f"{cfg.img_size}")
        if cfg.re_prob > 0:
            random_erase(x, params, cfg.re_mode)
        if cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0:
            if partner is None:
                raise ValueError("partner positions are required when mixing is enabled")
            return mix(x, params, partner)
        return x, torch.ones(x.shape[0], dtype=x.dtype, device=x.device)


__all__ = ["normalize", "random_erase", "mix", "mix_targets", "batch_partners", "DeviceAugment"]
