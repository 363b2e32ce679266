"""The loader's CPU step per batch (``ReplayPipeline.cpu_batch``, before it
``_CpuBatches.__getitem__``: replay + the device part of the plan), on an ImageFolder of
JPEGs. Uses only that step, so the same script measured the code before and after the
single-plan change (checkouts older than the pipeline need the old name):

    PYTHONPATH=<checkout> python benchmarks/bench_single_plan.py --label before|after

"cold" = a fresh dataset object (ImageFolder's header-size cache empty: the first epoch),
"warm" = later passes. Interleaves nothing: run both checkouts back to back on an idle box
or report ratios. Prints a table and writes benchmarks/results/bench_single_plan[_LABEL].json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_folder(root, n, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "c0"), exist_ok=True)
    for i in range(n):
        w, h = int(rng.integers(300, 520)), int(rng.integers(240, 420))
        base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
        img.save(os.path.join(root, "c0", f"{i:05d}.jpg"), quality=90)


def one_pass(ds, cfg, batch, threads):
    from tinyvit.data.pipeline import ReplayPipeline

    pipe = ReplayPipeline(ds, cfg, 0)
    t, c = time.perf_counter(), time.process_time()
    for s in range(0, len(ds), batch):
        pipe.cpu_batch(0, list(range(s, min(len(ds), s + batch))), threads)
    return time.perf_counter() - t, time.process_time() - c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    import tinyvit
    from tinyvit.data.datasets import ImageFolder

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from _common import load_average

    cfg = tinyvit.AugConfig(img_size=224)  # timm/TinyViT defaults: RandAugment, erase, mix
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(tmp, args.images)
        cold, warm = [], []
        for _ in range(args.repeats):
            ds = ImageFolder(tmp)
            w, c = one_pass(ds, cfg, args.batch, args.threads)
            cold.append(c / args.images)
            w, c = one_pass(ds, cfg, args.batch, args.threads)
            warm.append(c / args.images)
    res = dict(label=args.label, images=args.images, batch=args.batch, threads=args.threads,
               repeats=args.repeats, load_average=load_average(),
               cold_cpu_us_per_image=statistics.median(cold) * 1e6,
               warm_cpu_us_per_image=statistics.median(warm) * 1e6,
               cold_img_per_cpu_s=1 / statistics.median(cold),
               warm_img_per_cpu_s=1 / statistics.median(warm))
    print(f"{'pass':6} {'CPU us/img':>11} {'img/CPU-s':>10}")
    for k in ("cold", "warm"):
        print(f"{k:6} {res[k + '_cpu_us_per_image']:11.0f} {res[k + '_img_per_cpu_s']:10.0f}")
    os.makedirs(args.out, exist_ok=True)
    name = "bench_single_plan" + (f"_{args.label}" if args.label else "") + ".json"
    with open(os.path.join(args.out, name), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
