"""Adversarial campaign against the cached image index (tinyvit.data.index).

A small folder tree and two small tar shards are indexed once (pristine). Each case copies a
pristine index file, applies 1-2 mutations, and opens the dataset on it (``index=PATH``):

  header_json   the JSON header replaced: a JSON list, {}, garbage, non-UTF-8, truncated,
                nested 10^5 deep, a huge number
  header_field  a header field (top level, or inside an array's layout) deleted or given a
                value of another JSON type; half of them *resealed* (checksums recomputed), so
                the structure checks behind the checksum are what must refuse them
  array_bytes   bytes of an array overwritten (labels, paths, offsets, sizes, wh, ...)
  invariant     an array element set to a value that breaks an invariant (an offset past
                its blob, a label out of range, a negative size, a shard out of range), resealed
  checksum      a stored CRC (an array's or the header's) edited
  length        the u64 header length edited (0, huge, +-1)
  magic         a magic byte flipped
  truncate      the file truncated or extended
  while_open    the index truncated or rewritten in place *after* the dataset opened it and
                while a pickled copy is in flight (a mapped index died of SIGBUS here)
  not_a_file    the index path replaced by a FIFO or a directory

Verdict per case: ``same`` (the dataset equals the pristine one: length, classes, paths or
keys, labels, sizes, source_sizes, fingerprint, the bytes of every sample -- the index was
rebuilt or the edit was harmless), ``refused`` (a typed DatasetError naming the index), or
``wrong`` (a different dataset: a failure). Every case runs in ``benchmarks/_bounded.py``'s
worker (2 s, 256 MiB): a hang, crash (SIGBUS), over_time, over_memory or untyped exception
is a failure too. Prints the counts and writes benchmarks/results/fuzz_index.json; exits 1
on any failure. ``python benchmarks/fuzz_index.py --cases 3000``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import struct
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

KINDS = ("header_json", "header_field", "array_bytes", "invariant", "checksum", "length",
         "magic", "truncate", "while_open", "not_a_file")
_NASTY = [None, True, 0, -1, 1 << 63, 1e308, "", "x", "<i8", [], [1, "a"], {}, {"a": 1}]
_W = {}  # worker state: the pristine templates, made once per worker by setup()


# ---- pristine data ------------------------------------------------------------------------
def _jpeg(w, h, seed):
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def _make_folder(root):
    files = {"ant/a.jpg": (9, 7), "ant/sub/b.jpg": (5, 11), "bee/c.jpg": (8, 8),
             "bee/d.png": None, "cat/e.jpg": (13, 6), "cat/f/g.jpg": (7, 9)}
    for k, (rel, wh) in enumerate(files.items()):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if wh is None:  # a PNG the C++ header parser reads too; content fixed bytes
            from PIL import Image

            Image.new("RGB", (4, 3), (k, 2, 3)).save(p, "PNG")
        else:
            with open(p, "wb") as f:
                f.write(_jpeg(*wh, seed=k))


def _make_shards(d):
    out = []
    for s in range(2):
        p = os.path.join(d, f"shard-{s}.tar")
        with tarfile.open(p, "w", format=tarfile.USTAR_FORMAT) as t:
            for k in range(3):
                key = f"s{s}/k{k}"
                for ext, data in ((".jpg", _jpeg(6 + k, 5 + s, 10 * s + k)),
                                  (".cls", str((s + k) % 3).encode())):
                    info = tarfile.TarInfo(key + ext)
                    info.size, info.mtime = len(data), 0
                    t.addfile(info, io.BytesIO(data))
        out.append(p)
    return out


def _open(kind, path, validate="dirs"):
    from tinyvit.data.datasets import ImageFolder
    from tinyvit.data.tarshards import TarShards

    if kind == "folder":
        return ImageFolder(_W["folder"], index=path, validate=validate)
    return TarShards(_W["shards"], index=path)


def _view(ds) -> tuple:
    """Everything that says what a dataset *is* (equal views = the same dataset)."""
    import hashlib

    import numpy as np

    names = list(ds.relpaths) if hasattr(ds, "relpaths") else list(ds.keys)
    items = []
    for i in range(len(ds)):
        x = ds[i]
        items.append(x if isinstance(x, str) else hashlib.sha256(x).hexdigest())
    lab = None if ds.targets is None else ds.targets.tolist()
    return (len(ds), list(ds.classes), names, lab, np.asarray(ds.sizes).tolist(),
            ds.source_sizes(np.arange(len(ds))).tolist(), ds.fingerprint(), items)


def setup() -> None:
    """Worker setup: build the pristine tree, shards and their index files."""
    base = tempfile.mkdtemp(prefix="fuzz-index-")
    os.environ["TINYVIT_INDEX_DIR"] = os.path.join(base, "cache")
    _W["base"] = base
    _W["folder"] = os.path.join(base, "tree")
    _make_folder(_W["folder"])
    os.makedirs(os.path.join(base, "shards"))
    _W["shards"] = _make_shards(os.path.join(base, "shards"))
    for kind in ("folder", "tarshards"):
        path = os.path.join(base, f"pristine-{kind}.tvi")
        ds = _open(kind, path)
        with open(path, "rb") as f:
            _W.setdefault("tpl", {})[kind] = (f.read(), _view(ds))


# ---- mutations ----------------------------------------------------------------------------
def _split(raw: bytes):
    (hlen,) = struct.unpack("<Q", raw[8:16])
    start = (16 + hlen + 63) // 64 * 64
    return json.loads(raw[16:16 + hlen]), raw[start:]


def _join(header, body: bytes, *, reseal: bool) -> bytes:
    from tinyvit.data import index as ix

    if reseal and isinstance(header, dict):
        header = dict(header)
        header["checksum"] = ix.header_checksum(header)
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    start = (16 + len(blob) + 63) // 64 * 64
    return ix.MAGIC + struct.pack("<Q", len(blob)) + blob + b"\0" * (start - 16 - len(blob)) + body


def _reseal_array(header, body: bytearray, name: str) -> dict:
    from tinyvit.data import index as ix

    spec = header["arrays"][name]
    import numpy as np

    n = int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize
    header = json.loads(json.dumps(header))
    header["arrays"][name]["crc32"] = ix._digest(bytes(body[spec["offset"]:spec["offset"] + n]))
    return header


def _array_view(header, body: bytearray, name: str):
    import numpy as np

    spec = header["arrays"][name]
    return np.frombuffer(body, spec["dtype"], int(np.prod(spec["shape"])), spec["offset"])


def _m_header_json(rng, raw, kind):
    header, body = _split(raw)
    choice = rng.choice([json.dumps([header]).encode(), b"{}", b"\x00garbage\xff",
                         b"\xff\xfe{\"a\": 1}", json.dumps(header).encode()[:-7],
                         b"[" * 100000 + b"]" * 100000, b"1" * 5000])
    return _join(choice, body, reseal=False)


def _m_header_field(rng, raw, kind):
    header, body = _split(raw)
    keys = [k for k in header if k != "checksum"]
    if rng.random() < 0.4:  # inside an array's layout
        name = rng.choice(sorted(header["arrays"]))
        target, key = header["arrays"][name], rng.choice(["dtype", "shape", "offset", "crc32"])
    else:
        target, key = header, rng.choice(keys)
    old = target.get(key)
    if rng.random() < 0.4:
        target.pop(key, None)
    else:  # a value of another JSON type (a same-type value is an edit, caught by the CRC)
        pool = [v for v in _NASTY if type(v) is not type(old)
                and not (isinstance(v, (int, float)) and isinstance(old, (int, float))
                         and not isinstance(v, bool) and not isinstance(old, bool))]
        target[key] = rng.choice(pool)
    return _join(header, body, reseal=rng.random() < 0.5)


def _m_array_bytes(rng, raw, kind):
    header, body = _split(raw)
    body = bytearray(body)
    name = rng.choice(sorted(header["arrays"]))
    a = _array_view(header, body, name)
    if a.nbytes == 0:
        body += b"x"
        return _join(header, bytes(body), reseal=False)
    off = header["arrays"][name]["offset"]
    pos = off + rng.randrange(a.nbytes)
    body[pos] = (body[pos] + rng.randrange(1, 256)) % 256
    return _join(header, bytes(body), reseal=False)


def _m_invariant(rng, raw, kind):
    header, body = _split(raw)
    body = bytearray(body)
    n = header["count"]
    bad = {"label": [-1, 10 ** 6, -5], "size": [-1], "wh": [0, -2],
           "path_off": [-1, 10 ** 9], "key_off": [-1, 10 ** 9], "dir_off": [-1, 10 ** 9],
           "shard": [-1, 7], "offset": [-1, 10 ** 12]}
    if kind == "tarshards":  # any label >= 0 is a class there: only -1 for all is valid
        bad["label"] = [-2, -5, -1]
    name = rng.choice([k for k in bad if k in header["arrays"]])
    a = _array_view(header, body, name).copy()
    a[rng.randrange(len(a))] = rng.choice(bad[name])
    if name == "label" and kind == "folder" and rng.random() < 0.5:
        a[:] = a[::-1]  # in range but not grouped by class
    spec = header["arrays"][name]
    body[spec["offset"]:spec["offset"] + a.nbytes] = a.tobytes()
    del n
    header = _reseal_array(header, body, name)
    return _join(header, bytes(body), reseal=True)


def _m_checksum(rng, raw, kind):
    header, body = _split(raw)
    if rng.random() < 0.3:
        header["checksum"] = rng.choice(["crc32:00000000", "", "sha256:" + "0" * 64])
    else:
        name = rng.choice(sorted(header["arrays"]))
        old = header["arrays"][name]["crc32"]
        header["arrays"][name]["crc32"] = old[:-1] + ("0" if old[-1] != "0" else "1")
        header["checksum"] = __import__("tinyvit.data.index", fromlist=["x"]).header_checksum(header)
    return _join(header, body, reseal=False)


def _m_length(rng, raw, kind):
    (hlen,) = struct.unpack("<Q", raw[8:16])
    new = rng.choice([0, 1, hlen - 1, hlen + 1, len(raw), 1 << 40, (1 << 64) - 1])
    return raw[:8] + struct.pack("<Q", new) + raw[16:]


def _m_magic(rng, raw, kind):
    k = rng.randrange(8)
    return raw[:k] + bytes([raw[k] ^ (1 << rng.randrange(8))]) + raw[k + 1:]


def _m_truncate(rng, raw, kind):
    if rng.random() < 0.7:
        return raw[:rng.randrange(len(raw))]
    return raw + rng.choice([b"\0", b"x" * 63, os.urandom(4096)])


_MUTATORS = {"header_json": _m_header_json, "header_field": _m_header_field,
             "array_bytes": _m_array_bytes, "invariant": _m_invariant, "checksum": _m_checksum,
             "length": _m_length, "magic": _m_magic, "truncate": _m_truncate}


# ---- one case -----------------------------------------------------------------------------
def _fresh(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _while_open(rng, kind, path, raw, want):
    """Open on the pristine file, then break the file under it: the open dataset must keep
    working (private memory), and a pickled copy must come back the same or refused."""
    import pickle

    from tinyvit.data.idx import DatasetError

    with open(path, "wb") as f:
        f.write(raw)
    ds = _open(kind, path)
    blob = pickle.dumps(ds)
    with open(path, "r+b") as f:  # in place: the same inode a mapping would hold
        if rng.random() < 0.5:
            f.truncate(rng.randrange(len(raw)))
        else:
            f.seek(rng.randrange(len(raw)))
            f.write(os.urandom(rng.randrange(1, 64)))
    if _view(ds) != want:
        return "wrong"
    try:
        back = pickle.loads(blob)
    except DatasetError:
        return "refused"
    return "same" if _view(back) == want else "wrong"


def run_case(case) -> tuple:
    """case = (seed, i) -> (mutation kinds, verdict)."""
    from tinyvit.data.idx import DatasetError

    seed, i = case
    rng = random.Random(seed * 1_000_003 + i)
    kind = rng.choice(["folder", "tarshards"])
    raw, want = _W["tpl"][kind]
    path = os.path.join(_W["base"], f"case-{kind}.tvi")
    _fresh(path)
    muts = [rng.choice(KINDS)]
    if muts[0] not in ("while_open", "not_a_file") and rng.random() < 0.3:
        muts.append(rng.choice([k for k in _MUTATORS if k not in ("header_json", "length")]))
    if muts[0] == "while_open":
        return muts, _while_open(rng, kind, path, raw, want)
    if muts[0] == "not_a_file":
        if rng.random() < 0.5:
            os.mkfifo(path)
        else:
            os.mkdir(path)
    else:
        for m in muts:
            try:
                raw = _MUTATORS[m](rng, raw, kind)
            except Exception:  # noqa: BLE001 - the campaign's own parse of already-broken
                pass  # bytes (an earlier mutation left nothing this one can edit): keep them
        with open(path, "wb") as f:
            f.write(raw)
    validate = rng.choice(["dirs", "full", "none"])
    try:
        ds = _open(kind, path, validate)
    except DatasetError:
        return muts, "refused"
    return muts, "same" if _view(ds) == want else "wrong"  # (never print a view: 1e6 names)


# ---- campaign -----------------------------------------------------------------------------
def campaign(cases: int, seed: int, *, wall_s: float = 2.0, mem_mb: int = 256,
             progress: bool = False) -> dict:
    from _bounded import FAILURES, BoundedWorker

    outcomes = {k: 0 for k in ("same", "refused", "wrong") + FAILURES}
    per_kind = {k: {} for k in KINDS}
    failures = []
    t0 = time.perf_counter()
    with BoundedWorker("fuzz_index:run_case", setup="fuzz_index:setup", wall_s=wall_s,
                       mem_mb=mem_mb) as w:
        for i in range(cases):
            out = w.run((seed, i))
            muts, verdict = out.verdict if out.status == "ok" else ([], out.status)
            if out.status != "ok":
                muts = [_kinds_of(seed, i)]
            outcomes[verdict] += 1
            for m in muts:
                per_kind[m][verdict] = per_kind[m].get(verdict, 0) + 1
            if verdict not in ("same", "refused") and len(failures) < 20:
                failures.append({"case": i, "kinds": muts, "verdict": verdict,
                                 "detail": (out.detail or "")[-1500:]})
            if progress and (i + 1) % 200 == 0:
                print(f"  {i + 1}/{cases} {outcomes}", flush=True)
    bad = sum(outcomes[k] for k in ("wrong",) + FAILURES)
    return {"cases": cases, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "outcomes": outcomes, "per_kind": per_kind, "failures": bad,
            "first_failures": failures, "worker_restarts": w.restarts,
            "limits": {"wall_s": wall_s, "mem_mb": mem_mb}}


def _kinds_of(seed, i) -> str:
    rng = random.Random(seed * 1_000_003 + i)
    rng.choice(["folder", "tarshards"])
    return rng.choice(KINDS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fuzz_index.json"))
    args = ap.parse_args()
    from _common import finish_facts, machine_facts

    facts = machine_facts()
    res = campaign(args.cases, args.seed, progress=True)
    res["machine"] = finish_facts(facts)
    res["commit"] = facts.get("tinyvit_commit")
    print(json.dumps({k: res[k] for k in ("cases", "seconds", "outcomes", "failures")}))
    for k, v in res["per_kind"].items():
        print(f"  {k:13s} {v}")
    for f in res["first_failures"][:5]:
        print("FAILURE", f["case"], f["kinds"], f["verdict"], f["detail"][-400:])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
