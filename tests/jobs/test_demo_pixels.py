"""The demo's pixels do not go through Pillow: the replayed training batch and the test images
are byte-identical in a process where every Pillow pixel entry point (and tinyvit's Pillow
backend) raises, so Pillow vs pillow-simd cannot change the demo's result."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tinyvit.data.datasets import FASHION_MNIST_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = r"""
import hashlib, sys
import torch
import tinyvit, tinyvit.augment.pil, tinyvit.augment.replay, tinyvit.jobs.evaluate
from PIL import Image
calls = []
if sys.argv[1] == "nopil":
    def poisoned(name):
        def f(*a, **k):
            calls.append(name)
            raise RuntimeError("Pillow used: " + name)
        return f
    for n in ("open", "fromarray", "frombuffer", "new"):
        setattr(Image, n, poisoned("Image." + n))
    for n in ("resize", "transform", "convert", "crop", "rotate", "transpose"):
        setattr(Image.Image, n, poisoned("Image.Image." + n))
    for mod in (tinyvit.augment.pil, tinyvit.augment.replay):
        for n in ("apply_plan_pil", "to_rgb"):  # (array_to_rgb is numpy only)
            if hasattr(mod, n):
                setattr(mod, n, poisoned(n))
from tinyvit.data.datasets import open_dataset
from tinyvit.data.loader import ReplayLoader
from tinyvit.jobs.recipes import demo_aug_config
from tinyvit.jobs.evaluate import eval_tensors
ds = open_dataset("fashion-mnist", "train", 64)
h = hashlib.sha256()
for x, labels, lam, partner in ReplayLoader(ds, demo_aug_config(28), base_seed=0, batch_size=32):
    h.update(x.numpy().tobytes()); h.update(lam.numpy().tobytes())
imgs, labels = eval_tensors(open_dataset("fashion-mnist", "test", 64), 28)
h.update(imgs.numpy().tobytes())
print(h.hexdigest(), len(calls))
"""


@pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
                    reason="dataset-fashion-mnist not installed")
def test_demo_pixel_path_is_pillow_free():
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    out = {}
    for mode in ("pil", "nopil"):
        r = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        out[mode] = r.stdout.split()
    assert out["nopil"][1] == "0"
    assert out["pil"][0] == out["nopil"][0]
