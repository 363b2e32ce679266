"""Replaying augmented pixels from a seed: tinyvit.replay and tinyvit.replay_batch.

replay(source, seed, cfg) = apply(make_plan(seed, source size, cfg), source), in C++ for
every source kind: JPEG bytes and files take the region-of-interest decode with DCT
downscaling; other formats, PIL images and arrays are converted to RGB first; then
resize, flip and RandAugment on uint8. The Pillow backend (tinyvit.augment.pil) applies
the same plan on request (path="pil"). Applying a plan draws no randomness, so the same (source, seed,
cfg) gives the same bytes on every call, process, thread count and batch position.
"""
from __future__ import annotations

import io
import os
import threading
import warnings

import numpy as np
import torch

from .._ext import _C
from .pil import apply_plan_pil, array_to_rgb, to_rgb

ImageDecodeError = _C.ImageDecodeError
ImageDecodeError.__module__ = "tinyvit"
ImageDecodeError.__doc__ = (
    "A source could not be decoded (corrupt, truncated, empty or not an image). Subclass of "
    "ValueError; the message starts with the source: its path or '<bytes len=N>'.")

_PATHS = ("auto", "cpp", "pil")
_JPEG_MAGIC = b"\xff\xd8\xff"


def _cpp_config(cfg):
    """The C++ AugConfig behind cfg (tinyvit.AugConfig or an already-built _C.AugConfig)."""
    if isinstance(cfg, _C.AugConfig):
        return cfg
    make = getattr(cfg, "_cpp", None)
    if make is None:
        raise TypeError(f"cfg must be a tinyvit.AugConfig, got {type(cfg).__name__}")
    return make()


def _out_params(ccfg):
    d = ccfg.to_dict()
    return (d["out_h"], d["out_w"]), tuple(d["fill"])


def _is_pil(obj):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Image.Image)


def _read(source):
    """-> (kind, payload, name): kind 'bytes' (payload bytes), 'pil' or 'array'."""
    if isinstance(source, (bytes, bytearray)):
        return "bytes", bytes(source), f"<bytes len={len(source)}>"
    if isinstance(source, memoryview):
        data = source.tobytes()
        return "bytes", data, f"<bytes len={len(data)}>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as f:
            return "bytes", f.read(), path
    if _is_pil(source):
        return "pil", source, "<PIL image>"
    if isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        return "array", source, "<array>"
    raise TypeError("source must be JPEG/image bytes, a path, a PIL image or an array, got "
                    f"{type(source).__name__}")


def _open_pil(data: bytes, name: str):
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise ImageDecodeError(f"{name}: empty input (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: {exc}") from exc
    return img


def _pil_path(img, seed, ccfg, name):
    out_hw, fill = _out_params(ccfg)
    try:
        rgb = to_rgb(img)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: {exc}") from exc
    plan = _C.make_plan(seed, rgb.size, ccfg)
    return apply_plan_pil(rgb, plan, out_hw, fill)


def replay(source, seed, cfg, *, path: str = "auto", scale_denom: int = 0) -> np.ndarray:
    """The augmented uint8 (out_h, out_w, 3) image for (source, seed, cfg).

    source: JPEG (or other image) bytes, a path, a PIL image, or an array ((H, W) or
    (H, W, 1|3|4); uint8, uint16, bool or float in [0, 1]).
    path: "auto" = "cpp" (the default: JPEG via the C++ region decoder; other formats
    decoded losslessly by Pillow, PIL images and arrays converted to RGB; then augmented
    in C++ -- the same pixels whichever Pillow build is installed) or "pil" (decode and
    augment with Pillow: the reference backend; Pillow and pillow-simd may differ).
    scale_denom: C++ JPEG path only; 0 = automatic DCT downscaling, 1 = never (1/2, 1/4,
    1/8 force a factor). Part of the pixel contract: keep it fixed for a dataset.
    Raises ImageDecodeError naming the source for corrupt / truncated / empty inputs.
    """
    if path not in _PATHS:
        raise ValueError(f"path must be one of {_PATHS}, got {path!r}")
    if scale_denom not in (0, 1, 2, 4, 8):
        raise ValueError(f"scale_denom must be 0, 1, 2, 4 or 8, got {scale_denom!r}")
    ccfg = _cpp_config(cfg)
    kind, payload, name = _read(source)
    if path == "pil":
        img = _open_pil(payload, name) if kind == "bytes" else (
            payload if kind == "pil" else None)
        if img is None:
            from PIL import Image

            img = Image.fromarray(array_to_rgb(payload), "RGB")
        return _pil_path(img, seed, ccfg, name)
    # "auto" and "cpp": every source is augmented in C++, so the pixels depend only on
    # (source pixels, seed, config, plan format), never on the installed Pillow build.
    # JPEG takes the region decoder; other formats are decoded losslessly by Pillow first.
    if kind == "bytes":
        if payload[:3] == _JPEG_MAGIC or len(payload) == 0:
            return _C._replay_jpeg(payload, seed, ccfg, scale_denom, name)
        try:
            rgb = np.asarray(to_rgb(_open_pil(payload, name)))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ImageDecodeError):
                raise
            raise ImageDecodeError(f"{name}: {exc}") from exc
        return _cpp_on_array(array_to_rgb(rgb), seed, ccfg, name)
    if kind == "pil":
        try:
            rgb = np.asarray(to_rgb(payload))
        except (OSError, ValueError) as exc:
            raise ImageDecodeError(f"{name}: {exc}") from exc
        return _cpp_on_array(rgb, seed, ccfg, name)
    return _cpp_on_array(array_to_rgb(payload), seed, ccfg, name)


def _cpp_on_array(arr, seed, ccfg, name):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    out_hw, fill = _out_params(ccfg)
    plan = _C.make_plan(seed, (arr.shape[1], arr.shape[0]), ccfg)
    return _C._apply_plan(arr, plan, out_hw, fill, 0, name)


# Pools are per process: a forked child (DataLoader worker) gets its own, since the
# parent's threads do not exist there (the C++ pool also degrades to serial if reached).
_pools: dict[tuple, object] = {}
_pools_lock = threading.Lock()
_pin_warned = False


def _pool(num_threads: int):
    key = (os.getpid(), num_threads)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = _C.PixelPool(num_threads)
        return pool


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _alloc(shape, pin_memory):
    global _pin_warned
    if pin_memory:
        if torch.cuda.is_available():
            return torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        if not _pin_warned:
            warnings.warn("replay_batch(pin_memory=True): no CUDA device, returning ordinary "
                          "(pageable) CPU memory", RuntimeWarning, stacklevel=3)
            _pin_warned = True
    return torch.empty(shape, dtype=torch.uint8)


def replay_batch(sources, seeds, cfg, out=None, *, num_threads: int | None = None,
                 pin_memory: bool = False, scale_denom: int = 0) -> torch.Tensor:
    """replay() for a whole batch into one uint8 tensor [B, out_h, out_w, 3].

    JPEG bytes and JPEG files are decoded and augmented on a C++ thread pool (num_threads,
    default: the CPUs this process may use; pools are kept and reused across calls) with
    the GIL released; other sources are converted in this thread and augmented in C++ (replay's "auto").
    Every row equals replay(sources[i], seeds[i], cfg) byte for byte, for any num_threads.
    out: an existing C-contiguous CPU uint8 tensor of that shape to fill (e.g. pinned);
    otherwise one is allocated, in pinned memory when pin_memory=True and CUDA is
    available (without CUDA a RuntimeWarning is issued once and pageable memory is used).
    """
    sources = list(sources)
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(sources):
        raise ValueError(f"got {len(sources)} sources but {len(seeds)} seeds")
    if scale_denom not in (0, 1, 2, 4, 8):
        raise ValueError(f"scale_denom must be 0, 1, 2, 4 or 8, got {scale_denom!r}")
    ccfg = _cpp_config(cfg)
    (out_h, out_w), _ = _out_params(ccfg)
    shape = (len(sources), out_h, out_w, 3)
    if out is None:
        out = _alloc(shape, pin_memory)
    else:
        if not isinstance(out, torch.Tensor):
            raise TypeError("out must be a torch.Tensor")
        if tuple(out.shape) != shape or out.dtype != torch.uint8 or out.device.type != "cpu" \
                or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous CPU uint8 tensor of shape {shape}, got "
                             f"{tuple(out.shape)} {out.dtype} on {out.device}")
    n_threads = _default_threads() if num_threads is None else int(num_threads)
    if n_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    # Bytes and paths go to C++ (paths are read by the worker threads); others stay here.
    cpp_idx, cpp_src, names = [], [], {}
    for i, s in enumerate(sources):
        if isinstance(s, (bytes, bytearray)):
            cpp_idx.append(i)
            cpp_src.append(bytes(s))
            names[i] = f"<bytes len={len(s)}>"
        elif isinstance(s, (str, os.PathLike)):
            cpp_idx.append(i)
            cpp_src.append(os.fspath(s))
            names[i] = os.fspath(s)
    out_np = out.numpy()
    if cpp_idx:
        if len(cpp_idx) == len(sources):
            target = out_np
        else:
            target = np.empty((len(cpp_idx), out_h, out_w, 3), dtype=np.uint8)
        status = _pool(n_threads).run(cpp_src, [seeds[i] for i in cpp_idx], ccfg, target,
                                      scale_denom)
        for k, (i, st) in enumerate(zip(cpp_idx, status)):
            if st is not None:
                what, msg = st
                where = f"{names[i]} (batch item {i})"
                if what == "decode":
                    raise ImageDecodeError(f"{where}: {msg}")
                if what == "io":
                    raise FileNotFoundError(f"{where}: {msg}") if not os.path.exists(names[i]) \
                        else OSError(f"{where}: {msg}")
                if what == "value":
                    raise ValueError(f"{where}: {msg}")
                # not a JPEG: decoded by Pillow, augmented in C++, as replay(path="auto").
                target[k] = replay(sources[i], seeds[i], ccfg, path="auto")
        if target is not out_np:
            out_np[cpp_idx] = target
    cpp_set = set(cpp_idx)
    for i, s in enumerate(sources):
        if i not in cpp_set:
            out_np[i] = replay(s, seeds[i], ccfg, path="auto")
    return out
