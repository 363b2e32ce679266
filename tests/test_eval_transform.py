"""The one eval transform (tinyvit/augment/eval.py) against timm's, numerically: the same pixels
as ``create_transform(**resolve_data_config(eval_config), is_training=False)`` on Pillow images,
for square and non-square sizes, each interpolation, several crop_pct and images smaller than
the crop; and ``tinyvit train``'s eval tensors are those pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvit
from tinyvit.augment.config import DEFAULT_CROP_PCT, AugConfig, eval_config
from tinyvit.augment.eval import EvalTransform, eval_geometry, eval_image, resolve_eval_config
from tinyvit.jobs.evaluate import eval_tensors

timm_data = pytest.importorskip("timm.data")

SIZES = [(16, 16), (24, 16), (16, 24), (224, 224), (160, 192)]
SOURCES = [(375, 500), (500, 375), (40, 30), (30, 40), (10, 7), (7, 10), (16, 16), (24, 16), (1, 1), (9, 301)]


def _timm(ecfg, uint8=False):
    dc = timm_data.resolve_data_config(ecfg)
    assert dc == {**ecfg, "input_size": tuple(ecfg["input_size"])}  # timm reads every key as given
    return timm_data.create_transform(**dc, is_training=False, use_prefetcher=uint8)


def _img(photo, h, w):
    from PIL import Image

    return photo.resize((w, h), Image.BICUBIC) if (h, w) != (photo.height, photo.width) else photo


def test_eval_config_is_timms_data_config():
    cfg = AugConfig(img_size=(24, 16), interpolation="random", mean=(0.5,) * 3, std=(0.25,) * 3)
    ecfg = cfg.eval_config()
    assert ecfg == eval_config(cfg) == {"input_size": (3, 24, 16), "interpolation": "bicubic",
                                        "mean": (0.5,) * 3, "std": (0.25,) * 3,
                                        "crop_pct": DEFAULT_CROP_PCT, "crop_mode": "center"}
    assert set(ecfg) == set(timm_data.resolve_data_config({"img_size": 8}))  # exactly timm's keys
    assert timm_data.resolve_data_config(ecfg) == ecfg
    assert AugConfig(interpolation="bilinear").eval_config(crop_pct=1)["crop_pct"] == 1.0
    assert tinyvit.eval_config(cfg) == ecfg and tinyvit.eval_config(cfg, 0.95)["crop_pct"] == 0.95


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
def test_same_pixels_as_timm_for_every_source_size(photo, size, interpolation):
    for crop_pct in (0.875, 1.0, 0.9):
        ecfg = AugConfig(img_size=size, interpolation=interpolation).eval_config(crop_pct)
        ref_u8, ref = _timm(ecfg, uint8=True), _timm(ecfg)
        ours = EvalTransform(ecfg)
        for h, w in SOURCES:
            img = _img(photo, h, w)
            want = ref_u8(img).permute(1, 2, 0).numpy()
            got = eval_image(img, ecfg)
            assert got.dtype == np.uint8 and got.shape == (*size, 3)
            assert np.array_equal(got, want), (size, interpolation, crop_pct, (h, w))
            # the normalised tensor: ToTensor + Normalize, the same float ops as torchvision
            torch.testing.assert_close(ours(img), ref(img), rtol=0, atol=1e-6)


def test_geometry_matches_timms_arithmetic():
    """Independent of Pillow: the resize size and crop offsets for many shapes, against the
    sizes timm's own transform produces (read back from torchvision's Resize / ResizeKeepRatio)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for _ in range(200):
        out = (int(rng.integers(8, 64)), int(rng.integers(8, 64)))
        src = (int(rng.integers(1, 200)), int(rng.integers(1, 200)))
        crop_pct = float(rng.choice([0.875, 0.9, 0.95, 1.0, 0.5]))
        ecfg = AugConfig(img_size=out).eval_config(crop_pct)
        resize = _timm(ecfg, uint8=True).transforms[0]
        (nh, nw), (top, left) = eval_geometry(src, ecfg)
        resized = resize(Image.new("RGB", (src[1], src[0])))
        assert (resized.height, resized.width) == (nh, nw), (out, src, crop_pct)
        assert top == int(round((nh - out[0]) / 2.0)) and left == int(round((nw - out[1]) / 2.0))
        assert 0 <= top <= nh - out[0] and 0 <= left <= nw - out[1]


def test_small_image_is_upsampled_like_timm_not_padded(photo):
    ecfg = AugConfig(img_size=32).eval_config()  # covers 36 x 36
    img = _img(photo, 12, 20)
    (nh, nw), _ = eval_geometry((12, 20), ecfg)
    assert (nh, nw) == (36, 60)
    assert np.array_equal(eval_image(img, ecfg), _timm(ecfg, uint8=True)(img).permute(1, 2, 0).numpy())


def test_sources_of_every_kind_give_the_same_pixels(photo, testimg, tmp_path):
    ecfg = AugConfig(img_size=(24, 32)).eval_config()
    img = _img(photo, 60, 50)
    want = eval_image(img, ecfg)
    png = testimg.encode(img, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(png)
    for src in (np.asarray(img), png, memoryview(png), str(path), path, img.convert("RGBA")):
        assert np.array_equal(eval_image(src, ecfg), want), type(src)
    grey = np.asarray(img.convert("L"))  # grey arrays: replicated to RGB, as training converts them
    assert np.array_equal(eval_image(grey, ecfg), _timm(ecfg, uint8=True)(img.convert("L").convert("RGB"))
                          .permute(1, 2, 0).numpy())


def test_no_resize_needed_means_no_pillow(monkeypatch):
    """An array already at the resize size (the demo: 28 x 28 Fashion-MNIST at 28, crop_pct 1)
    never touches Pillow, so Pillow vs pillow-simd cannot change the demo's evaluation."""
    from PIL import Image

    a = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    want = np.repeat(a[..., None], 3, axis=2)
    ref = _timm(resolve_eval_config(28), uint8=True)(Image.fromarray(a).convert("RGB")).permute(1, 2, 0).numpy()
    assert np.array_equal(want, ref)
    monkeypatch.setattr(Image, "fromarray", lambda *a, **k: pytest.fail("Pillow used"))
    assert np.array_equal(eval_image(a, 28), want)
    big = np.random.default_rng(2).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    # crop only (the resize size is the source size): numpy slicing, also Pillow-free
    ecfg = AugConfig(img_size=(40, 20)).eval_config(1.0)
    assert np.array_equal(eval_image(big, ecfg), big[:, 5:25])


def test_int_spec_is_the_whole_image_resized():
    ecfg = resolve_eval_config(32)
    assert ecfg["input_size"] == (3, 32, 32) and ecfg["crop_pct"] == 1.0 and ecfg["interpolation"] == "bicubic"
    assert resolve_eval_config(AugConfig(img_size=20)) == AugConfig(img_size=20).eval_config()


def test_train_eval_tensors_are_the_eval_transform(small_dataset):
    """What ``tinyvit train`` evaluates on (eval_tensors with cfg.eval_config()) is timm's eval
    transform of every image, non-square included; labels follow the indices."""
    from PIL import Image

    cfg = AugConfig(img_size=(16, 20), interpolation="bilinear")
    ref = _timm(cfg.eval_config(), uint8=True)
    idx = [3, 0, 17, 39]
    imgs, labels = eval_tensors(small_dataset, cfg.eval_config(), idx)
    assert imgs.shape == (4, 16, 20, 3) and imgs.dtype == torch.uint8
    for row, i in enumerate(idx):
        want = ref(Image.fromarray(small_dataset[i])).permute(1, 2, 0)
        assert torch.equal(imgs[row], want)
    assert labels.tolist() == [small_dataset.targets[i] for i in idx]
    assert torch.equal(eval_tensors(small_dataset, cfg, idx)[0], imgs)  # AugConfig -> its eval_config()


def test_eval_transform_of_a_store_source_and_lightning(small_dataset):
    cfg = AugConfig(img_size=(16, 20))
    tf = tinyvit.eval_transform(cfg)
    assert isinstance(tf, EvalTransform) and tf.config == cfg.eval_config()
    x = tf(small_dataset[0])
    assert x.shape == (3, 16, 20) and x.dtype == torch.float32
    import pickle

    assert torch.equal(pickle.loads(pickle.dumps(tf))(small_dataset[0]), x)  # DataLoader workers


@pytest.mark.parametrize("bad, match", [
    (dict(crop_pct=0), "crop_pct must be a number in \\(0, 1\\]"),
    (dict(crop_pct=1.5), "crop_pct must be a number in \\(0, 1\\]"),
    (dict(crop_pct=float("nan")), "crop_pct"),
    (dict(crop_pct=True), "crop_pct"),
    (dict(crop_mode="squash"), "crop_mode must be one of \\('center',\\)"),
])
def test_bad_eval_config_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        AugConfig().eval_config(**bad)


def test_bad_eval_spec_is_refused():
    good = AugConfig(img_size=16).eval_config()
    for spec, exc, match in [
        ({k: v for k, v in good.items() if k != "crop_pct"}, ValueError, "missing key.*crop_pct"),
        ({**good, "input_size": (16, 16)}, ValueError, "input_size"),
        ({**good, "interpolation": "random"}, ValueError, "interpolation"),
        ({**good, "crop_pct": 2}, ValueError, "crop_pct"),
        ({**good, "crop_mode": "border"}, ValueError, "crop_mode"),
        (0, ValueError, "size must be >= 1"),
        ("16", TypeError, "eval config must be"),
    ]:
        with pytest.raises(exc, match=match):
            eval_image(np.zeros((8, 8, 3), np.uint8), spec)
    with pytest.raises(ValueError, match="mean and std"):
        EvalTransform({k: v for k, v in good.items() if k != "mean"})
