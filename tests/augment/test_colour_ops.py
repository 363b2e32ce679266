"""The colour / pixel RandAugment ops on both of their code paths (SIMD and scalar, switched
by _C._ra_colour_simd) against independent numpy computations of the documented arithmetic:
Pillow's blend in C float (mul, then add, truncation; clipped when extrapolating), PIL's
fixed-point luma, the integer 3x3 smoothing kernel, AutoContrast's double map, Equalize's
integer LUT, and the solarize maps. Sizes include 1x1, 2x3 and odd widths so the SIMD loops'
tails, and Sharpness's borders, are covered; the blend is checked on all 256 x 256
(degenerate, value) pairs."""
import numpy as np
import pytest

from tinyvit import _C

SIZES = [(1, 1), (2, 3), (3, 2), (3, 3), (4, 5), (5, 7), (7, 13), (11, 3), (17, 33), (33, 17),
         (9, 64), (40, 41)]
ALPHAS = [-1e6, -2.5, -0.5, 0.0, 0.3, 0.5, 0.77, 1.0, 1.3, 1.81, 3.0, 100.0, 1e6]


@pytest.fixture(params=[True, False], ids=["simd", "scalar"])
def path(request):
    prev = _C._ra_colour_simd(request.param)
    yield request.param
    _C._ra_colour_simd(prev)


def op(a, name, arg=0.0):
    return _C._ra_op(np.ascontiguousarray(a), name, float(arg), "nearest")


def images(seed=0):
    """Noise, low-contrast noise, a flat image and one with constant/limited channels."""
    rng = np.random.default_rng(seed)
    for h, w in SIZES:
        yield rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        yield rng.integers(90, 150, (h, w, 3), dtype=np.uint8)
        yield np.full((h, w, 3), rng.integers(0, 256), np.uint8)
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a[..., 1] = a[..., 1] // 5 + 40
        a[..., 2] = 201
        yield a


def blend(deg, v, alpha):
    """Image.blend(degenerate, img, alpha) per sample, as Pillow's ImagingBlend."""
    alpha = np.float32(alpha)
    deg = np.asarray(deg, np.int64)
    v = np.asarray(v, np.int64)
    t = deg.astype(np.float32) + alpha * (v - deg).astype(np.float32)  # float32: mul, then add
    assert t.dtype == np.float32
    if not 0.0 <= alpha <= 1.0:
        t = np.clip(t, 0, 255)
    return np.trunc(t).astype(np.uint8)


def luma(a):
    a = a.astype(np.int64)
    return (a[..., 0] * 19595 + a[..., 1] * 38470 + a[..., 2] * 7471 + 0x8000) >> 16


def test_blend_all_pairs_via_contrast(path):
    # Contrast blends with the rounded mean luma: a grey ramp 0..255 in the first row and a
    # grey fill c elsewhere puts the ramp against a degenerate value near c, for every c.
    seen = set()
    for c in range(256):
        img = np.full((256, 256, 3), c, np.uint8)
        img[0, :, :] = np.arange(256, dtype=np.uint8)[:, None]
        deg = int(float(int(luma(img).sum())) / img.shape[0] / img.shape[1] + 0.5)
        seen.add(deg)
        for alpha in (-1.7, 0.0, 0.4, 0.999, 1.0, 1.81, 2.6):
            got = op(img, "Contrast", alpha)
            assert np.array_equal(got, blend(deg, img, alpha)), (c, deg, alpha)
    assert seen == set(range(256))


def test_color_against_numpy(path):
    for a in images(1):
        g = luma(a)[..., None]
        for alpha in ALPHAS:
            assert np.array_equal(op(a, "Color", alpha), blend(g, a, alpha)), (a.shape, alpha)


def luma_ties():
    """Every pixel whose luma sum is exactly half-way (low 16 bits 0x8000): rounding up."""
    g, b = np.mgrid[0:256, 0:256]
    out = []
    for r in range(256):
        s = r * 19595 + g * 38470 + b * 7471
        m = (s & 0xFFFF) == 0x8000
        out += [(r, gg, bb) for gg, bb in zip(g[m], b[m])]
    return np.array(out, np.uint8)


def test_luma_rounding_ties(path):
    ties = luma_ties()
    assert len(ties) > 200
    for w in (1, 7, 16, 29):  # several row widths put the ties in every SIMD lane
        n = len(ties) // w * w
        a = ties[:n].reshape(-1, w, 3)
        for alpha in (0.0, 0.5, 2.0):
            assert np.array_equal(op(a, "Color", alpha), blend(luma(a)[..., None], a, alpha))
        deg = int(float(int(luma(a).sum())) / (a.shape[0] * a.shape[1]) + 0.5)
        assert np.array_equal(op(a, "Contrast", 0.0), blend(deg, a, 0.0))


def test_contrast_and_brightness_against_numpy(path):
    for a in images(2):
        deg = int(float(int(luma(a).sum())) / (a.shape[0] * a.shape[1]) + 0.5)
        for alpha in ALPHAS:
            assert np.array_equal(op(a, "Contrast", alpha), blend(deg, a, alpha)), (a.shape, alpha)
            assert np.array_equal(op(a, "Brightness", alpha), blend(0, a, alpha)), (a.shape, alpha)


def smooth(a):
    """ImageFilter.SMOOTH ([1 1 1; 1 5 1; 1 1 1] / 13, rounded), borders copied."""
    a = a.astype(np.int64)
    out = a.copy()
    h, w = a.shape[:2]
    if h >= 3 and w >= 3:
        s = sum(a[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        s = s + 4 * a[1:-1, 1:-1]
        out[1:-1, 1:-1] = (2 * s + 13) // 26
    return out


def test_sharpness_against_numpy(path):
    for a in images(3):
        deg = smooth(a)
        for alpha in ALPHAS:
            got = op(a, "Sharpness", alpha)
            assert np.array_equal(got, blend(deg, a, alpha)), (a.shape, alpha)
            # borders blend with themselves: unchanged for any factor
            assert np.array_equal(got[0], a[0]) and np.array_equal(got[-1], a[-1])
            assert np.array_equal(got[:, 0], a[:, 0]) and np.array_equal(got[:, -1], a[:, -1])


def test_sharpness_extreme_neighbourhoods(path):
    # Smoothing sums at both ends of their range (0 and 13 * 255) and a checkerboard.
    for h, w in [(3, 3), (6, 40), (19, 23)]:
        y, x = np.mgrid[0:h, 0:w]
        for a in (np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 255, np.uint8),
                  (((x + y) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)):
            for alpha in (-1.0, 0.0, 0.5, 2.0):
                assert np.array_equal(op(a, "Sharpness", alpha), blend(smooth(a), a, alpha))


def test_autocontrast_against_numpy(path):
    for a in images(4):
        got = op(a, "AutoContrast")
        for c in range(3):
            ch = a[..., c].astype(np.int64)
            lo, hi = int(ch.min()), int(ch.max())
            if hi <= lo:
                assert np.array_equal(got[..., c], a[..., c])
                continue
            scale = 255.0 / (hi - lo)
            offset = -lo * scale
            exp = np.clip(np.trunc(ch.astype(np.float64) * scale + offset), 0, 255)
            assert np.array_equal(got[..., c], exp), (a.shape, c)


def test_equalize_against_numpy(path):
    for a in images(5):
        got = op(a, "Equalize")
        for c in range(3):
            ch = a[..., c].ravel()
            hist = np.bincount(ch, minlength=256)
            nz = hist[hist > 0]
            step = 0 if len(nz) <= 1 else (int(nz.sum()) - int(nz[-1])) // 255
            if step == 0:
                assert np.array_equal(got[..., c], a[..., c])
                continue
            cum = np.concatenate([[0], np.cumsum(hist)[:-1]])
            lut = np.minimum(255, (step // 2 + cum) // step)
            assert np.array_equal(got[..., c], lut[a[..., c]]), (a.shape, c)


def test_solarize_maps_against_numpy(path):
    for a in images(6):
        v = a.astype(np.int64)
        for t in (-3, 0, 0.5, 1, 26, 100.25, 127.5, 128, 254, 255, 255.5, 256, 300):
            assert np.array_equal(op(a, "Solarize", t), np.where(v < t, v, 255 - v)), (a.shape, t)
        for add in (-300, -99, -1, 0, 1, 37, 99, 254, 255, 300):
            exp = np.where(v < 128, np.clip(v + add, 0, 255), v)
            assert np.array_equal(op(a, "SolarizeAdd", add), exp), (a.shape, add)


def test_paths_agree_on_a_photo_sized_image(testimg):
    a = testimg.noise(224, 227, seed=7)
    a[50:120, 30:200] = 128  # flat block: smooth == value
    for name, arg in [("AutoContrast", 0), ("Equalize", 0), ("Solarize", 77), ("SolarizeAdd", 40),
                      ("Color", 1.81), ("Color", 0.2), ("Contrast", 1.81), ("Contrast", 0.6),
                      ("Brightness", 1.81), ("Sharpness", 1.81), ("Sharpness", 0.1)]:
        prev = _C._ra_colour_simd(True)
        try:
            fast = op(a, name, arg)
            _C._ra_colour_simd(False)
            slow = op(a, name, arg)
        finally:
            _C._ra_colour_simd(prev)
        assert np.array_equal(fast, slow), (name, arg)
