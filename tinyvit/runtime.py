"""Shared pieces of `tinyvit save-logits` and `tinyvit train`: model construction (timm or
``module:function``), torch.distributed set-up for torchrun, AugConfig command-line options,
deterministic evaluation batches."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
from typing import Optional

import numpy as np
import torch

from .aug_config import AugConfig

__all__ = ["ModelError", "TeacherOutputError", "build_model", "init_distributed", "add_aug_arguments",
           "aug_config_from_args", "eval_tensors", "evaluate", "Dist"]


class ModelError(ValueError):
    """A model cannot be built or loaded (unknown timm name, bad module:function, checkpoint
    that does not fit). Names the model / file."""


class TeacherOutputError(ValueError):
    """The teacher's output is not [B, num_classes] (raised before anything is written)."""


def build_model(name: str, num_classes: int, *, img_size: Optional[int] = None, in_chans: int = 3,
                checkpoint: Optional[str] = None, kwargs: Optional[dict] = None) -> torch.nn.Module:
    """``module:function`` (called with no arguments; must return an nn.Module) or a timm model
    name (``pretrained=False``: never downloads; ``img_size`` passed when the model takes it).
    ``checkpoint``: a state dict (or a dict with 'model'/'state_dict') loaded with
    ``torch.load(weights_only=True)``, strictly."""
    kwargs = dict(kwargs or {})
    if ":" in name:
        mod_name, fn_name = name.split(":", 1)
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"model {name!r}: cannot import {fn_name!r} from {mod_name!r}: {exc}") from None
        model = fn(**kwargs)
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"model {name!r}: {fn_name}() returned {type(model).__name__}, not an nn.Module")
    else:
        import timm

        if not timm.is_model(name):
            raise ModelError(f"model {name!r}: not a timm model name (see timm.list_models())")
        base = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
        try:
            model = timm.create_model(name, img_size=img_size, **base) if img_size else \
                timm.create_model(name, **base)
        except TypeError:  # CNNs take no img_size
            model = timm.create_model(name, **base)
    if checkpoint:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"checkpoint {checkpoint!r} does not exist") from None
        except Exception as exc:
            raise ModelError(f"checkpoint {checkpoint!r}: cannot load with weights_only=True: {exc}") from None
        if isinstance(state, dict):
            for key in ("model", "state_dict", "model_state"):
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as exc:
            raise ModelError(f"checkpoint {checkpoint!r} does not fit model {name!r}: "
                             f"{str(exc).splitlines()[0]}") from None
    return model


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            torch.distributed.barrier()


def init_distributed(device: Optional[str] = None) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: init nccl (CUDA) or gloo (CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank, world, local, dev)


def add_aug_arguments(p: argparse.ArgumentParser, defaults_from_store: bool = False) -> None:
    """AugConfig fields as --options. Unset options keep AugConfig's defaults (or, for train
    --distill, the store's recorded config)."""
    g = p.add_argument_group("augmentation (AugConfig; part of the store's fingerprint)")
    g.add_argument("--img-size", type=int, default=None, help="output size (default 224)")
    g.add_argument("--interpolation", default=None, choices=["bicubic", "bilinear", "nearest", "random"])
    g.add_argument("--scale", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="RandomResizedCrop area range (default 0.08 1.0)")
    g.add_argument("--hflip", type=float, default=None, help="flip probability (default 0.5)")
    g.add_argument("--auto-augment", default=None,
                   help="timm RandAugment string, or 'none' (default rand-m9-mstd0.5-inc1)")
    g.add_argument("--color-jitter", type=float, default=None)
    g.add_argument("--reprob", type=float, default=None, help="RandomErasing probability (default 0.25)")
    g.add_argument("--mixup", type=float, default=None, help="Mixup alpha (default 0.8; 0 = off)")
    g.add_argument("--cutmix", type=float, default=None, help="CutMix alpha (default 1.0; 0 = off)")
    g.add_argument("--mean", type=float, nargs=3, default=None)
    g.add_argument("--std", type=float, nargs=3, default=None)


_AUG_FIELDS = {"img_size": "img_size", "interpolation": "interpolation", "scale": "scale",
               "hflip": "hflip", "auto_augment": "auto_augment", "color_jitter": "color_jitter",
               "reprob": "re_prob", "mixup": "mixup_alpha", "cutmix": "cutmix_alpha",
               "mean": "mean", "std": "std"}


def aug_config_from_args(args, base: Optional[AugConfig] = None) -> AugConfig:
    d = base.to_dict() if base is not None else {}
    for arg, field in _AUG_FIELDS.items():
        v = getattr(args, arg, None)
        if v is None:
            continue
        if field == "auto_augment" and v.lower() in ("none", "off", ""):
            v = None
        d[field] = tuple(v) if isinstance(v, list) else v
    if base is not None:
        return AugConfig.from_dict(d)
    return AugConfig(**d)


def _eval_resize(src, size: int):
    from PIL import Image

    if isinstance(src, np.ndarray):
        img = Image.fromarray(src if src.ndim == 2 or src.shape[-1] == 3 else src[..., 0])
    elif isinstance(src, Image.Image):
        img = src
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
    from .device_ops import normalize

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


def parse_kwargs(text: Optional[str]) -> dict:
    if not text:
        return {}
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model kwargs {text!r}: not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ModelError(f"model kwargs {text!r}: must be a JSON object")
    return d
