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
from typing import Dict, NamedTuple

import numpy as np
import torch

from .._ext import _C
from .config import cpp_config
from .pil import apply_plan_pil, array_to_rgb, to_rgb

from ..errors import ImageDecodeError  # noqa: E402  (the C++ class; defined in tinyvit.errors)

_PATHS = ("auto", "cpp", "pil")
_JPEG_MAGIC = b"\xff\xd8\xff"


def _out_params(ccfg):
    d = ccfg.to_dict()
    return (d["out_h"], d["out_w"]), tuple(d["fill"])


def _is_pil(obj):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Image.Image)


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _display(path: str) -> str:
    """A path as C++ can take it in messages: a name that is not UTF-8 shows its bytes (\\xff)."""
    return path if _utf8(path) else os.fsencode(path).decode("utf-8", "backslashreplace")


def _read_path(path: str) -> bytes:
    """The C++ reader's bytes of a file. A name that is not valid UTF-8 (os.listdir gives it
    with surrogate escapes) goes as the OS's bytes, and a failure names it the same way."""
    if _utf8(path):
        return _C._read_file(path)
    try:
        return _C._read_file(os.fsencode(path))
    except UnicodeDecodeError as exc:  # the C++ message holds the raw name: show its bytes
        raise OSError(exc.object.decode("utf-8", "backslashreplace")) from None


def _read(source):
    """-> (kind, payload, name): kind 'bytes' (payload bytes), 'pil' or 'array'."""
    if isinstance(source, (bytes, bytearray)):
        return "bytes", bytes(source), f"<bytes len={len(source)}>"
    if isinstance(source, memoryview):
        data = source.tobytes()
        return "bytes", data, f"<bytes len={len(data)}>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        # C++ reader: regular files only (a FIFO named .jpg cannot hang it), size-capped;
        # FileNotFoundError / PermissionError / IsADirectoryError / OSError name the path.
        return "bytes", _read_path(path), _display(path)
    if _is_pil(source):
        return "pil", source, "<PIL image>"
    if isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        return "array", source, "<array>"
    raise TypeError("source must be JPEG/image bytes, a path, a PIL image or an array, got "
                    f"{type(source).__name__}")


def _open_pil(data: bytes, name: str):
    from PIL import Image

    if len(data) == 0:
        raise ImageDecodeError(f"{name}: empty input (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except MemoryError as exc:
        raise ImageDecodeError(f"{name}: out of memory decoding the image") from exc
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: Pillow's plugins raise
        # anything (UnidentifiedImageError, DecompressionBombError, SyntaxError, struct.error,
        # IndexError, ...); each is this source failing to decode, typed and named.
        raise ImageDecodeError(f"{name}: {type(exc).__name__}: {exc}") from exc
    return img


def _decoded_rgb(payload, kind: str, name: str) -> np.ndarray:
    """A non-JPEG source as a C-contiguous uint8 (H, W, 3) array (Pillow decodes losslessly,
    so the pixels do not depend on the Pillow build). Typed errors naming the source."""
    if kind == "array":
        try:
            return np.ascontiguousarray(array_to_rgb(payload), dtype=np.uint8)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from exc
    img = _open_pil(payload, name) if kind == "bytes" else payload
    try:
        rgb = np.asarray(to_rgb(img))
    except MemoryError as exc:
        raise ImageDecodeError(f"{name}: out of memory converting the image") from exc
    except Exception as exc:  # noqa: BLE001 - same reason as _open_pil
        raise ImageDecodeError(f"{name}: {type(exc).__name__}: {exc}") from exc
    return np.ascontiguousarray(array_to_rgb(rgb), dtype=np.uint8)


def _pil_path(img, seed, ccfg, name):
    out_hw, fill = _out_params(ccfg)
    try:
        rgb = to_rgb(img)
    except Exception as exc:  # noqa: BLE001 - same reason as _open_pil
        raise ImageDecodeError(f"{name}: {type(exc).__name__}: {exc}") from exc
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
    ccfg = cpp_config(cfg)
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
    if kind == "bytes" and (payload[:3] == _JPEG_MAGIC or len(payload) == 0):
        return _C._replay_jpeg(payload, seed, ccfg, scale_denom, name)
    return _cpp_on_array(_decoded_rgb(payload, kind, name), seed, ccfg, name)


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


class ReplayedBatch(NamedTuple):
    """``replay_batch(..., return_params=True)``: the uint8 images and the device part of the
    very plans they were replayed with (``plan_device_params``' arrays, numpy)."""

    images: torch.Tensor
    params: Dict[str, np.ndarray]


def replay_batch(sources, seeds, cfg, out=None, *, num_threads: int | None = None,
                 pin_memory: bool = False, scale_denom: int = 0, return_params: bool = False,
                 names=None):
    """replay() for a whole batch into one uint8 tensor [B, out_h, out_w, 3].

    Every source is augmented in C++ on a thread pool (num_threads, default: the CPUs this
    process may use; pools are kept and reused across calls) with the GIL released: JPEG
    bytes and files (read by the pool threads) take the region decoder; other formats are
    decoded by Pillow in this thread, PIL images and arrays converted to RGB (replay's
    "auto"). Every row equals replay(sources[i], seeds[i], cfg) byte for byte, for any
    num_threads. One plan is made per item; return_params=True also returns the device part
    of those plans (a ReplayedBatch(images, params); params as ``plan_device_params``
    returns them) -- no second plan and no second read of the source size.
    out: an existing C-contiguous CPU uint8 tensor of that shape to fill (e.g. pinned);
    otherwise one is allocated, in pinned memory when pin_memory=True and CUDA is
    available (without CUDA a RuntimeWarning is issued once and pageable memory is used).
    A failing item raises its typed error (ImageDecodeError, FileNotFoundError,
    PermissionError, IsADirectoryError, OSError, ValueError, TypeError) naming the source and
    "(batch item i)". names: optional, one str per source, what an error names instead of
    the default (the path, or "<bytes len=N>"): e.g. a tar shard and key
    (``TarShards.source_name(i)``), since bytes alone say nothing of where they came from.
    """
    sources = list(sources)
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(sources):
        raise ValueError(f"got {len(sources)} sources but {len(seeds)} seeds")
    if names is not None:
        # utf-8 for C++: a lone surrogate (an undecodable file name) becomes \udcxx text
        names = [str(n).encode("utf-8", "backslashreplace").decode() for n in names]
        if len(names) != len(sources):
            raise ValueError(f"got {len(sources)} sources but {len(names)} names")
    if scale_denom not in (0, 1, 2, 4, 8):
        raise ValueError(f"scale_denom must be 0, 1, 2, 4 or 8, got {scale_denom!r}")
    ccfg = cpp_config(cfg)
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
    # Bytes and paths go to C++ as they are (paths are read by the pool threads); PIL images
    # and arrays are converted to RGB here (cheap; no decode).
    given, items, names = names, [], []
    for i, s in enumerate(sources):
        kind, name = None, None
        if isinstance(s, (bytes, bytearray)):
            item, name = s, f"<bytes len={len(s)}>"
        elif isinstance(s, memoryview):
            item = s.tobytes()
            name = f"<bytes len={len(item)}>"
        elif isinstance(s, (str, os.PathLike)):
            item = name = os.fspath(s)
            if not isinstance(item, str):
                raise TypeError(f"sources[{i}]: bytes paths are not supported, got {item!r}")
            if not _utf8(item):  # the pool takes UTF-8 paths: read this one here (same bytes)
                item = _read_path(item)
                name = _display(name)
        elif _is_pil(s):
            kind, name = "pil", "<PIL image>"
        elif isinstance(s, np.ndarray) or hasattr(s, "__array__"):
            kind, name = "array", "<array>"
        else:
            raise TypeError(f"sources[{i}] (batch item {i}) must be image bytes, a path, a PIL "
                            f"image or an array, got {type(s).__name__}")
        if given is not None:
            name = given[i]
        if kind is not None:
            item = _decoded_rgb(s, kind, f"{name} (batch item {i})")
        items.append(item)
        names.append(name)

    def decode(i, data):  # a non-JPEG encoded item (bytes, or a file the pool read)
        return _decoded_rgb(data, "bytes", f"{names[i]} (batch item {i})")

    params = _pool(n_threads).run(items, seeds, ccfg, out.numpy(), scale_denom, decode, names)
    return ReplayedBatch(out, params) if return_params else out
