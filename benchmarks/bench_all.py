"""`make bench`: rerun every benchmark whose JSON the README or docs cite, then re-render the
cited numbers (benchmarks/render_numbers.py). CPU only; one script after another, so they do
not compete for the two cores.

    python benchmarks/bench_all.py                       # full: rewrites benchmarks/results + docs
    python benchmarks/bench_all.py --ab-base /work/base  # also the A/B against a baseline checkout
    python benchmarks/bench_all.py --quick               # smoke run into build/bench-quick; docs untouched

A full run refuses to start from a csrc/ with uncommitted changes (the JSONs record the csrc/
tree they were measured on; write_json would refuse at the end of each script anyway).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _common import RESULTS, provenance  # noqa: E402


# The JSON each step writes into the results folder (tests/test_numbers.py: together they are
# every JSON a rendered block reads, so make bench regenerates all of them).
WRITES = {"bench_loader.py": "loader.json", "bench_ra_ops.py": "ra_ops.json", "bench_store.py": "store.json",
          "bench_loss.py": "loss_cpu.json", "bench_models.py": "models_cpu.json", "bench_scale.py": "scale.json",
          "experiment_fmnist.py": "experiment_fmnist.json", "ab_main.py": "ab_main.json"}


def plan(out: str, quick: bool, ab_base: str | None) -> list:
    """(script, full args, quick args); ``out`` is the results folder."""
    q = ["--quick"]
    steps = [
        ("bench_loader.py", ["--out", out], q + ["--out", out]),
        ("bench_ra_ops.py", ["--out", f"{out}/ra_ops.json"], ["--calls", "20", "--repeats", "2", "--out",
                                                              f"{out}/ra_ops.json"]),
        ("bench_store.py", ["--out", f"{out}/store.json"], q + ["--out", f"{out}/store.json"]),
        ("bench_loss.py", ["--threads", "1", "--out", f"{out}/loss_cpu.json"],
         q + ["--threads", "1", "--out", f"{out}/loss_cpu.json"]),
        ("bench_models.py", ["--no-cuda", "--out", out], q + ["--no-cuda", "--out", out]),
        # 200k files keeps make bench within its budget (1 M: several more minutes to build the
        # tree once); per-file costs and the 14.2 M extrapolation are in the JSON either way
        ("bench_scale.py", ["--files", "200000", "--out", f"{out}/scale.json"],
         ["--files", "20000", "--skip-store", "--out", f"{out}/scale.json"]),
        ("experiment_fmnist.py", ["--out", f"{out}/experiment_fmnist"], q + ["--out", f"{out}/experiment_fmnist"]),
    ]
    if ab_base:
        steps.append(("ab_main.py", ["--base", ab_base, "--out", f"{out}/ab_main.json"],
                      ["--base", ab_base, "--rounds", "1", "--out", f"{out}/ab_main.json"]))
    return [(s, qa if quick else fa) for s, fa, qa in steps]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes into --out; README/docs untouched")
    ap.add_argument("--ab-base", help="baseline checkout (with its built .so) for benchmarks/ab_main.py")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results; quick: "
                    "build/bench-quick)")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out or (os.path.join(ROOT, "build", "bench-quick") if args.quick else RESULTS))
    prov = provenance()
    if out == RESULTS and prov["csrc_dirty"] and os.environ.get("BENCH_ALLOW_DIRTY") != "1":
        print("make bench: csrc/ has uncommitted changes (git status -- csrc): commit them first", file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    print(f"bench: commit {prov['commit']}, csrc tree {prov['csrc_tree']} -> {out}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    took, t_all = [], time.perf_counter()
    for script, script_args in plan(out, args.quick, args.ab_base):
        print(f"== {script} {' '.join(script_args)}", flush=True)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, os.path.join(HERE, script), *script_args], cwd=ROOT, env=env)
        took.append((script, time.perf_counter() - t))
        if r.returncode != 0:
            print(f"make bench: {script} failed (exit {r.returncode}); nothing re-rendered", file=sys.stderr)
            return 1
    render = [sys.executable, os.path.join(HERE, "render_numbers.py"), "--results", out]
    if out != RESULTS:  # print only; a JSON this run did not write (ab_main) is the committed one
        render += ["--results", RESULTS, "--print"]
    r = subprocess.run(render, cwd=ROOT)
    for script, s in took:
        print(f"{script:24s} {s:7.1f} s")
    print(f"{'total':24s} {time.perf_counter() - t_all:7.1f} s")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
