"""AugConfig: every setting that decides the pixels a (seed, image) pair turns into.

The config is frozen and hashable; ``fingerprint()`` hashes every pixel-affecting field
(after normalisation, so ``hflip=1`` and ``hflip=1.0`` agree) together with the plan
format version, and the logit store refuses to replay seeds under another fingerprint.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import re
from typing import Optional, Tuple, Union

from .._ext import _C

PLAN_FORMAT_VERSION: int = int(_C.PLAN_FORMAT_VERSION)

# The name tables live in C++ (csrc/core/plan/names.h); these are views of them.
_INTERPOLATIONS: Tuple[str, ...] = tuple(_C.INTERPOLATIONS)
_ERASE_MODES: Tuple[str, ...] = tuple(_C.ERASE_MODES)

# timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS (timm/data/auto_augment.py).
RAND_TRANSFORMS: Tuple[str, ...] = tuple(_C.RAND_TRANSFORMS)
RAND_INCREASING_TRANSFORMS: Tuple[str, ...] = tuple(_C.RAND_INCREASING_TRANSFORMS)


@dataclasses.dataclass(frozen=True)
class RandAugmentSpec:
    """A parsed timm RandAugment string (``rand-m9-n2-mstd0.5-mmax10-inc1-p0.5``)."""

    magnitude: int = 10        # m: timm's default is _LEVEL_DENOM (10)
    num_ops: int = 2           # n
    mstd: float = 0.0          # magnitude noise std; inf (timm: mstd > 100) = uniform(0, m)
    mmax: int = 10             # magnitude clip upper bound
    increasing: bool = False   # inc: use the *Increasing op variants
    prob: float = 0.5          # p: probability each chosen op applies

    @property
    def ops(self) -> Tuple[str, ...]:
        return RAND_INCREASING_TRANSFORMS if self.increasing else RAND_TRANSFORMS


def parse_rand_augment(config_str: str) -> RandAugmentSpec:
    """Parse timm's RandAugment syntax with timm's defaults; ValueError names a bad token.

    Accepted sections after ``rand``: ``m<int>``, ``n<int>``, ``mstd<float>`` (> 100 means
    uniform sampling), ``mmax<int>``, ``inc<0|1>``, ``p<float>``. timm's transform-set
    selector ``t...`` (weighted choice incl. GaussianBlur/Desaturate) and its removed
    ``w...`` key are not supported. Unlike timm, unknown or repeated sections are errors
    rather than silently ignored.
    """
    if not isinstance(config_str, str):
        raise TypeError(f"auto_augment must be a str, got {type(config_str).__name__}")
    tokens = config_str.split("-")
    if tokens[0] != "rand":
        raise ValueError(
            f"auto_augment {config_str!r}: first token {tokens[0]!r} must be 'rand' "
            "(only timm's RandAugment is supported, not AutoAugment/AugMix)")
    values = {}
    seen = {}
    for tok in tokens[1:]:
        def bad(why: str) -> ValueError:
            return ValueError(f"auto_augment {config_str!r}: bad token {tok!r}: {why}")

        if tok.startswith("t"):
            raise bad("transform-set selection ('t...', weighted op choice) is not supported")
        if tok.startswith("w"):
            raise bad("the 'w' (op weights) section is not supported")
        match = re.fullmatch(r"([a-z]+)(\d.*)", tok)
        if match is None:
            raise bad("expected a key followed by a number, e.g. 'm9', 'mstd0.5'")
        key, val = match.groups()
        if key in seen:
            raise bad(f"repeats {seen[key]!r}")
        seen[key] = tok
        try:
            if key in ("m", "n", "mmax", "inc"):
                number = int(val)
            elif key in ("mstd", "p"):
                number = float(val)
            else:
                raise bad(f"unknown key {key!r} (known: m, n, mstd, mmax, inc, p)")
        except ValueError as exc:
            if "bad token" in str(exc):
                raise
            raise bad(f"{val!r} is not a valid number for {key!r}") from None
        if key == "mstd":
            if not math.isfinite(number):
                raise bad("mstd must be finite (use a value > 100 for uniform sampling)")
            number = math.inf if number > 100 else number
        if key == "inc" and number not in (0, 1):
            raise bad("inc must be 0 or 1")
        if key == "n" and number > 64:
            raise bad("n must be <= 64")
        if key == "mmax" and number == 0:
            raise bad("mmax must be > 0")
        if key == "p" and not 0.0 <= number <= 1.0:
            raise bad("p must be in [0, 1]")
        values[key] = number
    return RandAugmentSpec(
        magnitude=values.get("m", 10),
        num_ops=values.get("n", 2),
        mstd=float(values.get("mstd", 0.0)),
        mmax=values.get("mmax", 10),
        increasing=bool(values.get("inc", 0)),
        prob=float(values.get("p", 0.5)),
    )


def _pair(value, name: str, cast=float) -> tuple:
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"AugConfig.{name} must be a pair, got {value!r}") from None
    if len(items) != 2:
        raise ValueError(f"AugConfig.{name} must be a pair, got {value!r}")
    try:
        return tuple(cast(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"AugConfig.{name} must hold numbers, got {value!r}") from None


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"AugConfig.{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"AugConfig.{name} must be finite, got {value!r}")
    return v


def _prob(value, name: str) -> float:
    v = _number(value, name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"AugConfig.{name} must be a probability in [0, 1], got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class AugConfig:
    """Training augmentation recipe (defaults: TinyViT's ImageNet-21k pretraining recipe).

    Pipeline (timm's ``create_transform(is_training=True)`` then timm's Mixup 'elem'):
    RandomResizedCrop(img_size, scale, ratio, interpolation) -> horizontal flip(hflip) ->
    RandAugment(auto_augment) -> ColorJitter(color_jitter) -> normalize(mean, std) ->
    RandomErasing(re_prob, re_mode, re_count) -> Mixup/CutMix with the pair partner.

    img_size: int or (height, width) of the output.
    interpolation: 'bicubic' | 'bilinear' | 'nearest' | 'random' (random: bilinear or
        bicubic per sample, and per geometric RandAugment op, as timm).
    auto_augment: timm RandAugment string or None (see ``parse_rand_augment``).
    color_jitter: None, a float (brightness = contrast = saturation), or a 3/4-tuple
        (brightness, contrast, saturation[, hue]) with torchvision's meaning. Note timm
        drops colour jitter when auto_augment is set unless forced; here it applies
        whenever given.
    re_count: RandomErasing boxes per erased image are uniform in [1, re_count] (timm's
        max_count).
    """

    img_size: Union[int, Tuple[int, int]] = 224
    interpolation: str = "bicubic"
    scale: Tuple[float, float] = (0.08, 1.0)
    ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    hflip: float = 0.5
    auto_augment: Optional[str] = "rand-m9-mstd0.5-inc1"
    color_jitter: Optional[Union[float, Tuple[float, ...]]] = None
    re_prob: float = 0.25
    re_mode: str = "pixel"
    re_count: int = 1
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        size = self.img_size
        if isinstance(size, bool):
            raise ValueError(f"AugConfig.img_size must be an int or (height, width), got {size!r}")
        if isinstance(size, int) or (hasattr(size, "__index__") and not hasattr(size, "__len__")):
            size = (int(size), int(size))
        else:
            size = _pair(size, "img_size", cast=_int_exact("img_size"))
        if not all(1 <= s <= 65536 for s in size):
            raise ValueError(f"AugConfig.img_size must be in [1, 65536], got {self.img_size!r}")
        set_("img_size", size)

        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"AugConfig.interpolation must be one of {_INTERPOLATIONS}, "
                             f"got {self.interpolation!r}")
        scale = _pair(self.scale, "scale")
        if not (0.0 < scale[0] <= scale[1] and math.isfinite(scale[1])):
            raise ValueError(f"AugConfig.scale must satisfy 0 < min <= max, got {self.scale!r}")
        set_("scale", scale)
        ratio = _pair(self.ratio, "ratio")
        if not (0.0 < ratio[0] <= ratio[1] and math.isfinite(ratio[1])):
            raise ValueError(f"AugConfig.ratio must satisfy 0 < min <= max, got {self.ratio!r}")
        set_("ratio", ratio)
        set_("hflip", _prob(self.hflip, "hflip"))

        if self.auto_augment is not None:
            if self.auto_augment == "":
                set_("auto_augment", None)
            else:
                parse_rand_augment(self.auto_augment)

        cj = self.color_jitter
        if cj is not None:
            if isinstance(cj, (int, float)) and not isinstance(cj, bool):
                cj = (float(cj),) * 3
            else:
                try:
                    cj = tuple(float(v) for v in cj)
                except (TypeError, ValueError):
                    raise ValueError(f"AugConfig.color_jitter must be a number or a 3/4-tuple, "
                                     f"got {self.color_jitter!r}") from None
            if len(cj) not in (3, 4):
                raise ValueError(f"AugConfig.color_jitter must have 3 or 4 values, got {cj!r}")
            if len(cj) == 3:
                cj = cj + (0.0,)
            if not all(math.isfinite(v) and v >= 0 for v in cj) or cj[3] > 0.5:
                raise ValueError("AugConfig.color_jitter values must be >= 0 (hue <= 0.5), "
                                 f"got {self.color_jitter!r}")
            set_("color_jitter", None if not any(cj) else cj)

        set_("re_prob", _prob(self.re_prob, "re_prob"))
        if self.re_mode not in _ERASE_MODES:
            raise ValueError(f"AugConfig.re_mode must be one of {_ERASE_MODES}, got {self.re_mode!r}")
        if isinstance(self.re_count, bool) or not isinstance(self.re_count, int) \
                or not 1 <= self.re_count <= 1024:
            raise ValueError(f"AugConfig.re_count must be an int in [1, 1024], got {self.re_count!r}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            v = _number(getattr(self, name), name)
            if v < 0:
                raise ValueError(f"AugConfig.{name} must be >= 0, got {v!r}")
            set_(name, v)
        set_("mix_prob", _prob(self.mix_prob, "mix_prob"))
        set_("switch_prob", _prob(self.switch_prob, "switch_prob"))
        for name in ("mean", "std"):
            try:
                vals = tuple(float(v) for v in getattr(self, name))
            except (TypeError, ValueError):
                raise ValueError(f"AugConfig.{name} must be 3 numbers, got "
                                 f"{getattr(self, name)!r}") from None
            if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
                raise ValueError(f"AugConfig.{name} must be 3 finite numbers, got {vals!r}")
            if name == "std" and not all(v > 0 for v in vals):
                raise ValueError(f"AugConfig.std must be > 0, got {vals!r}")
            set_(name, vals)

    # ---- derived -------------------------------------------------------------------
    @property
    def mixing(self) -> bool:
        """Mixup or CutMix is on: every sample is mixed with its pair partner."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def height(self) -> int:
        return self.img_size[0]

    @property
    def width(self) -> int:
        return self.img_size[1]

    @property
    def rand_augment(self) -> Optional[RandAugmentSpec]:
        return parse_rand_augment(self.auto_augment) if self.auto_augment else None

    @property
    def fill(self) -> Tuple[int, int, int]:
        """Fill colour of geometric RandAugment ops: timm's img_mean, round(255 * mean)."""
        return tuple(min(255, round(255 * m)) for m in self.mean)

    def eval_config(self, crop_pct: float = None, crop_mode: str = "center") -> dict:
        """The evaluation transform matching this training config, as timm's data-config keys
        (module function :func:`eval_config`)."""
        return eval_config(self, crop_pct, crop_mode)

    def _cpp_fields(self) -> dict:
        """The flat field dict of the C++ AugConfig (csrc/core/plan/plan.h)."""
        ra = self.rand_augment
        cj = self.color_jitter or (0.0, 0.0, 0.0, 0.0)
        return dict(
            out_h=self.height, out_w=self.width, interpolation=self.interpolation,
            scale_min=self.scale[0], scale_max=self.scale[1],
            ratio_min=self.ratio[0], ratio_max=self.ratio[1], hflip=self.hflip,
            ra_enabled=ra is not None, ra_ops=list(ra.ops) if ra else list(RAND_TRANSFORMS),
            ra_num_ops=ra.num_ops if ra else 2, ra_magnitude=float(ra.magnitude) if ra else 10.0,
            ra_mstd=ra.mstd if ra else 0.0, ra_mmax=float(ra.mmax) if ra else 10.0,
            ra_prob=ra.prob if ra else 0.5,
            # timm passes the interpolation to RandAugment unless it is 'random'
            ra_interpolation=self.interpolation,
            fill=list(self.fill),
            cj_brightness=cj[0], cj_contrast=cj[1], cj_saturation=cj[2], cj_hue=cj[3],
            re_prob=self.re_prob, re_mode=self.re_mode, re_min_count=1,
            re_max_count=self.re_count, re_min_area=0.02, re_max_area=1.0 / 3.0,
            re_min_aspect=0.3, mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
            mix_prob=self.mix_prob, switch_prob=self.switch_prob,
        )

    def to_dict(self) -> dict:
        """Plain JSON-able dict; ``AugConfig.from_dict(cfg.to_dict()) == cfg``."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "AugConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"AugConfig.from_dict: unknown field(s) {unknown}")
        return cls(**d)

    def fingerprint(self) -> str:
        """Stable id of everything that affects pixels: 'tv<version>-' + 32 hex digits of
        sha256 over the canonical JSON of the resolved C++ fields, mean, std and the plan
        format version. Identical across processes and platforms; differs whenever any
        pixel-affecting setting differs (equivalent spellings, e.g. RandAugment sections
        in another order, give the same fingerprint)."""
        payload = dict(self._cpp_fields())
        payload["ra_mstd"] = repr(payload["ra_mstd"])  # inf is not valid JSON
        if not payload["ra_enabled"]:  # RA parameters are inert without RandAugment
            for k in ("ra_ops", "ra_num_ops", "ra_magnitude", "ra_mstd", "ra_mmax", "ra_prob"):
                payload.pop(k)
        payload["mean"] = list(self.mean)
        payload["std"] = list(self.std)
        payload["plan_format_version"] = PLAN_FORMAT_VERSION
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return f"tv{PLAN_FORMAT_VERSION}-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _int_exact(name: str):
    def cast(v):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise ValueError(f"AugConfig.{name} must hold integers, got {v!r}")
        return int(v)
    return cast


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def cpp_config(cfg) -> "_C.AugConfig":
    """The C++ ``_C.AugConfig`` behind ``cfg`` (a tinyvit.AugConfig, cached per config, or an
    already-built ``_C.AugConfig``): the one accessor every binding call goes through (C++
    takes it as ``const tinyvit::AugConfig&``). TypeError for anything else."""
    if isinstance(cfg, AugConfig):
        return _built(cfg)
    if isinstance(cfg, _C.AugConfig):
        return cfg
    raise TypeError(f"cfg must be a tinyvit.AugConfig, got {type(cfg).__name__}")


# ---- evaluation: the config of the one eval transform (tinyvit/augment/eval.py) --------------
DEFAULT_CROP_PCT = 0.875  # timm.data.DEFAULT_CROP_PCT: resize the short side to size / 0.875
EVAL_CROP_MODES = ("center",)  # timm's default crop mode, the one implemented (augment/eval.py)
EVAL_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")  # timm's names


def eval_config(cfg: AugConfig, crop_pct: float = None, crop_mode: str = "center") -> dict:
    """The evaluation transform matching training with ``cfg``, as the keys of timm's
    ``resolve_data_config``: ``input_size`` (3, H, W), ``interpolation`` (the training one;
    'random' -> 'bicubic', timm's eval default), ``mean``, ``std``, ``crop_pct`` (default
    0.875: resize the short side to size / crop_pct) and ``crop_mode`` ('center': centre crop
    to (H, W)). ``tinyvit train`` evaluates with it (tinyvit.augment.eval); so does
    ``timm.data.create_transform(**eval_config(cfg), is_training=False)``."""
    if not isinstance(cfg, AugConfig):
        raise TypeError(f"eval_config: cfg must be a tinyvit.AugConfig, got {type(cfg).__name__}")
    if crop_pct is None:
        crop_pct = DEFAULT_CROP_PCT
    # (0, 1]: the resized image always covers the crop (no padding); NaN fails the test
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, numbers.Real) or not 0 < crop_pct <= 1:
        raise ValueError(f"eval_config: crop_pct must be a number in (0, 1], got {crop_pct!r}")
    crop_pct = float(crop_pct)
    if crop_mode not in EVAL_CROP_MODES:
        raise ValueError(f"eval_config: crop_mode must be one of {EVAL_CROP_MODES}, got {crop_mode!r}")
    interp = "bicubic" if cfg.interpolation == "random" else cfg.interpolation
    return {"input_size": (3, cfg.height, cfg.width), "interpolation": interp,
            "mean": tuple(cfg.mean), "std": tuple(cfg.std), "crop_pct": crop_pct, "crop_mode": crop_mode}


@functools.lru_cache(maxsize=64)
def _built(cfg: AugConfig):
    return _C.AugConfig(cfg._cpp_fields())


__all__ = ["AugConfig", "RandAugmentSpec", "parse_rand_augment", "PLAN_FORMAT_VERSION", "eval_config",
           "DEFAULT_CROP_PCT",
           "RAND_TRANSFORMS", "RAND_INCREASING_TRANSFORMS"]
