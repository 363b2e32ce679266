"""Pixels are part of the store contract: a store written under fingerprint tvN-... holds
teacher outputs for exactly these augmented images. Any change to the C++ pixel path
(resize, RandAugment ops, flip) therefore needs a PLAN_FORMAT_VERSION bump, which changes
every fingerprint so old stores are refused instead of silently replayed wrong.

This test pins, per format version, a SHA-256 over C++ outputs on synthetic images made
from integer arithmetic only (no codec, no libm, no RNG library), so it fails exactly when
the pixel arithmetic changes: a speed-up must keep it passing; a deliberate change must
bump the version and add its digest here."""
import hashlib

import numpy as np
import pytest

import tinyvit
from tinyvit import _C

# PLAN_FORMAT_VERSION -> digest of _outputs(); a bump without a new entry fails loudly.
PINNED = {
    1: {"replay": "53d963312d9bff63fade308a9852a89e364f8513106fceda088f1c0dfe6e7538",
        "ops": "4d51232961b1fb3e268dc2b0a67fd4ee2acfa0c4fbb5996b2a674399ce51f4a4"},
}


def _image(w, h, k):
    """Smooth gradients + a blocky pattern + hashed noise, all integer arithmetic."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    out = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        grad = (x * (3 + c + k) + y * (5 - c)) // 4
        blocks = ((x // (7 + c)) ^ (y // (5 + k % 3))) * 37
        noise = ((x * 73856093) ^ (y * 19349663) ^ ((c + 7 * k) * 83492791)) >> 7
        out[..., c] = ((grad + blocks + (noise & 31)) & 0xFF).astype(np.uint8)
    return out


def _replay_outputs():
    cfg = tinyvit.AugConfig()  # RRC + flip + rand-m9-mstd0.5-inc1, bicubic
    cfg_bil = tinyvit.AugConfig(interpolation="bilinear", img_size=160)
    h = hashlib.sha256()
    sizes = [(500, 375), (375, 500), (300, 300), (180, 120), (640, 200)]
    for k, (w, hh) in enumerate(sizes):
        img = _image(w, hh, k)
        for seed in range(60):
            for c in (cfg, cfg_bil):
                h.update(tinyvit.replay(img, 1000 * k + seed, c, path="cpp").tobytes())
    return h.hexdigest()


def _op_outputs():
    h = hashlib.sha256()
    img = _image(224, 224, 3)
    rect = _image(200, 150, 4)
    for name in _C.RA_OPS:
        for arg in (-0.9, 0.25, 3.0, 27.5, 130.0):
            for rs in ("nearest", "bilinear", "bicubic"):
                for src in (img, rect):
                    try:
                        out = _C._ra_op(src, name, arg, rs)
                    except ValueError:
                        continue  # argument outside this op's domain: not a pixel
                    h.update(name.encode() + out.tobytes())
    return h.hexdigest()


def test_version_has_a_pinned_digest():
    assert tinyvit.augment.config.PLAN_FORMAT_VERSION in PINNED, (
        "PLAN_FORMAT_VERSION changed: add the new digests to PINNED")


def test_replay_pixels_pinned():
    want = PINNED[tinyvit.augment.config.PLAN_FORMAT_VERSION]["replay"]
    assert _replay_outputs() == want


def test_ra_op_pixels_pinned():
    want = PINNED[tinyvit.augment.config.PLAN_FORMAT_VERSION]["ops"]
    assert _op_outputs() == want
