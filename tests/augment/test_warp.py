"""The C++ affine warps (RandAugment rotate / shear / translate, csrc/core/pixels/warp.cpp) against
an independent numpy evaluation of the documented integer formula, on the shapes and
arguments that select each fast path: column maps (translate_x, shear_x: constant-weight
runs, clamped borders, fill), row maps (translate_y), general matrices (rotate, shear_y),
tiny / odd / non-square images, both filters, integer and fractional offsets, both signs."""
import math

import numpy as np
import pytest

from tinyvit import _C

FILL = (124, 116, 104)


def _q14(v):
    return np.trunc(v * 16384.0 + 16384.5).astype(np.int64) - 16384


def _weights(d, cubic):
    if not cubic:
        w1 = _q14(d)
        return [16384 - w1, w1]
    d2 = d * d
    d3 = d2 * d
    return [_q14(-d + 2 * d2 - d3), _q14(1 - 2 * d2 + d3), _q14(d + d2 - d3), _q14(d3 - d2)]


def reference_warp(img, a, cubic, fill=FILL):
    """Output (x, y) samples (a0 X + a1 Y + a2, a3 X + a4 Y + a5), X = x + .5, Y = y + .5;
    fill outside [0, w) x [0, h); taps clamped to the edge; per tap row r = sum p wx (Q14),
    (r + 64) >> 7, times wy, summed, >> 21, clamped."""
    h, w = img.shape[:2]
    Y, X = np.mgrid[0:h, 0:w].astype(np.float64)
    X += 0.5
    Y += 0.5
    with np.errstate(invalid="ignore", over="ignore"):
        xin = a[0] * X + a[1] * Y + a[2]
        yin = a[3] * X + a[4] * Y + a[5]
        inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
        xs = np.where(inside, xin - 0.5, 0.0)
        ys = np.where(inside, yin - 0.5, 0.0)
    fx, fy = np.floor(xs), np.floor(ys)
    x0, y0 = fx.astype(np.int64), fy.astype(np.int64)
    wx, wy = _weights(xs - fx, cubic), _weights(ys - fy, cubic)
    n = 4 if cubic else 2
    off = 1 if cubic else 0
    src = img.astype(np.int64)
    acc = np.zeros((h, w, 3), np.int64)
    for j in range(n):
        rows = np.clip(y0 - off + j, 0, h - 1)
        r = np.zeros((h, w, 3), np.int64)
        for k in range(n):
            cols = np.clip(x0 - off + k, 0, w - 1)
            r += src[rows, cols] * wx[k][..., None]
        acc += ((r + 64) >> 7) * wy[j][..., None]
    out = np.clip(acc >> 21, 0, 255).astype(np.uint8)
    out[~inside] = fill
    return out


def _sincos_deg(deg):  # det_sincos_deg (randaugment.cpp), the same double operations
    d = math.fmod(deg, 360.0)
    if d < 0:
        d += 360.0
    q = min(int(d / 90.0), 3)
    r = d - 90.0 * q
    swap = r > 45.0
    if swap:
        r = 90.0 - r
    x = r * (3.14159265358979323846 / 180.0)
    x2 = x * x
    sn = cs = 0.0
    ts, tc = x, 1.0
    for k in range(1, 10):
        sn += ts
        cs += tc
        ts = -ts * x2 / ((2.0 * k) * (2.0 * k + 1.0))
        tc = -tc * x2 / ((2.0 * k - 1.0) * (2.0 * k))
    if swap:
        sn, cs = cs, sn
    return [(sn, cs), (cs, -sn), (-sn, -cs), (-cs, sn)][q]


def _matrix(name, arg, w, h):
    arg = float(np.float32(arg))  # the plan stores op arguments as float32
    if name == "ShearX":
        return [1.0, arg, 0.0, 0.0, 1.0, 0.0]
    if name == "ShearY":
        return [1.0, 0.0, 0.0, arg, 1.0, 0.0]
    if name == "TranslateXRel":
        return [1.0, 0.0, arg, 0.0, 1.0, 0.0]
    if name == "TranslateYRel":
        return [1.0, 0.0, 0.0, 0.0, 1.0, arg]
    assert name == "Rotate"
    s, c = _sincos_deg(-math.fmod(arg, 360.0) % 360.0)
    r15 = lambda v: float(np.rint(v * 1e15) / 1e15)  # noqa: E731
    A, B, D, E = r15(c), r15(s), r15(-s), r15(c)
    cx, cy = w / 2.0, h / 2.0
    return [A, B, A * (-cx) + B * (-cy) + cx, D, E, D * (-cx) + E * (-cy) + cy]


SIZES = [(1, 1), (2, 3), (3, 2), (1, 9), (9, 1), (5, 7), (13, 31), (40, 23), (64, 64), (97, 160)]
ARGS = {
    "ShearX": [-0.9, -0.27, -0.013, 0.013, 0.27, 0.5, 3.0],
    "ShearY": [-0.9, -0.27, -0.013, 0.013, 0.27, 0.5, 3.0],
    "TranslateXRel": [-70.0, -4.6, -3.41, -1.0, -0.25, 0.25, 0.5, 1.0, 2.0, 3.7, 12.5, 40.3, 300.0],
    "TranslateYRel": [-70.0, -4.6, -1.0, -0.25, 0.5, 2.0, 3.7, 12.5, 40.3, 300.0],
    "Rotate": [-179.3, -61.0, -27.0, -1.3, 0.7, 27.5, 45.0, 89.9, 91.0, 135.2, 300.1],
}


@pytest.mark.parametrize("name", list(ARGS))
@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_warps_match_the_integer_formula(testimg, name, resample):
    bad = []
    for k, (h, w) in enumerate(SIZES):
        img = testimg.noise(h, w, k, flat_block=True)
        for arg in ARGS[name]:
            got = _C._ra_op(img, name, float(arg), resample, FILL)
            want = reference_warp(img, _matrix(name, arg, w, h), resample == "bicubic")
            if not np.array_equal(got, want):
                bad.append((h, w, arg, int((got != want).any(axis=2).sum())))
    assert not bad, bad


def test_column_map_runs_where_d_moves_by_an_ulp(testimg):
    # A shift whose x + .5 + t rounds differently across binades: d takes two values
    # along a row (0.3 and 0.30000000000000x), so runs must split there.
    img = testimg.noise(8, 300, 5, flat_block=True)
    for t in (40.3, -0.1, 0.7, 129.9):
        for rs in ("bilinear", "bicubic"):
            got = _C._ra_op(img, "TranslateXRel", t, rs, FILL)
            assert np.array_equal(got, reference_warp(img, _matrix("TranslateXRel", t, 300, 8), rs == "bicubic"))


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_shear_y_transposed_column_map(testimg, resample):
    # shear_y runs as a column map on the transposed image (8x8-pixel tile transpose plus
    # edge pixels): sizes around the tile size, both orientations, fill on both sides,
    # clamped rows, runs split by ulp-moving offsets, both signs.
    bad = []
    for k, (h, w) in enumerate([(8, 8), (7, 9), (9, 7), (16, 24), (24, 16), (17, 33), (33, 17),
                                (15, 1), (1, 15), (8, 1), (1, 8), (224, 224), (61, 130)]):
        img = testimg.noise(h, w, 100 + k, flat_block=True)
        for arg in (-3.0, -0.9, -0.3, -0.27, -0.05, -0.0001, 0.0001, 0.013, 0.1, 0.27, 1 / 3, 0.9, 2.5):
            got = _C._ra_op(img, "ShearY", float(arg), resample, FILL)
            want = reference_warp(img, _matrix("ShearY", arg, w, h), resample == "bicubic")
            if not np.array_equal(got, want):
                bad.append((h, w, arg, int((got != want).any(axis=2).sum())))
    assert not bad, bad


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_rotate_fast_groups_and_borders(testimg, resample):
    # Rotations run four pixels at a time: groups entirely inside with unclamped taps go
    # through the paired kernel, the others (fill, clamped taps near the borders, tap loads
    # near the end of the buffer: last rows, right edge) pixel by pixel; widths around the
    # group size and small angles (nearly every group fast, partial groups at row ends).
    bad = []
    for k, (h, w) in enumerate([(4, 4), (5, 6), (6, 5), (7, 13), (8, 9), (16, 17), (33, 8), (9, 40),
                                (50, 131), (131, 50), (224, 224)]):
        img = testimg.noise(h, w, 200 + k, flat_block=True)
        for arg in (-0.3, 0.3, 1.0, -2.5, 5.0, 27.0, -27.0, 44.9, 89.0, 170.0, -100.0):
            got = _C._ra_op(img, "Rotate", float(arg), resample, FILL)
            want = reference_warp(img, _matrix("Rotate", arg, w, h), resample == "bicubic")
            if not np.array_equal(got, want):
                bad.append((h, w, arg, int((got != want).any(axis=2).sum())))
    assert not bad, bad
