"""Open cost of a 1 M-entry image index: a mapping (the v1 reader) vs private memory (v2).

Issue 22: an index truncated while a process has it mapped kills the process with SIGBUS.
Either guard every access to the mapping (as the store guards its C++ copies) or read the
file into private memory. Every access to the index is a numpy view used from Python, which
no signal guard can cover, so the candidates measured here are:

  mmap              v1: map the file, numpy views (no checksum; SIGBUS on truncation)
  mmap+verify       the same plus the v2 checks (CRC-32 of every array + content checks)
                    over the mapping: what a guarded mapping would cost at open
  pread             v2 without the checks: pread into private memory
  pread+verify      v2 as shipped (tinyvit.data.index.ImageIndex)

Each is timed in a fresh process (page cache warm), --rounds times; the median is kept, and
the anonymous memory (RssAnon) the open added. A synthetic folder index (1000 classes,
paths like ImageNet's) is written with the library's writer. Prints a table and writes
benchmarks/results/index_open.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHILD = r"""
import mmap, os, sys, time, json
import numpy as np
sys.path.insert(0, sys.argv[3])
from tinyvit.data import index as ix

def anon():
    for ln in open('/proc/self/status'):
        if ln.startswith('RssAnon:'):
            return int(ln.split()[1]) * 1024
path, how = sys.argv[1], sys.argv[2]
a0 = anon()
t0 = time.perf_counter()
if how == 'pread+verify':
    idx = ix.ImageIndex(path); arrays = idx.arrays
else:
    import struct
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    hlen = struct.unpack('<Q', os.pread(fd, 16, 0)[8:16])[0]
    hd = json.loads(os.pread(fd, hlen, 16))
    layout = ix.check_header(hd, size, hlen)
    if how.startswith('mmap'):
        buf = np.frombuffer(mmap.mmap(fd, 0, access=mmap.ACCESS_READ), np.uint8)
    else:
        buf = np.empty(size, np.uint8); got = 0; mv = memoryview(buf)
        while got < size:
            got += os.preadv(fd, [mv[got:]], got)
    os.close(fd)
    arrays = {k: np.frombuffer(buf, dt, int(np.prod(sh)), off).reshape(sh)
              for k, (dt, sh, off, _) in layout.items()}
    if how.endswith('verify'):
        ix._verify(path, hd, arrays, layout)
t = time.perf_counter() - t0
print(json.dumps({'seconds': t, 'anon_bytes': anon() - a0}))
"""


def synth(path: str, n: int, classes: int = 1000) -> None:
    import numpy as np

    from tinyvit.data import index as ix

    per = n // classes
    names = [f"n{c:08d}" for c in range(classes)]
    rel = [f"{names[c]}/{names[c]}_{k:06d}.JPEG" for c in range(classes) for k in range(per)]
    blob, off = ix.pack_strings(rel)
    g = np.random.default_rng(0)
    m = len(rel)
    dblob, doff = ix.pack_strings([""] + names)
    arrays = {"path_blob": blob, "path_off": off, "size": g.integers(1000, 200000, m),
              "mtime": g.integers(0, 2 ** 60, m), "wh": g.integers(1, 4000, (m, 2)).astype(np.int32),
              "label": np.repeat(np.arange(classes), per).astype(np.int64),
              "dir_blob": dblob, "dir_off": doff, "dir_mtime": g.integers(0, 2 ** 60, classes + 1)}
    header = {"kind": "folder", "root": "/synthetic", "extensions": [".jpeg"], "count": m,
              "classes": names, "fingerprint": "if1-" + "0" * 32}
    ix.write_index(path, header, arrays)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "index_open.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "synthetic.tvi")
        synth(path, args.entries)
        size = os.path.getsize(path)
        rows = {}
        for how in ("mmap", "mmap+verify", "pread", "pread+verify"):
            runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, path, how, ROOT],
                                              check=True, capture_output=True, text=True).stdout)
                    for _ in range(args.rounds)]
            rows[how] = {"median_ms": round(1e3 * statistics.median(r["seconds"] for r in runs), 1),
                         "min_ms": round(1e3 * min(r["seconds"] for r in runs), 1),
                         "anon_bytes_per_entry": round(statistics.median(
                             r["anon_bytes"] for r in runs) / args.entries, 1)}
            print(f"{how:13s} {rows[how]['median_ms']:8.1f} ms (min {rows[how]['min_ms']:.1f})"
                  f"  anon {rows[how]['anon_bytes_per_entry']:6.1f} B/entry", flush=True)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    res = {"entries": args.entries, "file_bytes": size, "rounds": args.rounds, "commit": commit,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
           "load_avg": os.getloadavg(), "results": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
