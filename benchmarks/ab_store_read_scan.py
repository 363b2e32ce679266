"""Same-session A/B of LogitStore.read and missing() across builds of tinyvit.

Each build is a checkout with its extension built in place (e.g. `git worktree add /tmp/base
main` + `setup.py build_ext --inplace` there). Rounds alternate the builds (order reversed every
other round), one fresh worker process per (round, build), so load bursts on a shared machine
hit every build alike. Reported per row: the median over rounds of each worker's median
records/CPU-s, and -- the figure to compare -- the median (and quartiles) over rounds of the
paired ratio build / first build within a round.
Rows: C = 21841, K in {10, 100}, fp16 and compact, random batched reads (B = 256, out=
preallocated) and the whole-epoch missing() scan of a fully written epoch; with --portable
also the read under the portable (scalar) ISA.

  python benchmarks/ab_store_read_scan.py --build before=/tmp/base --build after=. \
      --rounds 5 --out /tmp/ab_store.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

C = 21841
B = 256


def worker(root, records, inner, portable):
    sys.path.insert(0, os.path.abspath(root))
    import numpy as np
    import torch
    import tinyvit
    from tinyvit import LogitStore, _C

    assert os.path.abspath(tinyvit.__file__).startswith(os.path.abspath(root)), tinyvit.__file__
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    N = records // B * B
    out = {"isa": _C._store_isa(), "rows": {}}
    tmp = tempfile.mkdtemp()

    def cpu_rate(fn, n):
        rates = []
        for _ in range(inner):
            c = time.process_time()
            fn()
            rates.append(n / max(time.process_time() - c, 1e-9))
        rates.sort()
        return rates[len(rates) // 2] / 1e6

    for K in (10, 100):
        g = np.random.default_rng(K)
        base = g.integers(0, C, N)
        idx = torch.from_numpy((base[:, None] + np.arange(K)[None, :] * 211) % C)  # distinct
        w = 1.0 / np.arange(1, K + 1) ** 1.1
        probs = torch.from_numpy((w / w.sum() * g.uniform(0.6, 0.98, (N, 1))).astype(np.float32))
        seeds = torch.from_numpy(g.integers(0, 2 ** 32, N))
        qs = [torch.from_numpy(rng.integers(0, N, B)) for _ in range(200)]
        bufs = (torch.empty(B, dtype=torch.int64), torch.empty(B, K, dtype=torch.int64),
                torch.empty(B, K))
        for enc in ("fp16", "compact"):
            path = os.path.join(tmp, f"{enc}_{K}")
            s = LogitStore.create(path, N, C, K, aug_fingerprint="ab", value_encoding=enc)
            for j in range(0, N, 4096):
                sl = torch.arange(j, min(N, j + 4096))
                s.write(0, sl, seeds[sl], idx[sl], probs[sl])
            r = LogitStore.open(path, aug_fingerprint="ab")

            def rd():
                for q in qs:
                    r.read(0, q, out=bufs)
            rd()  # warm pages and lazy state
            assert r.missing(0).size == 0
            out["rows"][f"K={K} {enc} read"] = cpu_rate(rd, B * len(qs))
            out["rows"][f"K={K} {enc} missing() scan"] = cpu_rate(lambda: r.missing(0), N)
            if portable:
                _C._store_set_isa("portable")
                try:
                    out["rows"][f"K={K} {enc} read (portable ISA)"] = cpu_rate(rd, B * len(qs))
                finally:
                    _C._store_set_isa("auto")
            r.close()
            s.close()
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", default=[], metavar="NAME=PATH",
                    help="a checkout with the extension built in place (first = reference)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--inner", type=int, default=3, help="timed repeats inside each worker")
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--portable", action="store_true", help="also time the portable ISA read")
    ap.add_argument("--out", default=None)
    ap.add_argument("--what", default="", help="free text stored in the JSON")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.records, args.inner, args.portable)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from _common import finish_facts, machine_facts, median, write_json

    builds = [b.split("=", 1) for b in args.build]
    per = {name: [] for name, _ in builds}
    for r in range(args.rounds):
        for name, path in (builds if r % 2 == 0 else builds[::-1]):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", path, "--records",
                   str(args.records), "--inner", str(args.inner)] + (
                       ["--portable"] if args.portable else [])
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                            env=dict(os.environ, PYTHONPATH="")).stdout)
            per[name].append(res)
            print(f"round {r} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in res["rows"].items()),
                  flush=True)
    ref = builds[0][0]
    rows = list(per[ref][0]["rows"])
    meds = {name: {k: round(median([x["rows"][k] for x in per[name]]), 3) for k in rows}
            for name, _ in builds}
    def quartiles(xs):
        xs = sorted(xs)
        q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]
        return [round(q(0.25), 3), round(median(xs), 3), round(q(0.75), 3)]
    paired = {name: {k: quartiles([per[name][r]["rows"][k] / per[ref][r]["rows"][k]
                                   for r in range(args.rounds)]) for k in rows}
              for name, _ in builds if name != ref}
    result = {"what": args.what, "unit": "M records per CPU-second, single thread, median over "
              "rounds of the per-worker median", "C": C, "B": B, "records": args.records,
              "rounds": args.rounds, "inner": args.inner,
              "builds": {name: {"path": path, "isa": per[name][0]["isa"]} for name, path in builds},
              "medians": meds,
              "paired_ratio_vs_" + ref + "_q25_median_q75": paired,
              "all_rounds": {name: [x["rows"] for x in per[name]] for name, _ in builds}}
    print(f"{'row':<36s}" + "".join(f"{name:>16s}" for name, _ in builds) +
          "".join(f"{name + '/' + ref:>24s}" for name, _ in builds if name != ref))
    for k in rows:
        print(f"{k:<36s}" + "".join(f"{meds[name][k]:16.2f}" for name, _ in builds) +
              "".join(f"{paired[name][k][1]:10.2f} [{paired[name][k][0]:.2f}-{paired[name][k][2]:.2f}]"
                      for name, _ in builds if name != ref))
    if args.out:
        result["machine"] = finish_facts(machine_facts("cpu"))
        write_json(args.out, result)
        print("wrote", args.out)


if __name__ == "__main__":
    main()
