"""Cold start at ImageNet-21k scale: dataset index build / reopen, private memory per
worker, tar shards vs folder replay throughput, and logit-store epoch open / scan.

    python benchmarks/bench_scale.py                 # 1 M tiny files (tree built once, reused)
    python benchmarks/bench_scale.py --files 200000  # quicker

The tree (``--dir``, default /tmp/tinyvit-scale) holds ``--files`` tiny JPEGs in 1000
class directories and the same images as webdataset tar shards; it is built once and
reused. Each timed reopen runs in a fresh process (what every rank and worker pays at
start). Numbers per file are extrapolated linearly to 14.2 M files (ImageNet-21k). The
store part creates a sparse 14.2 M-record epoch (K = 100) and times open / missing().
Prints a table and writes benchmarks/results/scale.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _common import machine_facts, write_json  # noqa: E402

IN21K = 14_200_000


def tiny_jpegs(k=64):
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(k):
        buf = io.BytesIO()
        w, h = 8 + i % 13, 8 + (i * 7) % 11
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(buf, "JPEG", quality=70)
        out.append(buf.getvalue())
    return out


def build_tree(d: str, n: int, classes: int = 1000) -> None:
    marker = os.path.join(d, f".complete-{n}")
    if os.path.exists(marker):
        return
    imgs = tiny_jpegs()
    t0 = time.perf_counter()
    per = -(-n // classes)
    k = 0
    for c in range(classes):
        cd = os.path.join(d, "folder", f"n{c:08d}")
        os.makedirs(cd, exist_ok=True)
        for j in range(per):
            if k >= n:
                break
            with open(os.path.join(cd, f"n{c:08d}_{j}.JPEG"), "wb") as f:
                f.write(imgs[k % len(imgs)])
            k += 1
    print(f"built {n} files in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    # the same images as shards of 10k samples (key.jpg + key.cls)
    sd = os.path.join(d, "shards")
    os.makedirs(sd, exist_ok=True)
    k = s = 0
    while k < n:
        with tarfile.open(os.path.join(sd, f"shard-{s:06d}.tar"), "w", format=tarfile.GNU_FORMAT) as tf:
            for _ in range(min(10000, n - k)):
                c, j = divmod(k, per)
                data = imgs[k % len(imgs)]
                for name, payload in ((f"n{c:08d}_{j}.jpg", data), (f"n{c:08d}_{j}.cls", str(c).encode())):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload))
                k += 1
        s += 1
    with open(os.path.join(sd, "count"), "w") as f:
        f.write(str(s))
    open(marker, "w").close()
    print(f"built tree + {s} shards in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import tinyvit
t_import = time.perf_counter() - t0

def anon():
    out = {}
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            k, v = line.split(':', 1)
            out[k] = int(v.split()[0]) * 1024
    return out

kind, spec, threads, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m0 = anon()
t0 = time.perf_counter()
ds = tinyvit.ImageFolder(spec, num_threads=threads, progress=False) if kind == 'folder' else \
     tinyvit.TarShards(spec, num_threads=threads, progress=False)
t_open = time.perf_counter() - t0
m1 = anon()
n = len(ds)
t0 = time.perf_counter()
fp = ds.fingerprint()
wh = ds.source_sizes(range(n))   # every size: free from the index
labels = ds.labels(range(n))
t_sizes = time.perf_counter() - t0
m2 = anon()
res = {"n": n, "import_s": t_import, "open_s": t_open, "sizes_all_s": t_sizes,
       "anon_open_bytes": m1["Anonymous"] - m0["Anonymous"],
       "anon_after_sizes_bytes": m2["Anonymous"] - m0["Anonymous"],
       "private_open_bytes": (m1["Private_Clean"] + m1["Private_Dirty"]) - (m0["Private_Clean"] + m0["Private_Dirty"])}
# forked workers (DataLoader's default start method): what each adds privately when it
# touches every entry of the index
r, w = os.pipe()
pids = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        a = anon()
        s = int(ds.sizes.sum()) + int(ds.targets.sum()) + int(ds.source_sizes(range(n)).sum())
        names = [ds.relpaths[i] if kind == 'folder' else ds.keys[i] for i in range(0, n, max(1, n // 10000))]
        src = [ds[i] for i in range(0, n, max(1, n // 1000))]
        b = anon()
        os.write(w, (json.dumps({"anon": b["Anonymous"] - a["Anonymous"],
                                 "private_dirty": b["Private_Dirty"] - a["Private_Dirty"]}) + "\n").encode())
        os._exit(0)
    pids.append(pid)
for p in pids:
    os.waitpid(p, 0)
os.close(w)
rows = [json.loads(l) for l in os.read(r, 1 << 20).decode().splitlines()]
res["worker_anon_bytes"] = max(x["anon"] for x in rows) if rows else None
res["worker_private_dirty_bytes"] = max(x["private_dirty"] for x in rows) if rows else None
res["index_file_bytes"] = os.path.getsize(ds.index_path)
print(json.dumps(res))
"""


def child(kind, spec, index_dir, threads=4, workers=2):
    env = dict(os.environ, PYTHONPATH=ROOT, TINYVIT_INDEX_DIR=index_dir, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _CHILD, kind, spec, str(threads), str(workers)],
                       capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"child failed: {r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def replay_throughput(d, n_img=512):
    """Replay img/s for the same ImageNet-sized JPEGs from a folder and from shards."""
    from PIL import Image

    import tinyvit

    src = os.path.join(d, "replay")
    if not os.path.exists(os.path.join(src, ".complete")):
        rng = np.random.default_rng(1)
        os.makedirs(os.path.join(src, "folder", "c0"), exist_ok=True)
        with tarfile.open(os.path.join(src, "shard-000000.tar"), "w") as tf:
            for i in range(n_img):
                # smooth content so the JPEGs have realistic size (~60-120 KB at 500x375)
                base = rng.integers(0, 256, (24, 32, 3), np.uint8)
                img = Image.fromarray(base).resize((500, 375), Image.BICUBIC)
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=90)
                data = buf.getvalue()
                with open(os.path.join(src, "folder", "c0", f"{i:05d}.jpg"), "wb") as f:
                    f.write(data)
                for name, payload in ((f"{i:05d}.jpg", data), (f"{i:05d}.cls", b"0")):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload))
        open(os.path.join(src, ".complete"), "w").close()
    cfg = tinyvit.AugConfig(img_size=224)
    folder = tinyvit.ImageFolder(os.path.join(src, "folder"))
    shards = tinyvit.TarShards(os.path.join(src, "shard-000000.tar"))
    res = {}
    for name, ds in (("folder", folder), ("shards", shards), ("folder_again", folder)):
        seeds = list(range(len(ds)))
        tinyvit.replay_batch([ds[i] for i in range(32)], seeds[:32], cfg, num_threads=2)  # warm
        t0 = time.perf_counter()
        for a in range(0, len(ds), 64):
            idx = range(a, min(len(ds), a + 64))
            tinyvit.replay_batch([ds[i] for i in idx], [seeds[i] for i in idx], cfg, num_threads=2)
        res[name + "_img_s"] = len(ds) / (time.perf_counter() - t0)
    return res


def attest_cost(d, reps=5):
    """ms to check a store's replay attestation for one epoch (what DistillLoader adds at
    open): 4 replays of the 500x375 JPEGs at 224 px."""
    import shutil

    import tinyvit
    from tinyvit.data.attest import check_replay, record_epoch

    folder = tinyvit.ImageFolder(os.path.join(d, "replay", "folder"))
    cfg = tinyvit.AugConfig(img_size=224)
    path = os.path.join(d, "attest-store")
    shutil.rmtree(path, ignore_errors=True)
    st = tinyvit.LogitStore.create(path, len(folder), 1000, 5, aug_fingerprint=cfg.fingerprint(),
                                   meta={"base_seed": 0}, epochs=1)
    record_epoch(st, folder, cfg, 0)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        check_replay(st, folder, cfg, epochs=[0])
        times.append(time.perf_counter() - t0)
    st.close()
    return {"check_ms_best": min(times) * 1e3, "check_ms_median": sorted(times)[reps // 2] * 1e3}


def store_at_scale(d, n=IN21K, k=100):
    import tinyvit

    path = os.path.join(d, "store")
    if not os.path.exists(os.path.join(path, "manifest.json")):
        tinyvit.LogitStore.create(path, n, 21841, k, aug_fingerprint="bench", epochs=1).close()
    t0 = time.perf_counter()
    st = tinyvit.LogitStore.open(path)
    st._epoch(0)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    miss = st.missing(0)
    t_scan = time.perf_counter() - t0
    res = {"num_samples": n, "topk": k, "epoch_file_bytes": st.nbytes // max(1, st.epochs),
           "disk_bytes": st.disk_usage(), "open_s": t_open, "missing_scan_s": t_scan,
           "missing": int(miss.size)}
    st.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/tinyvit-scale")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "scale.json"))
    args = ap.parse_args()
    d = os.path.join(args.dir, str(args.files))
    build_tree(d, args.files)
    n_shards = int(open(os.path.join(d, "shards", "count")).read())
    spec = os.path.join(d, "shards", "shard-{%06d..%06d}.tar" % (0, n_shards - 1))
    idx_dir = os.path.join(d, "index")
    res = {"machine": machine_facts("cpu", threads=args.threads), "files": args.files, "shards": n_shards,
           "threads": args.threads}
    for kind, where in (("folder", os.path.join(d, "folder")), ("tarshards", spec)):
        for f in os.listdir(idx_dir) if os.path.isdir(idx_dir) else []:
            if f.startswith(kind):
                os.unlink(os.path.join(idx_dir, f))
        cold = child("folder" if kind == "folder" else "shards", where, idx_dir, args.threads)
        warm = [child("folder" if kind == "folder" else "shards", where, idx_dir, args.threads)
                for _ in range(3)]
        best = min(warm, key=lambda r: r["open_s"])
        n = best["n"]
        res[kind] = {
            "build_s": cold["open_s"], "reopen_s": best["open_s"],
            "reopen_s_per_million": best["open_s"] / n * 1e6,
            "sizes_all_s": best["sizes_all_s"], "import_tinyvit_s": best["import_s"],
            "private_bytes_per_file_open": best["private_open_bytes"] / n,
            "anon_bytes_per_file_open": best["anon_open_bytes"] / n,
            "anon_bytes_per_file_after_all_sizes": best["anon_after_sizes_bytes"] / n,
            "worker_anon_bytes_per_file": best["worker_anon_bytes"] / n,
            "worker_private_dirty_bytes_per_file": best["worker_private_dirty_bytes"] / n,
            "index_file_bytes_per_file": best["index_file_bytes"] / n,
            "at_14.2M": {"build_s": cold["open_s"] / n * IN21K,
                         "reopen_s": best["open_s"] / n * IN21K,
                         "index_file_GB": best["index_file_bytes"] / n * IN21K / 1e9,
                         "worker_private_MB": max(0, best["worker_anon_bytes"]) / n * IN21K / 1e6},
        }
    res["replay"] = replay_throughput(args.dir)
    res["attest_open"] = attest_cost(args.dir)
    if not args.skip_store:
        res["store_14.2M"] = store_at_scale(args.dir)
    write_json(args.out, res, indent=1)  # machine facts, commit, csrc tree, end load
    print(f"{'':28s}{'folder':>14s}{'tar shards':>14s}")
    rows = [("build (cold) s", "build_s"), ("reopen s", "reopen_s"),
            ("reopen s / 1M files", "reopen_s_per_million"), ("source_sizes(all) s", "sizes_all_s"),
            ("private B/file (open)", "private_bytes_per_file_open"),
            ("worker anon B/file", "worker_anon_bytes_per_file"),
            ("index file B/file", "index_file_bytes_per_file")]
    for label, key in rows:
        print(f"{label:28s}{res['folder'][key]:14.3f}{res['tarshards'][key]:14.3f}")
    for label, key in (("build at 14.2M s", "build_s"), ("reopen at 14.2M s", "reopen_s")):
        print(f"{label:28s}{res['folder']['at_14.2M'][key]:14.1f}{res['tarshards']['at_14.2M'][key]:14.1f}")
    r = res["replay"]
    print(f"replay 224px img/s: folder {r['folder_img_s']:.0f} / shards {r['shards_img_s']:.0f} "
          f"/ folder again {r['folder_again_img_s']:.0f}")
    print(f"attestation check at open (1 epoch, 4 samples): {res['attest_open']['check_ms_best']:.1f} ms")
    if "store_14.2M" in res:
        s = res["store_14.2M"]
        print(f"store 14.2M x K=100: open {s['open_s'] * 1e3:.1f} ms, missing() scan "
              f"{s['missing_scan_s']:.2f} s (sparse epoch file {s['epoch_file_bytes'] / 2**30:.1f} GiB)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
