"""TinyViT contraction factors (paper Sec. 3.2) -> timm ``TinyVit`` models.

A :class:`ContractionFactors` names one point of the model space the paper's progressive
contraction searches: embed dims γ_D1..4, depths γ_N1..4, window sizes γ_W2..4 (stage 1 is
MBConv and has no window), MBConv expansion γ_R, MLP ratio γ_M and attention head dim γ_E.
``build()`` turns it into timm's ``TinyVit`` (the model implementation is timm's, untouched).
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

__all__ = [
    "ContractionFactors",
    "PRESETS",
    "PAPER_THROUGHPUT_V100",
    "PAPER_PARAMS_M",
    "preset",
    "stage_resolutions",
    "count_params",
    "analytic_params",
    "throughput",
]

# Arguments of timm's TinyVit that the factors own; passing them to build() would contradict the factors.
_OWNED_KWARGS = ("embed_dims", "depths", "num_heads", "window_sizes", "mlp_ratio",
                 "mbconv_expand_ratio", "num_classes", "in_chans")


def _conv_s2(n: int) -> int:
    # timm's stride-2 3x3 convs use padding 1: out = floor((n + 2 - 3) / 2) + 1 = ceil(n / 2).
    return (n + 1) // 2


def stage_resolutions(img_size: int) -> Tuple[int, int, int, int]:
    """Feature-map side of stages 1..4 for a square ``img_size`` input (timm TinyVit: patch
    embed = two stride-2 convs, then a stride-2 PatchMerging before stages 2, 3, 4)."""
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
        raise ValueError(f"img_size must be a positive int, got {img_size!r}")
    r1 = _conv_s2(_conv_s2(img_size))
    r2 = _conv_s2(r1)
    r3 = _conv_s2(r2)
    r4 = _conv_s2(r3)
    return (r1, r2, r3, r4)


def _divisors(n: int):
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class ContractionFactors:
    """Contraction factors of one TinyViT model (paper Sec. 3.2).

    Field (paper symbol): ``embed_dims`` (γ_D1..4), ``depths`` (γ_N1..4), ``window_sizes``
    (γ_W2..4, stages 2-4; stage 1 is MBConv), ``mbconv_ratio`` (γ_R), ``mlp_ratio`` (γ_M),
    ``head_dim`` (γ_E). Attention stages get ``embed_dims[i] // head_dim`` heads.

    Construction validates the image-size independent rules; :meth:`validate` with an
    ``img_size`` also checks windows against the feature maps. Every violation raises
    ``ValueError`` whose message names the factor (e.g. ``γ_D3 (embed_dims[2])``).
    """

    embed_dims: Tuple[int, int, int, int]
    depths: Tuple[int, int, int, int] = (2, 2, 6, 2)
    window_sizes: Tuple[int, int, int] = (7, 14, 7)
    mbconv_ratio: int = 4
    mlp_ratio: int = 4
    head_dim: int = 32

    def __post_init__(self):
        # Accept lists (e.g. from JSON) but store tuples so instances are hashable and comparable.
        for name, n in (("embed_dims", 4), ("depths", 4), ("window_sizes", 3)):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) != n:
                sym = {"embed_dims": "γ_D1..4", "depths": "γ_N1..4", "window_sizes": "γ_W2..4"}[name]
                raise ValueError(f"{sym} ({name}) must be a sequence of {n} ints, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        self.validate()

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_pos_int(value, label: str, minimum: int = 1):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{label} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"{label} must be >= {minimum}, got {value}")

    def validate(self, img_size: Optional[int] = None) -> "ContractionFactors":
        """Check every factor; with ``img_size`` also check the windows fit the feature maps.

        Rules: all factors are ints >= 1; γ_D1 is even (timm's patch embed has a D1/2-channel
        first conv); γ_D2..4 are multiples of γ_E (whole heads); with ``img_size``, each window
        γ_Wi divides the stage-i feature-map side (no padded, partly empty windows; a window
        equal to the map is global attention). Returns ``self``.
        """
        self._check_pos_int(self.head_dim, "γ_E (head_dim)")
        self._check_pos_int(self.mbconv_ratio, "γ_R (mbconv_ratio)")
        self._check_pos_int(self.mlp_ratio, "γ_M (mlp_ratio)")
        for i, d in enumerate(self.embed_dims):
            label = f"γ_D{i + 1} (embed_dims[{i}])"
            self._check_pos_int(d, label, 2 if i == 0 else 1)
            if i == 0 and d % 2:
                raise ValueError(f"{label} must be even (the patch embed's first conv has "
                                 f"γ_D1/2 channels), got {d}")
            if i > 0 and d % self.head_dim:
                raise ValueError(f"{label}={d} is not a multiple of γ_E (head_dim)={self.head_dim}:"
                                 f" attention stages need a whole number of heads")
        for i, n in enumerate(self.depths):
            self._check_pos_int(n, f"γ_N{i + 1} (depths[{i}])")
        for i, w in enumerate(self.window_sizes):
            self._check_pos_int(w, f"γ_W{i + 2} (window_sizes[{i}])")
        if img_size is not None:
            res = stage_resolutions(img_size)
            for i, w in enumerate(self.window_sizes):
                r = res[i + 1]
                if r % w:
                    raise ValueError(
                        f"γ_W{i + 2} (window_sizes[{i}])={w} does not divide the stage-{i + 2} "
                        f"feature map side {r} at img_size={img_size} (allowed: {_divisors(r)})")
        return self

    # ------------------------------------------------------------------ derived
    @property
    def num_heads(self) -> Tuple[int, int, int, int]:
        """Heads per stage (stage 1 is MBConv; timm ignores its entry, we give D1 // γ_E or 1)."""
        d = self.embed_dims
        return (max(1, d[0] // self.head_dim),) + tuple(x // self.head_dim for x in d[1:])

    def timm_kwargs(self) -> Dict[str, Any]:
        """The architecture arguments of ``timm.models.tiny_vit.TinyVit`` for these factors."""
        return dict(
            embed_dims=list(self.embed_dims),
            depths=list(self.depths),
            num_heads=list(self.num_heads),
            # timm takes one window per stage; stage 1 (ConvLayer) ignores it. Use γ_W2 like timm's presets.
            window_sizes=[self.window_sizes[0]] + list(self.window_sizes),
            mlp_ratio=float(self.mlp_ratio),
            mbconv_expand_ratio=float(self.mbconv_ratio),
        )

    def build(self, num_classes: int = 1000, img_size: int = 224, in_chans: int = 3,
              **timm_kwargs) -> torch.nn.Module:
        """Build timm's ``TinyVit`` (random init, no weights downloaded).

        ``img_size`` is only used to validate the windows (timm's TinyVit itself is
        resolution-agnostic). Extra keyword arguments go to timm (e.g. ``drop_path_rate``,
        ``drop_rate``, ``act_layer``); architecture arguments owned by the factors are refused.
        """
        from timm.models.tiny_vit import TinyVit

        self.validate(img_size)
        self._check_pos_int(num_classes, "num_classes")
        self._check_pos_int(in_chans, "in_chans")
        clash = sorted(k for k in timm_kwargs if k in _OWNED_KWARGS)
        if clash:
            raise TypeError(f"build() got argument(s) {clash} that the contraction factors define")
        return TinyVit(in_chans=in_chans, num_classes=num_classes, **self.timm_kwargs(), **timm_kwargs)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> Dict[str, Any]:
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ContractionFactors":
        if not isinstance(d, dict):
            raise ValueError(f"contraction factors must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown contraction factor(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def key(self) -> str:
        """Compact stable identifier, e.g. ``D64-128-160-320_N2-2-6-2_W7-14-7_R4_M4_E32``."""
        j = lambda t: "-".join(str(x) for x in t)  # noqa: E731
        return (f"D{j(self.embed_dims)}_N{j(self.depths)}_W{j(self.window_sizes)}"
                f"_R{self.mbconv_ratio}_M{self.mlp_ratio}_E{self.head_dim}")

    def fit_windows(self, img_size: int) -> "ContractionFactors":
        """Copy whose each window is the largest divisor of its stage's feature-map side that
        is <= the current window (e.g. a 224-px preset's {7, 14, 7} -> {4, 2, 1} at 32 px)."""
        res = stage_resolutions(img_size)
        ws = tuple(max(d for d in _divisors(res[i + 1]) if d <= w)
                   for i, w in enumerate(self.window_sizes))
        return self.replace(window_sizes=ws)

    def replace(self, **changes) -> "ContractionFactors":
        return dataclasses.replace(self, **changes)


# Paper Sec. 3.2: all share depths {2,2,6,2}, windows {7,14,7}, {γ_R, γ_M, γ_E} = {4, 4, 32}.
PRESETS: Dict[str, ContractionFactors] = {
    "tinyvit_5m": ContractionFactors(embed_dims=(64, 128, 160, 320)),
    "tinyvit_11m": ContractionFactors(embed_dims=(64, 128, 256, 448)),
    "tinyvit_21m": ContractionFactors(embed_dims=(96, 192, 384, 576)),
}
# Paper Table 4 (IN-1k, 224 px; throughput on one V100, batch 256, images/s).
PAPER_PARAMS_M = {"tinyvit_5m": 5.4, "tinyvit_11m": 11.0, "tinyvit_21m": 21.0}
PAPER_THROUGHPUT_V100 = {"tinyvit_5m": 3060, "tinyvit_11m": 2468, "tinyvit_21m": 1571}


def preset(name: str) -> ContractionFactors:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None


# ---------------------------------------------------------------------- measurement
def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers excluded; shared parameters counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def analytic_params(f: ContractionFactors, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Parameter count of ``f.build(num_classes, in_chans=in_chans)`` from closed-form layer
    sizes (no model built; the search's line search calls this often). ConvNorm = conv
    without bias + BatchNorm (2 per channel); LayerNorm = 2 per channel."""
    D, N, W = f.embed_dims, f.depths, f.window_sizes
    E, R, M = f.head_dim, f.mbconv_ratio, f.mlp_ratio
    h = D[0] // 2
    total = in_chans * h * 9 + 2 * h + h * D[0] * 9 + 2 * D[0]  # patch embed
    mid = int(D[0] * R)
    total += N[0] * (D[0] * mid + 2 * mid + 9 * mid + 2 * mid + mid * D[0] + 2 * D[0])  # MBConv
    for i in range(1, 4):
        c, prev, w = D[i], D[i - 1], W[i - 1]
        total += prev * c + 2 * c + 9 * c + 2 * c + c * c + 2 * c  # PatchMerging
        hid = int(c * M)
        block = (2 * c + 3 * c * c + 3 * c + c * c + c + (c // E) * w * w  # attention
                 + 9 * c + 2 * c  # local depthwise conv
                 + 2 * c + c * hid + hid + hid * c + c)  # norm + MLP
        total += N[i] * block
    return total + 2 * D[3] + D[3] * num_classes + num_classes  # head: norm + fc


def throughput(model: torch.nn.Module, img_size: int = 224, batch: int = 64,
               device="cpu", warmup: int = 2, repeats: int = 5, amp: bool = False,
               in_chans: Optional[int] = None, amp_dtype: torch.dtype = torch.float16) -> float:
    """Inference throughput in images/s: median over ``repeats`` timed forward passes of a
    random ``batch`` x C x ``img_size``² input, after ``warmup`` untimed passes, in eval mode
    under ``torch.inference_mode``. ``amp`` (CUDA only) runs under ``torch.autocast``.
    The model is moved to ``device`` and left in eval mode there.
    """
    for name, v, lo in (("img_size", img_size, 1), ("batch", batch, 1), ("warmup", warmup, 0),
                        ("repeats", repeats, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    device = torch.device(device)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, got {device}")
    if in_chans is None:
        in_chans = getattr(model, "in_chans", 3)
    model = model.to(device).eval()
    x = torch.randn(batch, in_chans, img_size, img_size, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)
