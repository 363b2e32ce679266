"""Cost of each C++ RandAugment op on a 224x224 RGB image, and what RandAugment costs an
average image under a given policy (each op's cost weighted by how often the policy picks it).

Times are process-CPU microseconds per call (median of repeats, single thread; the ops take
turns repeat by repeat, so load from other jobs hits them alike) through the
test binding tinyvit._C._ra_op, which copies the image in and out: the "Invert" row (a
byte-wise NOT, essentially free) shows that fixed overhead, and the "net" column subtracts it.
Geometric ops run under both resampling filters RandAugment draws from (bilinear, bicubic).

    python benchmarks/bench_ra_ops.py                 # table + benchmarks/results/ra_ops.json
    python benchmarks/bench_ra_ops.py --calls 50 --repeats 3 --out /tmp/ra.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tinyvit  # noqa: E402
from tinyvit import _C  # noqa: E402
from _common import RESULTS, finish_facts, interleaved, machine_facts, median, write_json  # noqa: E402

# (op, argument at magnitude ~9 of 10, as rand-m9 would pass it)
OPS = [("AutoContrast", 0), ("Equalize", 0), ("Invert", 0), ("Rotate", 27.0),
       ("PosterizeIncreasing", 2), ("SolarizeIncreasing", 26), ("SolarizeAdd", 99),
       ("ColorIncreasing", 1.81), ("ContrastIncreasing", 1.81), ("BrightnessIncreasing", 1.81),
       ("SharpnessIncreasing", 1.81), ("ShearX", 0.27), ("ShearY", 0.27),
       ("TranslateXRel", 40.3), ("TranslateYRel", 40.3)]
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}


def photo(size=224):
    import skimage.data as sd
    from PIL import Image

    return np.ascontiguousarray(np.asarray(
        Image.fromarray(sd.astronaut()).resize((size, size), Image.BICUBIC)))


def op_calls(img, name, arg, rs, calls):
    """``calls`` calls of one op, as a callable to time."""
    def run():
        for _ in range(calls):
            _C._ra_op(img, name, arg, rs)
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="calls per timed repeat")
    ap.add_argument("--repeats", type=int, default=5, help="repeats (median is reported)")
    ap.add_argument("--size", type=int, default=224, help="square image side")
    ap.add_argument("--out", default=os.path.join(RESULTS, "ra_ops.json"))
    args = ap.parse_args(argv)

    img = photo(args.size)
    facts = machine_facts("cpu", build={k: v for k, v in tinyvit.build_info().items()
                                        if k in ("compiler", "jpeg_lib_version")})
    fns = {}
    for name, arg in OPS:
        for rs in (("bilinear", "bicubic") if name in GEOMETRIC else ("bicubic",)):
            fns[f"{name}/{rs}" if name in GEOMETRIC else name] = op_calls(img, name, arg, rs, args.calls)
    # warm-up round: thread-local buffers
    t = interleaved(fns, args.repeats, warmup=1)
    rows = {k: median(v["cpu"]) / args.calls * 1e6 for k, v in t.items()}
    overhead = rows["Invert"]
    # rand-m9-mstd0.5-inc1: 2 layers, each picks one of the 15 ops uniformly and applies it
    # with probability 0.5; geometric ops draw bilinear or bicubic with equal odds.
    per_op = {}
    for name, _ in OPS:
        keys = [k for k in rows if k == name or k.startswith(name + "/")]
        per_op[name] = statistics.mean(max(rows[k] - overhead, 0.0) for k in keys)
    expected = 2 * 0.5 / len(OPS) * sum(per_op.values())

    print(f"{'op':32s} {'us/call':>9s} {'net us':>9s}")
    for k, v in rows.items():
        print(f"{k:32s} {v:9.1f} {max(v - overhead, 0):9.1f}")
    print(f"expected RandAugment cost per image (rand-m9-mstd0.5-inc1): {expected:.1f} us")
    result = {
        "machine": finish_facts(facts),
        "image": f"{args.size}x{args.size} RGB (skimage astronaut)",
        "calls": args.calls, "repeats": args.repeats,
        "us_per_call": rows, "binding_overhead_us": overhead, "net_us_per_op": per_op,
        "expected_us_per_image_rand_m9_mstd0.5_inc1": expected,
    }
    write_json(args.out, result)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
