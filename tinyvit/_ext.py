"""Loads the compiled core (tinyvit._C) and reports how it was built."""
from __future__ import annotations

import torch  # noqa: F401  (loads libtorch / libc10 before the extension needs them)

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "tinyvit's compiled core (tinyvit._C) is missing or was built against another torch. "
        "Rebuild it with `pip install --no-build-isolation -e .` (see docs/README.md)."
    ) from exc


def build_info() -> dict:
    """How the compiled core was built, as baked into the binary at compile time.

    Keys: ``cuda`` (CUDA kernels compiled in), ``cuda_archs`` (e.g. ``"sm_90"``),
    ``cuda_version``, ``torch_compiled`` (torch the binary was built against),
    ``torch_runtime`` (torch imported now), ``jpeg`` / ``libjpeg_turbo`` /
    ``libjpeg_turbo_version`` (JPEG library linked for the fast decode path),
    ``compiler``, and ``cuda_available`` (a CUDA device usable right now).
    """
    info = dict(_C._build_info())
    info["cuda_archs"] = [a for a in info["cuda_archs"].split(";") if a]
    info["torch_runtime"] = torch.__version__
    info["cuda_available"] = bool(info["cuda"] and torch.cuda.is_available())
    return info
