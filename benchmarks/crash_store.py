"""Writer SIGKILL campaign on the logit store: nothing written is ever lost or accepted torn.

For each of several stores (fp16 / compact, uint16 / int32 indices), a writer process fills the
missing records of every epoch in random order and random batch sizes and is SIGKILLed at a
random instant, again and again; after every kill:

  exact missing()   missing(e) == {i : record i differs from the uninterrupted reference}
                    (the reference is the same store -- same store_id -- written without
                    interruption), so a resumed writer rewrites exactly what is not there
  read-back         every record not in missing() reads back, equal to the reference record
                    byte for byte; every record in missing() is refused by read()
Finally the writer runs to completion and the epoch files must be bit-identical to the
reference. Prints the counts and writes benchmarks/results/crash_store.json (full: --kills 60).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ((1000, 10, "fp16"), (1000, 10, "compact"), (70000, 8, "fp16"), (70000, 8, "compact"))


def _content(e, samples, K, C):
    """Deterministic record content of (epoch, samples)."""
    import numpy as np
    seeds = np.empty(len(samples), np.int64)
    idx = np.empty((len(samples), K), np.int64)
    pr = np.empty((len(samples), K), np.float32)
    for j, s in enumerate(samples):
        g = np.random.default_rng(int(e) * 1_000_003 + int(s))
        seeds[j] = g.integers(0, 2 ** 32)
        idx[j] = g.choice(C, K, replace=False)
        pr[j] = -np.sort(-g.dirichlet(np.ones(K + 1))[:K].astype(np.float32))
    return seeds, idx, pr


def _fill(path, epochs, K, C, rng_seed, contents):
    """The writer: missing records of every epoch, random order and batch sizes."""
    import numpy as np
    from tinyvit import LogitStore
    st = LogitStore.open(path, mode="r+")
    g = np.random.default_rng(rng_seed)
    for e in range(epochs):
        todo = g.permutation(st.missing(e))
        seeds, idx, pr = contents[e]
        j = 0
        while j < len(todo):
            q = np.sort(todo[j:j + int(g.integers(1, 200))]) if g.random() < 0.5 else \
                todo[j:j + int(g.integers(1, 200))]
            st.write(e, q, seeds[q], idx[q], pr[q])
            j += len(q)
    st.close()


def run(kills=60, stores=None, num_samples=20000, epochs=2, base=None, log=print):
    sys.path.insert(0, ROOT)
    import numpy as np
    from tinyvit import LogitStore
    from tinyvit.errors import StoreError
    own = base is None
    base = base or tempfile.mkdtemp(prefix="tv_crash_")
    configs = list(CONFIGS) * 8
    stores = stores or max(1, min(len(configs), (kills + 5) // 6))
    per_store = [kills // stores + (i < kills % stores) for i in range(stores)]
    counts = {"kills": 0, "kills_mid_run": 0, "missing_mismatch": 0, "readback_mismatch": 0,
              "missing_not_refused": 0, "untyped": 0, "store_error_after_kill": 0, "final_not_identical": 0,
              "records_checked": 0}
    examples = []
    t0 = time.time()
    rng = random.Random(0)
    for si in range(stores):
        C, K, enc = configs[si]
        d = os.path.join(base, f"s{si}")
        ref = os.path.join(base, f"r{si}")
        N = num_samples
        LogitStore.create(d, N, C, K, aug_fingerprint="crash", epochs=epochs,
                          value_encoding=enc).close()
        contents = [_content(e, np.arange(N), K, C) for e in range(epochs)]
        # Reference: the same store (same manifest, so same store_id) written uninterrupted.
        LogitStore.create(ref, N, C, K, aug_fingerprint="crash", epochs=epochs,
                          value_encoding=enc).close()
        shutil.copyfile(os.path.join(d, "manifest.json"), os.path.join(ref, "manifest.json"))
        _fill(ref, epochs, K, C, 12345, contents)
        R = LogitStore.open(ref).record_size
        refbytes = [open(os.path.join(ref, f"epoch_{e:05d}.bin"), "rb").read()
                    for e in range(epochs)]
        for k in range(per_store[si]):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _fill(d, epochs, K, C, rng.randrange(1 << 30), contents)
                except BaseException:  # noqa: BLE001
                    code = 3
                os._exit(code)
            time.sleep(rng.uniform(0.0, 0.12))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            counts["kills"] += 1
            counts["kills_mid_run"] += int(os.WIFSIGNALED(status))
            try:
                st = LogitStore.open(d, mode="r")
                for e in range(epochs):
                    miss = st.missing(e)
                    data = open(os.path.join(d, f"epoch_{e:05d}.bin"), "rb").read()
                    a = np.frombuffer(data, np.uint8).reshape(N, R)
                    b = np.frombuffer(refbytes[e], np.uint8).reshape(N, R)
                    differs = np.nonzero((a != b).any(1))[0]
                    if not np.array_equal(miss, differs):
                        counts["missing_mismatch"] += 1
                        examples.append(f"store {si} kill {k} epoch {e}: missing() has "
                                        f"{len(miss)}, {len(differs)} records differ")
                    have = np.setdiff1d(np.arange(N), miss)
                    counts["records_checked"] += N
                    if len(have):
                        sd, ix, pr = st.read(e, have)
                        rs, ri, rp = LogitStore.open(ref).read(e, have)
                        if not (np.array_equal(sd, rs) and np.array_equal(ix, ri)
                                and np.array_equal(pr, rp)):
                            counts["readback_mismatch"] += 1
                    for s in miss[:50]:
                        try:
                            st.read(e, [int(s)])
                            counts["missing_not_refused"] += 1
                        except StoreError:
                            pass
                st.close()
            except StoreError as ex:  # the killed writer must leave an openable store
                counts["store_error_after_kill"] += 1
                examples.append(f"store {si} kill {k}: {type(ex).__name__}: {ex}")
            except Exception as ex:  # noqa: BLE001
                counts["untyped"] += 1
                examples.append(f"store {si} kill {k}: {type(ex).__name__}: {ex}")
        _fill(d, epochs, K, C, 99, contents)  # resume to completion
        for e in range(epochs):
            if open(os.path.join(d, f"epoch_{e:05d}.bin"), "rb").read() != refbytes[e]:
                counts["final_not_identical"] += 1
        log(f"  store {si} ({enc}, C={C}, K={K}): {per_store[si]} kills, {counts}")
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(ref, ignore_errors=True)
    if own:
        shutil.rmtree(base, ignore_errors=True)
    return {"counts": counts, "stores": stores, "num_samples": num_samples, "epochs": epochs,
            "seconds": round(time.time() - t0, 1), "examples": examples[:20]}


BAD = ("missing_mismatch", "readback_mismatch", "missing_not_refused", "untyped",
       "store_error_after_kill", "final_not_identical")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "crash_store.json"))
    args = ap.parse_args(argv)
    from _common import cpu_model, load_average, provenance  # noqa: E402
    res = run(args.kills, num_samples=args.samples)
    res["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg": load_average(), **provenance()}
    for k, v in res["counts"].items():
        print(f"{k:22s} {v:8d}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {args.out}")
    return 0 if not any(res["counts"][k] for k in BAD) else 1


if __name__ == "__main__":
    sys.exit(main())
