"""Same-session A/B of this checkout against a baseline checkout ("must not change the measured
speed"): replay (the `bench_loader --quick` image set, C++ path, one thread), the store read
(K = 100 fp16, `LogitStore.read(out=...)`, check + contract) and the loss (sparse soft CE
fwd + bwd, fp32, B = 256, C = 21841, K = 100).

    python benchmarks/ab_main.py --base /work/base            # 1 warm-up + 5 rounds, ~3.5 min on 2 cores
    python benchmarks/ab_main.py --base DIR --rounds 3 --out /tmp/ab.json

The baseline needs its own built extension (tinyvit/_C*.so). After one untimed warm-up run
of each, every round runs one fresh process per checkout, in alternating order (base first on
even rounds), with PYTHONPATH and sys.path[0] set to that checkout and the same measuring code
(this file) in both, so load from other jobs hits both sides of a round alike. Reported per
measure: each round's ratio current / base as a *speed* (> 1 = current faster; for times:
base ms / current ms) and their median. Writes benchmarks/results/ab_main.json (refused from a
dirty csrc/).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ------------------------------------------------------------------------ worker (one checkout)
def _median_cpu_rate(fn, units, repeats):
    rates = []
    for _ in range(repeats):
        c = time.process_time()
        fn()
        rates.append(units / max(time.process_time() - c, 1e-9))
    return statistics.median(rates)


def _replay(tinyvit, torch):
    sys.path.insert(1, HERE)  # after the checkout under test: tinyvit is already imported from it
    import bench_loader

    paths = bench_loader.make_dataset(os.path.join(ROOT, "benchmarks", "data", "imagenet_like"), 48)
    cfg = tinyvit.AugConfig(img_size=224, interpolation="bicubic", auto_augment=bench_loader.RA, re_prob=0.25)
    one = bench_loader.cpp_pass(paths, cfg, 1, 32)
    one()  # warm: page cache, pool, lazy tables
    return _median_cpu_rate(one, len(paths), 3)


def _store_read(tinyvit, torch, tmp):
    import numpy as np

    N, C, K, B = 40_000, 21841, 100, 256
    g = np.random.default_rng(100)
    idx = torch.from_numpy((g.integers(0, C, N)[:, None] + np.arange(K)[None, :] * 211) % C)
    w = 1.0 / np.arange(1, K + 1) ** 1.1
    probs = torch.from_numpy((w / w.sum() * g.uniform(0.6, 0.98, (N, 1))).astype(np.float32))
    seeds = torch.from_numpy(g.integers(0, 2 ** 32, N))
    s = tinyvit.LogitStore.create(os.path.join(tmp, "ab"), N, C, K, aug_fingerprint="ab")
    for j in range(0, N, 4096):
        sl = torch.arange(j, min(N, j + 4096))
        s.write(0, sl, seeds[sl], idx[sl], probs[sl])
    r = tinyvit.LogitStore.open(os.path.join(tmp, "ab"), aug_fingerprint="ab")
    qs = [torch.from_numpy(g.integers(0, N, B)) for _ in range(200)]
    bufs = (torch.empty(B, dtype=torch.int64), torch.empty(B, K, dtype=torch.int64), torch.empty(B, K))

    def rd():
        for q in qs:
            r.read(0, q, out=bufs)
    rd()
    rate = _median_cpu_rate(rd, B * len(qs), 5) / 1e6
    r.close()
    s.close()
    return rate


def _loss(tinyvit, torch):
    g = torch.Generator().manual_seed(0)
    B, C, K = 256, 21841, 100
    logits = (torch.randn(B, C, generator=g) * 3).requires_grad_()
    idx = torch.stack([torch.randperm(C, generator=g)[:K] for _ in range(B)])
    probs = torch.softmax(torch.randn(B, K, generator=g), 1) * 0.9
    fn = tinyvit.loss.sparse_soft_cross_entropy

    def step():
        logits.grad = None
        fn(logits, idx, probs).backward()
    step()
    ms = []
    for _ in range(7):
        c = time.process_time()
        step()
        ms.append((time.process_time() - c) * 1e3)
    return statistics.median(ms)


def worker(root):
    import tempfile

    sys.path.insert(0, os.path.abspath(root))
    import torch
    import tinyvit
    import tinyvit.loss

    here = os.path.abspath(tinyvit.__file__)
    if not here.startswith(os.path.abspath(root) + os.sep):
        raise SystemExit(f"ab_main worker: imported {here}, not the checkout {root}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = {"replay img/CPU-s": _replay(tinyvit, torch), "store read M rec/CPU-s": _store_read(tinyvit, torch, tmp),
               "loss fwd+bwd CPU-ms": _loss(tinyvit, torch)}
    print(json.dumps(out))


# ------------------------------------------------------------------------------------ driver
UNITS = {"replay img/CPU-s": ("img / CPU-s", True), "store read M rec/CPU-s": ("M records / CPU-s", True),
         "loss fwd+bwd CPU-ms": ("CPU ms per step", False)}


def speed(measure, base, current):
    """current speed / base speed: > 1 means the current checkout is faster."""
    return current / base if UNITS[measure][1] else base / current


def run_side(root):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(root), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", root], env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"ab_main: worker for {root} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def checkout_facts(root):
    def git(*a):
        r = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    return {"path": os.path.abspath(root), "commit": git("rev-parse", "HEAD"),
            "csrc_tree": git("rev-parse", "HEAD:csrc")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="baseline checkout with its own built tinyvit/_C*.so")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ab_main.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if not args.base:
        ap.error("--base DIR is required")
    sys.path.insert(0, HERE)
    from _common import finish_facts, machine_facts, write_json

    facts = machine_facts("cpu", threads=1)
    sides = {"base": args.base, "current": ROOT}
    got = {m: {"base": [], "current": []} for m in UNITS}
    for side in ("base", "current"):  # untimed: page cache (JPEGs, .so, torch), first-run effects
        run_side(sides[side])
    for r in range(args.rounds):
        for side in (("base", "current") if r % 2 == 0 else ("current", "base")):
            for m, v in run_side(sides[side]).items():
                got[m][side].append(v)
        print(f"round {r + 1}/{args.rounds}, speed current/base: " + ", ".join(
            f"{m} {speed(m, got[m]['base'][-1], got[m]['current'][-1]):.3f}" for m in UNITS), flush=True)
    measures = {}
    for m, (unit, higher_better) in UNITS.items():
        b, c = got[m]["base"], got[m]["current"]
        rs = [speed(m, bi, ci) for bi, ci in zip(b, c)]
        measures[m] = {"unit": unit, "higher_is_better": higher_better, "base": b, "current": c, "ratios": rs,
                       "median_ratio": statistics.median(rs)}
        print(f"{m:26s} base {statistics.median(b):10.3f}  current {statistics.median(c):10.3f}  "
              f"speed ratio current/base: median {statistics.median(rs):.3f} ({min(rs):.3f}-{max(rs):.3f})")
    out = {"benchmark": "ab_main", "rounds": args.rounds, "ratio": "current speed / base speed, per round",
           "base": checkout_facts(args.base), "current": checkout_facts(ROOT), "measures": measures,
           "machine": finish_facts(facts)}
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
