"""make_plan, AugConfig and pairing: statistics against their definitions, determinism,
fingerprints, RandAugment parsing (vs timm), argument errors."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinyvit
import tinyvit.augment.rng
import tinyvit.augment.plan
from tinyvit import AugConfig
from tinyvit.augment.plan import make_plan
from tinyvit.augment.config import parse_rand_augment

stats = pytest.importorskip("scipy.stats")

NO_MIX = dict(mixup_alpha=0.0, cutmix_alpha=0.0, re_prob=0.0)


def plans(cfg, n, size=(500, 375), start=0):
    return [make_plan(s, size, cfg) for s in range(start, start + n)]


# ---------------------------------------------------------------- RandomResizedCrop
def test_crop_area_and_log_aspect_are_uniform_when_always_accepted():
    # scale max 0.7 on a square 4000 px image: every first attempt fits (w <= sqrt(0.7*4/3)
    # * 4000 < 4000), so area fraction ~ U(scale) and log aspect ~ U(log ratio) up to rounding
    cfg = AugConfig(scale=(0.08, 0.7), auto_augment=None, **NO_MIX)
    ps = plans(cfg, 4000, size=(4000, 4000))
    w = np.array([p["crop"][2] for p in ps], float)
    h = np.array([p["crop"][3] for p in ps], float)
    frac = w * h / 4000**2
    assert frac.min() >= 0.08 * 0.999 and frac.max() <= 0.7 * 1.001
    assert stats.kstest(frac, stats.uniform(0.08, 0.62).cdf).pvalue > 1e-3
    la = np.log(w / h)
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    assert la.min() >= lo - 1e-3 and la.max() <= hi + 1e-3
    assert stats.kstest(la, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def test_crop_matches_torchvision_distribution_with_retries():
    # 500x375 source with the full default scale: large crops are rejected and retried;
    # compare against torchvision's own get_params (independent RNG, same algorithm)
    tv = pytest.importorskip("torchvision.transforms")
    cfg = AugConfig(auto_augment=None, **NO_MIX)
    ps = plans(cfg, 3000)
    ours = np.array([p["crop"] for p in ps], float)  # x, y, w, h
    assert (ours[:, 0] >= 0).all() and (ours[:, 1] >= 0).all()
    assert (ours[:, 0] + ours[:, 2] <= 500).all() and (ours[:, 1] + ours[:, 3] <= 375).all()
    torch.manual_seed(0)
    img = torch.zeros(3, 375, 500)
    ref = np.array([tv.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3])
                    for _ in range(3000)], float)  # i, j, h, w
    for a, b in [(ours[:, 2] * ours[:, 3], ref[:, 3] * ref[:, 2]),
                 (ours[:, 2] / ours[:, 3], ref[:, 3] / ref[:, 2]),
                 (ours[:, 0] + ours[:, 2] / 2, ref[:, 1] + ref[:, 3] / 2)]:
        assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_crop_fallback_is_centre_crop_clamped_to_ratio():
    cfg = AugConfig(scale=(1.0, 1.0), auto_augment=None, **NO_MIX)
    for size, crop in [((1000, 100), (433, 0, 133, 100)), ((100, 1000), (0, 433, 100, 133)),
                       ((300, 300), (0, 0, 300, 300)), ((1, 1), (0, 0, 1, 1))]:
        assert make_plan(5, size, cfg)["crop"] == crop


def test_extreme_sizes_stay_inside():
    cfg = AugConfig(interpolation="random", color_jitter=0.4, re_prob=1.0, re_count=3)
    for size in [(1, 1), (1, 5000), (5000, 1), (2, 3), (65535, 7)]:
        for p in plans(cfg, 200, size=size):
            x, y, w, h = p["crop"]
            assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= size[0] and y + h <= size[1]


# ---------------------------------------------------------------- flip, interpolation
def test_flip_rate_and_random_interpolation():
    n = 20000
    cfg = AugConfig(hflip=0.3, interpolation="random", auto_augment=None, **NO_MIX)
    ps = plans(cfg, n)
    rate = np.mean([p["flip"] for p in ps])
    assert abs(rate - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)
    interp = [p["interpolation"] for p in ps]
    assert set(interp) == {"bilinear", "bicubic"}
    assert abs(interp.count("bicubic") / n - 0.5) < 5 * math.sqrt(0.25 / n)
    assert not any(p["flip"] for p in plans(AugConfig(hflip=0.0, **NO_MIX), 500))
    assert all(p["flip"] for p in plans(AugConfig(hflip=1.0, **NO_MIX), 500))


# ---------------------------------------------------------------- RandAugment
def _timm_level_args(name, m):
    aa = pytest.importorskip("timm.data.auto_augment")
    fn = aa.LEVEL_TO_ARG[name]
    if fn is None:
        return 0.0
    # signed ops negate at random inside timm: compare magnitudes
    return fn(m, {"translate_pct": 0.45})[0]


@pytest.mark.parametrize("spec", ["rand-m7-mstd0-p1.0-n4", "rand-m7-mstd0-p1.0-n4-inc1",
                                  "rand-m10-mstd0-p1-n4", "rand-m15-mmax20-mstd0-p1-n4-inc1",
                                  "rand-m0-mstd0-p1-n4"])
def test_ra_arguments_match_timm_level_functions(spec):
    ra = parse_rand_augment(spec)
    cfg = AugConfig(auto_augment=spec, interpolation="bilinear", **NO_MIX)
    m = min(ra.magnitude, ra.mmax)
    seen = {}
    for p in plans(cfg, 400):
        assert len(p["ra"]) == 4  # p=1: every chosen op applies
        for step in p["ra"]:
            seen.setdefault(step["op"], set()).add(step["arg"])
            assert step["resample"] == ("bilinear" if step["op"] in {
                "Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"} else None)
    assert set(seen) == set(ra.ops)
    for name, args in seen.items():
        arr = np.array(sorted(args))
        ref = _timm_level_args(name, m)
        if name.startswith("Translate"):
            ref *= 224
        if name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
            np.testing.assert_allclose(np.abs(arr), abs(ref), rtol=1e-6, err_msg=name)
            if ref != 0:
                assert len(arr) == 2 and arr[0] < 0 < arr[1], name  # both signs occur
        elif name.endswith("Increasing") and name not in ("PosterizeIncreasing",
                                                         "SolarizeIncreasing"):
            # timm: max(0.1, 1 + randomly_negated(m / 10 * 0.9)); both signs occur when m > 0
            level = m / 10 * 0.9
            cands = np.array([max(0.1, 1 - level), max(0.1, 1 + level)])
            assert np.abs(arr[:, None] - cands[None]).min(axis=1).max() < 1e-6, name
            assert len(arr) == (2 if m > 0 else 1), name
        else:
            np.testing.assert_allclose(arr, [ref], rtol=1e-6, err_msg=name)


def test_ra_op_frequencies_magnitude_noise_and_prob():
    n = 6000
    cfg = AugConfig(auto_augment="rand-m9-mstd0.5-inc1-n2-p1.0", **NO_MIX)
    ps = plans(cfg, n)
    ops = [s["op"] for p in ps for s in p["ra"]]
    assert len(ops) == 2 * n
    counts = np.array([ops.count(o) for o in tinyvit.augment.config.RAND_INCREASING_TRANSFORMS])
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform choice with replacement
    # Rotate |deg| / 3 is the clipped normal magnitude N(9, 0.5) on [0, 10]
    rot = np.array([s["arg"] for p in ps for s in p["ra"] if s["op"] == "Rotate"])
    mags = np.abs(rot) / 3.0
    ref = np.clip(np.random.default_rng(0).normal(9, 0.5, 200000), 0, 10)
    assert stats.ks_2samp(mags, ref).pvalue > 1e-3
    assert abs(np.mean(rot < 0) - 0.5) < 5 * math.sqrt(0.25 / len(rot))
    # p: each chosen op applies with probability p
    applied = sum(len(p["ra"]) for p in plans(AugConfig(auto_augment="rand-m9-p0.3", **NO_MIX), n))
    assert abs(applied / (2 * n) - 0.3) < 5 * math.sqrt(0.21 / (2 * n))
    # mstd > 100: magnitude ~ U(0, m)
    ps = plans(AugConfig(auto_augment="rand-m8-mstd101-p1", **NO_MIX), n)
    mags = np.array([abs(s["arg"]) / 3.0 for p in ps for s in p["ra"] if s["op"] == "Rotate"])
    assert stats.kstest(mags, stats.uniform(0, 8).cdf).pvalue > 1e-3


def test_ra_random_resample_for_geometric_ops():
    cfg = AugConfig(auto_augment="rand-m9-p1", interpolation="random", **NO_MIX)
    res = [s["resample"] for p in plans(cfg, 3000) for s in p["ra"]
           if s["op"] in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")]
    assert set(res) == {"bilinear", "bicubic"}
    assert abs(res.count("bicubic") / len(res) - 0.5) < 5 * math.sqrt(0.25 / len(res))


@pytest.mark.parametrize("spec", ["rand-m9-mstd0.5-inc1", "rand-m9-n3-mstd0.5", "rand-m5-p0.7",
                                  "rand-mstd101-m6", "rand-m12-mmax15-inc0", "rand"])
def test_ra_parse_matches_timm(spec):
    aa = pytest.importorskip("timm.data.auto_augment")
    ref = aa.rand_augment_transform(spec, {"translate_const": 100, "img_mean": (124, 116, 104)})
    ours = parse_rand_augment(spec)
    assert ours.num_ops == ref.num_layers
    assert list(ours.ops) == [op.name for op in ref.ops]
    op = ref.ops[0]
    assert ours.magnitude == op.magnitude and ours.prob == op.prob
    assert ours.mstd == op.magnitude_std
    assert ours.mmax == (op.magnitude_max or 10)


@pytest.mark.parametrize("spec,token", [
    ("rand-m9-foo", "foo"), ("rand-m9-x3", "x3"), ("rand-mq", "mq"), ("rand-m9.5", "m9.5"),
    ("augmix-m5", "augmix"), ("rand-tweights", "tweights"), ("rand-w0", "w0"),
    ("rand-m9-m8", "m8"), ("rand-inc2", "inc2"), ("rand-p1.5", "p1.5"), ("rand--m9", "''"),
    ("rand-mmax0", "mmax0"), ("rand-n99", "n99"), ("rand-mstd0.5x", "mstd0.5x"),
])
def test_ra_parse_errors_name_the_token(spec, token):
    with pytest.raises(ValueError, match=token.replace(".", r"\.")):
        parse_rand_augment(spec)
    with pytest.raises(ValueError, match=token.replace(".", r"\.")):
        AugConfig(auto_augment=spec)


# ---------------------------------------------------------------- erase, jitter, mix
def test_erase_rate_count_and_boxes_match_timm_distribution():
    n = 20000
    ps = plans(AugConfig(re_prob=0.25, mixup_alpha=0, cutmix_alpha=0, auto_augment=None), n)
    rate = np.mean([len(p["erase"]) > 0 for p in ps])
    assert abs(rate - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    ps = plans(AugConfig(re_prob=1.0, re_count=3, mixup_alpha=0, cutmix_alpha=0,
                         auto_augment=None), 3000)
    counts = np.array([len(p["erase"]) for p in ps])
    assert stats.chisquare(np.bincount(counts, minlength=4)[1:]).pvalue > 1e-3
    boxes = [e for p in ps for e in p["erase"]]
    for e in boxes:
        assert 0 <= e["x"] and e["x"] + e["w"] <= 224 and 0 <= e["y"] and e["y"] + e["h"] <= 224
        assert e["w"] < 224 and e["h"] < 224
    # single-box geometry vs timm's RandomErasing (const mode on ones -> zeros mark the box)
    re_mod = pytest.importorskip("timm.data.random_erasing")
    ps = plans(AugConfig(re_prob=1.0, mixup_alpha=0, cutmix_alpha=0, auto_augment=None), 2000)
    ours = np.array([(e["w"], e["h"], e["x"]) for p in ps for e in p["erase"]], float)
    eraser = re_mod.RandomErasing(1.0, mode="const", device="cpu")
    import random
    random.seed(0)
    ref = []
    for _ in range(2000):
        img = torch.ones(1, 224, 224)
        eraser(img)
        ys, xs = torch.nonzero(img[0] == 0, as_tuple=True)
        if len(ys):
            ref.append((int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1), int(xs.min())))
    ref = np.array(ref, float)
    for k, f in enumerate([lambda a: a[:, 0] * a[:, 1], lambda a: a[:, 1] / a[:, 0],
                           lambda a: a[:, 2]]):
        assert stats.ks_2samp(f(ours), f(ref)).pvalue > 1e-3, k


def test_color_jitter_ranges_and_order():
    ps = plans(AugConfig(color_jitter=(0.4, 0.3, 0.2, 0.1), **NO_MIX), 4000)
    j = {k: np.array([p["jitter"][k] for p in ps]) for k in ("brightness", "contrast",
                                                               "saturation", "hue")}
    for k, v in (("brightness", 0.4), ("contrast", 0.3), ("saturation", 0.2)):
        assert stats.kstest(j[k], stats.uniform(1 - v, 2 * v).cdf).pvalue > 1e-3
    assert stats.kstest(j["hue"], stats.uniform(-0.1, 0.2).cdf).pvalue > 1e-3
    orders = [tuple(p["jitter"]["order"]) for p in ps]
    assert all(sorted(o) == ["brightness", "contrast", "hue", "saturation"] for o in orders)
    assert len(set(orders)) == 24
    assert stats.chisquare(np.unique(orders, axis=0, return_counts=True)[1]).pvalue > 1e-3
    assert all(p["jitter"] is None for p in plans(AugConfig(**NO_MIX), 50))


def test_mix_rates_and_lambda_distribution():
    n = 20000
    cfg = AugConfig(mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=0.7, switch_prob=0.4,
                    re_prob=0.0, auto_augment=None)
    ps = plans(cfg, n)
    modes = [p["mix"] for p in ps]
    mixed = n - modes.count("none")
    assert abs(mixed / n - 0.7) < 5 * math.sqrt(0.21 / n)
    assert abs(modes.count("cutmix") / mixed - 0.4) < 5 * math.sqrt(0.24 / mixed)
    assert all(p["lam"] == 1.0 and p["cut_box"] is None for p in ps if p["mix"] == "none")
    lam = np.array([p["lam"] for p in ps if p["mix"] == "mixup"])
    a = 0.8
    assert abs(lam.mean() - 0.5) < 5 * math.sqrt(a * a / ((2 * a) ** 2 * (2 * a + 1)) / len(lam))
    assert abs(lam.var() - a * a / ((2 * a) ** 2 * (2 * a + 1))) < 0.006
    assert stats.kstest(lam, stats.beta(a, a).cdf).pvalue > 1e-3
    for p in ps:
        if p["mix"] == "cutmix":
            x0, y0, x1, y1 = p["cut_box"]
            assert 0 <= x0 <= x1 <= 224 and 0 <= y0 <= y1 <= 224
            assert p["lam"] == pytest.approx(1 - (x1 - x0) * (y1 - y0) / 224**2, abs=1e-6)
    # cutmix only: every mixed sample is cutmix; mixup only: every one mixup
    assert {p["mix"] for p in plans(AugConfig(mixup_alpha=0, cutmix_alpha=1.0), 200)} == {"cutmix"}
    assert {p["mix"] for p in plans(AugConfig(mixup_alpha=0.5, cutmix_alpha=0), 200)} == {"mixup"}


def test_cutmix_boxes_match_timm_distribution():
    # corrected lam and box geometry vs timm's cutmix_bbox_and_lam fed numpy's Beta(1, 1)
    mix = pytest.importorskip("timm.data.mixup")
    cfg = AugConfig(mixup_alpha=0, cutmix_alpha=1.0, re_prob=0, auto_augment=None)
    ours = np.array([p["cut_box"] + (p["lam"],) for p in plans(cfg, 3000)], float)
    np.random.seed(0)
    ref = []
    for _ in range(3000):
        (yl, yh, xl, xh), lam = mix.cutmix_bbox_and_lam((3, 224, 224), np.random.beta(1.0, 1.0))
        ref.append((xl, yl, xh, yh, lam))
    ref = np.array(ref, float)
    for k, f in enumerate([lambda a: a[:, 4], lambda a: a[:, 2] - a[:, 0],
                           lambda a: a[:, 1] + a[:, 3]]):
        assert stats.ks_2samp(f(ours), f(ref)).pvalue > 1e-3, k


# ---------------------------------------------------------------- determinism
_PROBE = """
import json, sys, tinyvit, tinyvit.augment.plan
cfg = tinyvit.AugConfig(interpolation='random', color_jitter=0.4, re_prob=0.7, re_count=3)
out = [tinyvit.augment.plan.make_plan(s, (640, 427), cfg) for s in range(0, 4000, 37)]
print(json.dumps({'plans': out, 'fp': cfg.fingerprint(),
                  'seeds': tinyvit.augment.seeds.sample_seeds(9, 2, list(range(50))).tolist(),
                  'partners': tinyvit.augment.seeds.mix_partners(3, list(range(101)), 101, 9).tolist()}))
"""


def test_determinism_across_calls_and_processes():
    cfg = AugConfig(interpolation="random", color_jitter=0.4, re_prob=0.7, re_count=3)
    here = [make_plan(s, (640, 427), cfg) for s in range(0, 4000, 37)]
    assert here == [make_plan(s, (640, 427), cfg) for s in range(0, 4000, 37)]
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True)
    other = json.loads(out.stdout)
    assert json.loads(json.dumps(here)) == other["plans"]
    assert other["fp"] == cfg.fingerprint()
    assert other["seeds"] == tinyvit.augment.seeds.sample_seeds(9, 2, list(range(50))).tolist()
    assert other["partners"] == tinyvit.augment.seeds.mix_partners(3, list(range(101)), 101, 9).tolist()
    # different seeds give different plans
    assert len({json.dumps(p) for p in here}) == len(here)


def _pack_plans_reference(plans):
    """Independent Python packing of make_plan dicts (the C++ packing is checked against it)."""
    n = len(plans)
    b = max((len(p["erase"]) for p in plans), default=0)
    out = dict(
        erase_boxes=np.zeros((n, b, 4), np.int32), erase_seeds=np.zeros((n, b), np.int64),
        erase_count=np.zeros(n, np.int32), mix=np.zeros(n, np.int8),
        lam=np.ones(n, np.float32), cut_box=np.zeros((n, 4), np.int32))
    modes = {"none": 0, "mixup": 1, "cutmix": 2}
    for i, p in enumerate(plans):
        out["erase_count"][i] = len(p["erase"])
        for k, e in enumerate(p["erase"]):
            out["erase_boxes"][i, k] = (e["x"], e["y"], e["w"], e["h"])
            out["erase_seeds"][i, k] = e["noise_seed"]
        out["mix"][i] = modes[p["mix"]]
        out["lam"][i] = p["lam"]
        if p["cut_box"] is not None:
            out["cut_box"][i] = p["cut_box"]
    return out


def test_device_params_match_plan_dicts():
    cfg = AugConfig(re_prob=0.8, re_count=3)
    seeds = list(range(100, 164))
    sizes = [(300 + s, 200 + 2 * s) for s in seeds]
    packed = tinyvit.augment.plan.plan_device_params(seeds, sizes, cfg)
    ref = _pack_plans_reference([make_plan(s, wh, cfg) for s, wh in zip(seeds, sizes)])
    assert packed.keys() == ref.keys()
    for k in packed:
        np.testing.assert_array_equal(packed[k], ref[k], err_msg=k)


# ---------------------------------------------------------------- fingerprint, config
VARIANTS = [
    dict(img_size=192), dict(img_size=(224, 256)), dict(interpolation="bilinear"),
    dict(interpolation="random"), dict(scale=(0.1, 1.0)), dict(ratio=(0.7, 4 / 3)),
    dict(hflip=0.4), dict(auto_augment="rand-m9-mstd0.5"), dict(auto_augment=None),
    dict(auto_augment="rand-m8-mstd0.5-inc1"), dict(auto_augment="rand-m9-mstd0.5-inc1-n3"),
    dict(auto_augment="rand-m9-mstd0.5-inc1-p0.6"), dict(auto_augment="rand-m9-mstd0.6-inc1"),
    dict(auto_augment="rand-m9-mstd0.5-inc1-mmax11"), dict(color_jitter=0.4),
    dict(color_jitter=(0.4, 0.4, 0.4, 0.1)), dict(re_prob=0.3), dict(re_mode="const"),
    dict(re_count=2), dict(mixup_alpha=0.5), dict(cutmix_alpha=0.5), dict(mix_prob=0.9),
    dict(switch_prob=0.6), dict(mean=(0.5, 0.5, 0.5)), dict(std=(0.5, 0.5, 0.5)),
]


def test_fingerprint_changes_with_every_field_and_is_stable():
    base = AugConfig().fingerprint()
    assert base.startswith(f"tv{tinyvit.augment.config.PLAN_FORMAT_VERSION}-")
    fps = [AugConfig(**v).fingerprint() for v in VARIANTS]
    assert base not in fps and len(set(fps)) == len(fps)
    covered = {k for v in VARIANTS for k in v}
    assert covered == {f.name for f in __import__("dataclasses").fields(AugConfig)}
    # equal configs (different spellings) agree
    assert AugConfig(hflip=1).fingerprint() == AugConfig(hflip=1.0).fingerprint()
    assert AugConfig(img_size=224).fingerprint() == AugConfig(img_size=(224, 224)).fingerprint()
    assert (AugConfig(auto_augment="rand-inc1-mstd0.5-m9").fingerprint() == base)
    assert AugConfig.from_dict(json.loads(json.dumps(AugConfig().to_dict()))) == AugConfig()
    code = "import tinyvit; print(tinyvit.AugConfig(re_count=2).fingerprint())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == AugConfig(re_count=2).fingerprint()


@pytest.mark.parametrize("kwargs,field", [
    (dict(img_size=0), "img_size"), (dict(img_size=(224,)), "img_size"),
    (dict(interpolation="lanczos"), "interpolation"), (dict(scale=(0.5, 0.1)), "scale"),
    (dict(scale=(0, 1)), "scale"), (dict(ratio=(-1, 2)), "ratio"), (dict(hflip=1.5), "hflip"),
    (dict(color_jitter=-0.1), "color_jitter"), (dict(color_jitter=(0.1, 0.1)), "color_jitter"),
    (dict(re_prob=2), "re_prob"), (dict(re_mode="noise"), "re_mode"), (dict(re_count=0), "re_count"),
    (dict(mixup_alpha=-1), "mixup_alpha"), (dict(cutmix_alpha=float("nan")), "cutmix_alpha"),
    (dict(mix_prob=-0.1), "mix_prob"), (dict(switch_prob=1.1), "switch_prob"),
    (dict(mean=(0.5, 0.5)), "mean"), (dict(std=(0.2, 0, 0.2)), "std"),
])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AugConfig(**kwargs)


def test_make_plan_argument_errors():
    cfg = AugConfig()
    with pytest.raises(ValueError, match="seed"):
        make_plan(-1, (10, 10), cfg)
    with pytest.raises(OverflowError, match="seed"):
        make_plan(2**32, (10, 10), cfg)
    with pytest.raises(ValueError, match="width"):
        make_plan(1, (0, 10), cfg)
    with pytest.raises(ValueError, match="height"):
        make_plan(1, (10, -3), cfg)
    with pytest.raises(TypeError, match="size"):
        make_plan(1, (10, 10, 3), cfg)
    with pytest.raises(TypeError, match="cfg"):
        make_plan(1, (10, 10), {"img_size": 224})
    assert make_plan(2**32 - 1, (10, 10), cfg)["src_size"] == (10, 10)
    assert make_plan(np.uint32(7), (np.int64(10), 10), cfg) == make_plan(7, (10, 10), cfg)


def test_cpp_config_roundtrip_and_pickle():
    import pickle
    cfg = AugConfig(color_jitter=(0.1, 0.2, 0.3, 0.05), re_count=4)
    from tinyvit.augment.config import cpp_config
    c = cpp_config(cfg)
    assert c is cpp_config(cfg) and cpp_config(c) is c  # cached; a built one passes through
    d = c.to_dict()
    assert d["re_max_count"] == 4 and d["cj_hue"] == 0.05 and d["fill"] == (124, 116, 104)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.to_dict() == d
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(KeyError, match="bogus"):
        tinyvit._C.AugConfig({**d, "bogus": 1})


# ---------------------------------------------------------------- seeds
def test_sample_seed_is_pcg32_stream_output():
    streams = tinyvit._C.PCG32_STREAMS
    g = tinyvit.augment.rng.PCG32((77 << 32) | 5, streams["seeds"])
    ref = [g.next_u32() for _ in range(300)]
    assert tinyvit.augment.seeds.sample_seeds(77, 5, np.arange(300)).tolist() == ref
    assert tinyvit.augment.seeds.sample_seed(77, 5, 299) == ref[299]
    assert tinyvit.augment.seeds.sample_seed(77, 6, 0) != ref[0]
    with pytest.raises(ValueError, match="index"):
        tinyvit.augment.seeds.sample_seed(1, 0, -1)
    with pytest.raises(OverflowError, match="epoch"):
        tinyvit.augment.seeds.sample_seed(1, 2**32, 0)
