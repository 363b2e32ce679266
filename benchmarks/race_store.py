"""Rewrite-vs-read race on the logit store: 0 mixed records may ever be accepted.

A writer process rewrites a set of samples back and forth between two versions A and B (every
field differs between them) while this process reads the same samples in batches. Every record
that read() accepts must equal version A or version B of that sample exactly; a record that is
caught mid-rewrite must be refused (ChecksumError), never returned as a mix (e.g. the seed of
one version and the indices of the other). Before the fix (verify on the shared mapping, then
decode by reading the mapping again) one such run returned 49 mixed records in 2.84 M reads.

Prints the counts and writes benchmarks/results/race_store.json. Full run: --reads 2000000.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _versions(S, K, C, g):
    import numpy as np
    out = []
    for v in range(2):
        seeds = g.integers(0, 2 ** 32, S)
        idx = np.stack([g.choice(C, K, replace=False) for _ in range(S)])
        pr = -np.sort(-g.dirichlet(np.ones(K + 1), size=S)[:, :K].astype(np.float32), axis=1)
        out.append((seeds, idx, pr))
    # Every field differs between the versions, so a mix of them is always detectable.
    out[1][0][:] = out[0][0] ^ 1
    return out


def run(reads=2_000_000, seconds=240.0, samples=64, K=100, C=21841, value_encoding="fp16",
        batch=16, base=None, log=print):
    sys.path.insert(0, ROOT)
    import numpy as np
    import torch
    from tinyvit import LogitStore
    from tinyvit.errors import ChecksumError, StoreError
    own = base is None
    base = base or tempfile.mkdtemp(prefix="tv_race_", dir="/dev/shm" if os.path.isdir(
        "/dev/shm") else None)
    d = os.path.join(base, "store")
    g = np.random.default_rng(0)
    st = LogitStore.create(d, samples, C, K, aug_fingerprint="race", epochs=1,
                           value_encoding=value_encoding)
    ver = _versions(samples, K, C, g)
    s_all = np.arange(samples)
    dec = []
    for v in ver:  # decoded form of each version (compact is lossy: compare decoded values)
        st.write(0, s_all, *v)
        dec.append(st.read(0, s_all))
    st.close()
    pid = os.fork()
    if pid == 0:  # writer: rewrite A, B, A, ... until killed
        try:
            w = LogitStore.open(d, mode="r+")
            order = np.random.default_rng(1)
            k = 0
            while True:
                v = ver[k & 1]
                if k % 3 == 2:  # also per-sample rewrites in random order (many small pwrites)
                    perm = order.permutation(samples)
                    for j in range(0, samples, 8):
                        q = perm[j:j + 8]
                        w.write(0, q, v[0][q], v[1][q], v[2][q])
                else:
                    w.write(0, s_all, *v)
                k += 1
        finally:
            os._exit(0)
    r = LogitStore.open(d, mode="r")
    perm = np.random.default_rng(2)
    # numpy views of both decoded versions; outputs preallocated: the loop is read + compare.
    dn = [tuple(t.numpy() for t in v) for v in dec]
    out = (torch.empty(batch, dtype=torch.int64), torch.empty((batch, K), dtype=torch.int64),
           torch.empty((batch, K), dtype=torch.float32))
    on = tuple(t.numpy() for t in out)
    orders = [torch.from_numpy(perm.permutation(samples)[:batch].astype(np.int64))
              for _ in range(256)]
    accepted = refused = mixed = other = 0
    examples = []
    t0 = time.time()
    try:
        it = 0
        while accepted < reads and (it & 63 or time.time() - t0 < seconds):
            q = orders[it & 255]
            it += 1
            try:
                r.read(0, q, out=out)
            except ChecksumError:
                refused += 1  # torn copy detected: a correct, loud refusal
                continue
            except StoreError as ex:
                other += 1
                if len(examples) < 5:
                    examples.append(f"{type(ex).__name__}: {ex}")
                continue
            qn = q.numpy()
            sd, ix, pr = on
            ok = np.zeros(len(qn), dtype=bool)
            for a_sd, a_ix, a_pr in dn:
                ok |= (sd == a_sd[qn]) & (ix == a_ix[qn]).all(1) & (pr == a_pr[qn]).all(1)
            if not ok.all():
                bad = np.nonzero(~ok)[0]
                mixed += len(bad)
                j = int(bad[0])
                if len(examples) < 5:
                    examples.append(f"sample {int(qn[j])}: seed {int(sd[j])} (A "
                                    f"{int(dn[0][0][qn[j]])}, B {int(dn[1][0][qn[j]])}), "
                                    f"indices match A {bool((ix[j] == dn[0][1][qn[j]]).all())}"
                                    f", B {bool((ix[j] == dn[1][1][qn[j]]).all())}")
            accepted += len(q)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        r.close()
        if own:
            shutil.rmtree(base, ignore_errors=True)
    res = {"reads_accepted": accepted, "batches_refused_checksum": refused,
           "mixed_records_accepted": mixed, "other_errors": other, "samples": samples, "K": K,
           "C": C, "value_encoding": value_encoding, "batch": batch,
           "seconds": round(time.time() - t0, 1), "examples": examples}
    log(f"  {value_encoding}: {accepted} records accepted, {refused} batches refused "
        f"(checksum), {mixed} mixed, {other} other errors, {res['seconds']} s")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=2_000_000, help="records per encoding")
    ap.add_argument("--seconds", type=float, default=120.0, help="time limit per encoding")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "race_store.json"))
    args = ap.parse_args(argv)
    from _common import cpu_model, load_average, provenance  # noqa: E402
    runs = [run(args.reads, args.seconds, value_encoding=enc) for enc in ("fp16", "compact")]
    res = {"runs": runs, "reads_accepted": sum(r["reads_accepted"] for r in runs),
           "mixed_records_accepted": sum(r["mixed_records_accepted"] for r in runs),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg": load_average(), **provenance()}}
    print(f"{'encoding':9s} {'accepted':>10s} {'refused':>8s} {'mixed':>6s} {'seconds':>8s}")
    for r in runs:
        print(f"{r['value_encoding']:9s} {r['reads_accepted']:10d} "
              f"{r['batches_refused_checksum']:8d} {r['mixed_records_accepted']:6d} "
              f"{r['seconds']:8.1f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}")
    return 0 if res["mixed_records_accepted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
