"""Adversarial campaign against tar shards (TarShards: the C++ header walk, the label parser,
the image bytes through replay_batch), every case under benchmarks/_bounded.py.

Each case builds a small valid shard (GNU, pax or ustar format: 3 samples, a long key for
one, .cls or .json labels) with Python's tarfile, applies one mutation, and opens it with
``TarShards(path, index=False)``; an accepted shard then has every sample read and the
first replayed with ``replay_batch(names=[ds.source_name(0)])``. Mutations: base-256 sizes
(negative, huge, random), octal garbage and over-long octal sizes, GNU long-name lengths
and payloads, pax record lengths (overflowing, non-numeric, off by k) and pax size records,
truncations, checksum edits, header byte edits with the checksum fixed up (so the parser
past the checksum is reached), type bytes, label payloads (beyond int64, 10^12, negative,
boolean, 10^5-deep JSON, floats, garbage, some samples unlabeled), non-image payloads,
random / empty / zero-only files. Verdicts:

  ok       accepted, and its regular members (name, data offset, size) equal what Python's
           tarfile reads from the same bytes (an independent walk); sample bytes as indexed
  ok_lenient  accepted; tarfile stops at or refuses a header whose only bad fields are ones
           the index never reads (mode, uid, gid, mtime, devmajor/minor), and reads the
           same members once those fields are made valid
  typed    DatasetError naming the shard file, or (accepted shard) replay_batch refusing
           sample 0 with an error naming the shard and the key
  wrong    accepted but differs from tarfile, or a sample's bytes are not the member's
  unnamed  a typed error that does not name the shard file
plus the harness's crash / hang / over_time / over_memory / untyped (2 s, 256 MiB per case).

    python benchmarks/fuzz_tar.py --cases 3000 --seconds 300

Prints the counts and writes benchmarks/results/fuzz_tar.json; exits 1 on any failure.
The test suite runs a short version (tests/data/test_tarshards.py).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tarfile
import tempfile
import time
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

VERDICTS = ("ok", "ok_lenient", "typed", "wrong", "unnamed")
PASSING = ("ok", "ok_lenient", "typed")
KINDS = [
    "good", "size_b256_negative", "size_b256_huge", "size_b256_random", "size_octal_garbage",
    "size_octal_large", "longname_size", "longname_payload", "pax_len_overflow",
    "pax_len_garbage", "pax_len_off", "pax_size_record", "truncate", "checksum_edit",
    "header_byte_fixed_sum", "type_byte", "label_cls_huge", "label_cls_negative",
    "label_cls_garbage", "label_json_bool", "label_json_deep", "label_json_value",
    "label_all_negative", "label_partial", "payload_not_image", "random_file", "empty_file",
    "zero_blocks",
]
_STATE: dict = {}


# ------------------------------------------------------------------ building a shard
def warm() -> None:
    """Worker setup: import the library and make the small images once."""
    from PIL import Image

    import tinyvit  # noqa: F401 - the import is the warm-up

    imgs = []
    for k in range(3):
        arr = np.random.default_rng(k).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        b = io.BytesIO()
        Image.fromarray(arr).save(b, "JPEG", quality=80)
        imgs.append(b.getvalue())
    _STATE["imgs"] = imgs


def _add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime = len(data), 1_700_000_000
    tf.addfile(ti, io.BytesIO(data))


def _shard(rng, labels=None, json_label=None, payload=None) -> bytes:
    fmt = [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT][int(rng.integers(0, 3))]
    use_json = bool(rng.integers(0, 2)) if json_label is None else json_label
    labels = labels if labels is not None else [int(x) for x in rng.integers(0, 5, 3)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for k in range(3):
            key = ("d" * 110 + "/" if k == 1 and fmt != tarfile.USTAR_FORMAT else "") + f"s{k}"
            _add(tf, f"{key}.jpg", payload if (payload is not None and k == 0) else _STATE["imgs"][k])
            lab = labels[k]
            if lab is None:
                continue
            if isinstance(lab, bytes):
                _add(tf, f"{key}.{'json' if use_json else 'cls'}", lab)
            elif use_json:
                _add(tf, f"{key}.json", json.dumps({"label": lab}).encode())
            else:
                _add(tf, f"{key}.cls", str(lab).encode())
    return buf.getvalue()


def _headers(data: bytes):
    """[(offset, type byte)] of a pristine shard's headers (trusted: we wrote it)."""
    out, pos = [], 0
    while pos + 512 <= len(data) and any(data[pos:pos + 512]):
        size = int(data[pos + 124:pos + 136].strip(b"\0 ") or b"0", 8)
        out.append((pos, data[pos + 156]))
        pos += 512 + (size + 511) // 512 * 512
    return out


def _fix_sum(b: bytearray, pos: int) -> None:
    b[pos + 148:pos + 156] = b" " * 8
    b[pos + 148:pos + 156] = b"%06o\0 " % sum(b[pos:pos + 512])


def _set_size(b: bytearray, pos: int, field: bytes) -> None:
    b[pos + 124:pos + 136] = field
    _fix_sum(b, pos)


def _pax_shard(rng, record: bytes) -> bytes:
    """One pax 'x' header carrying `record`, then a regular member a.jpg."""
    b = bytearray()
    for name, typ, data in ((b"PaxHeader/a.jpg", b"x", record), (b"a.jpg", b"0", _STATE["imgs"][0])):
        h = bytearray(512)
        h[0:len(name)] = name
        h[100:108] = b"0000644\0"
        h[124:136] = b"%011o\0" % len(data)
        h[156:157] = typ
        h[257:265] = b"ustar\x0000"
        _fix_sum(h, 0)
        b += h + data + bytes(-len(data) % 512)
    return bytes(b + bytes(1024))


def _mutate_size(kind, rng, b, heads):
    pos = heads[int(rng.integers(0, len(heads)))][0]
    if kind == "size_b256_negative":
        _set_size(b, pos, b"\xff" * 4 + struct.pack(">q", -int(rng.integers(1, 1 << 40))))
    elif kind == "size_b256_huge":
        _set_size(b, pos, b"\x80\0\0\0" + struct.pack(">Q", int(rng.integers(1 << 20, 1 << 62))))
    elif kind == "size_b256_random":
        _set_size(b, pos, bytes([0x80 | int(rng.integers(0, 128))]) +
                  rng.integers(0, 256, 11, dtype=np.uint8).tobytes())
    elif kind == "size_octal_garbage":
        f = bytearray(b"%011o\0" % int(rng.integers(0, 4096)))
        f[int(rng.integers(0, 11))] = int(rng.choice(list(b"89a-+x \xff")))
        _set_size(b, pos, bytes(f))
    else:  # size_octal_large: valid octal, past the end of the file
        _set_size(b, pos, b"%011o\0" % int(rng.integers(len(b), 8 ** 11 - 1)))


def _mutate_meta(kind, rng, b, heads):
    metas = [p for p, t in heads if t in (ord("L"), ord("x"))]
    if kind == "longname_size":
        if not metas:
            return bytes(_gnu_longname(rng, int(rng.choice([2 << 30, 65537, 1 << 40, 700]))))
        _set_size(b, metas[0], b"%011o\0" % int(rng.choice([2 << 30, 65537, 8 ** 11 - 1, 1])))
        return bytes(b)
    if kind == "longname_payload":
        if not metas:
            return bytes(_gnu_longname(rng, 700))
        p = metas[0] + 512 + int(rng.integers(0, 100))
        b[p:p + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        return bytes(b)
    path = b" path=a.jpg\n"
    if kind == "pax_len_overflow":
        rec = b"9" * int(rng.integers(19, 40)) + path
    elif kind == "pax_len_garbage":
        rec = bytes(rng.choice(list(b"x-+ 0\xff"), 3).astype(np.uint8)) + path
    elif kind == "pax_len_off":
        n = len(path) + 2 + int(rng.integers(-14, 15))
        rec = str(n).encode() + path
    else:  # pax_size_record
        v = [b"-1", b"99999999999999999999", b"1e3", b"", str(int(rng.integers(0, 1 << 34))).encode()]
        rec = _pax_record(b" size=" + v[int(rng.integers(0, len(v)))] + b"\n")
    return _pax_shard(rng, rec)


def _pax_record(body: bytes) -> bytes:
    """b"LEN" + body with LEN counting its own digits (a well-formed record)."""
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def _gnu_longname(rng, claimed: int) -> bytearray:
    b = bytearray(_pax_shard(rng, b"11 path=a\n"))
    b[156] = ord("L")
    _set_size(b, 0, b"%011o\0" % claimed if claimed < 8 ** 11 else
              b"\x80\0\0\0" + struct.pack(">Q", claimed))
    return b


def _label_case(kind, rng):
    if kind == "label_cls_huge":
        v = [10 ** 12, 2 ** 63, 10 ** 30, 999_999, 1_000_000]
        return _shard(rng, labels=[1, v[int(rng.integers(0, len(v)))], 2], json_label=False)
    if kind == "label_cls_negative":
        return _shard(rng, labels=[0, -int(rng.integers(1, 10 ** 6)), 1], json_label=False)
    if kind == "label_cls_garbage":
        g = [b"seven", b"1_000", b"+3", b"\xff\xfe", b"", b"3.0", b"\xd9\xa3", b"1 2"]
        return _shard(rng, labels=[0, g[int(rng.integers(0, len(g)))], 1], json_label=False)
    if kind == "label_json_bool":
        return _shard(rng, labels=[0, b'{"label": true}', 1], json_label=True)
    if kind == "label_json_deep":
        n = int(rng.choice([33, 1000, 100_000]))
        ch = [b"[", b"{\"a\":"][int(rng.integers(0, 2))]
        return _shard(rng, labels=[0, ch * n, 1], json_label=True)
    if kind == "label_json_value":
        v = [b'{"label": 1e12}', b'{"label": 99999999999999999999999}', b'{"label": -3}',
             b'{"label": "3", "cls": 2}', b'[1]', b'{"cls": 1000000000000}', b'{"label": NaN}',
             b'{"label": 2, "s": "' + b"\\\"" * 20000 + b'"}', b'{"label": "' + b"x" * 200 + b'"}']
        return _shard(rng, labels=[0, v[int(rng.integers(0, len(v)))], 1], json_label=True)
    if kind == "label_all_negative":
        return _shard(rng, labels=[-1, -2, -3])
    return _shard(rng, labels=[0, None, 1])  # label_partial


def make_case(seed: int, index: int) -> tuple:
    """-> (kind, shard bytes) for case `index` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    if kind.startswith("label_"):
        return kind, _label_case(kind, rng)
    if kind.startswith(("longname", "pax_")):
        b = bytearray(_shard(rng))
        return kind, _mutate_meta(kind, rng, b, _headers(bytes(b)))
    if kind == "payload_not_image":
        return kind, _shard(rng, payload=rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    if kind == "random_file":
        return kind, rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    if kind == "empty_file":
        return kind, b""
    if kind == "zero_blocks":
        return kind, bytes(512 * int(rng.integers(1, 4)))
    b = bytearray(_shard(rng))
    heads = _headers(bytes(b))
    if kind.startswith("size_"):
        _mutate_size(kind, rng, b, heads)
    elif kind == "truncate":
        b = b[:int(rng.integers(0, len(b) - 1024))]
    elif kind == "checksum_edit":
        pos = heads[int(rng.integers(0, len(heads)))][0]
        b[pos + 148 + int(rng.integers(0, 8))] = int(rng.integers(0, 256))
    elif kind in ("header_byte_fixed_sum", "type_byte"):
        pos = heads[int(rng.integers(0, len(heads)))][0]
        for _ in range(int(rng.integers(1, 4))):
            k = 156 if kind == "type_byte" else int(rng.choice([*range(0, 148), *range(156, 512)]))
            b[pos + k] = int(rng.integers(0, 256))
        _fix_sum(b, pos)
    return kind, bytes(b)


# ------------------------------------------------------------------ one case (in the worker)
def _reference(path):
    """Regular members by Python's tarfile: ([(name bytes, data offset, size)], where it
    stopped: None = at the end-of-archive block, else the header offset it gave up at), or
    (None, 0) when tarfile refuses the file. (tarfile stops without an error at an invalid
    header after the first one.)"""
    try:
        with tarfile.open(path, "r:") as tf:
            ms = tf.getmembers()
            stop = tf.offset
            with open(path, "rb") as f:
                f.seek(stop)
                block = f.read(512)
            return ([(m.name.encode("utf-8", "surrogateescape"), m.offset_data, m.size)
                     for m in ms if m.type in (b"0", b"\0", b"7")],
                    None if not block.strip(b"\0") else stop)
    except Exception:  # noqa: BLE001 - any refusal by the reference counts as "refused"
        return None, 0


def _normalized(data: bytes) -> bytes:
    """data with the header fields the index never reads (mode, uid, gid, mtime) set to
    valid values and each checksum fixed (headers found by their size fields)."""
    b, pos = bytearray(data), 0
    while pos + 512 <= len(b) and any(b[pos:pos + 512]):
        try:
            size = tarfile.nti(bytes(b[pos + 124:pos + 136]))
        except tarfile.InvalidHeaderError:
            break
        b[pos + 100:pos + 124] = b"0000644\x000000000\x000000000\x00"
        b[pos + 136:pos + 148] = b"14524770400\x00"
        b[pos + 329:pos + 345] = b"0000000\x00" * 2  # devmajor / devminor
        _fix_sum(b, pos)
        pos += 512 + max(0, size + 511) // 512 * 512
    return bytes(b)


def _only_unused_fields_bad(data: bytes, pos: int) -> bool:
    """True when the header at pos has a valid size (as tarfile reads it) and only fields
    the index does not use (mode, uid, gid, mtime) fail tarfile's number parser."""
    def bad(a, b):
        try:
            tarfile.nti(data[pos + a:pos + b])
            return False
        except tarfile.InvalidHeaderError:
            return True
    return not bad(124, 136) and any(bad(a, b) for a, b in ((100, 108), (108, 116), (116, 124),
                                                             (136, 148), (329, 337), (337, 345)))


def _check_accepted(ds, path, data):
    """'ok' or 'wrong: ...' for a shard TarShards accepted."""
    from tinyvit import _C

    blob, noff, doff, sizes = _C._tar_members(path)
    ours = [(bytes(blob[noff[k]:noff[k + 1]]), int(doff[k]), int(sizes[k]))
            for k in range(len(doff))]
    ref, stop = _reference(path)
    verdict = "ok"
    if ref is not None and stop is not None and ours[:len(ref)] == ref and \
            _only_unused_fields_bad(data, stop):
        verdict = "ok_lenient"  # tarfile gave up at a bad mtime / mode / uid we never read
    elif ref != ours:
        with open(path, "wb") as f:
            f.write(_normalized(data))
        ref2, stop2 = _reference(path)
        with open(path, "wb") as f:
            f.write(data)
        if ref2 == ours and stop2 is None:
            return "ok_lenient"  # tarfile refused a mode / uid / gid / mtime / dev we never read
        return f"wrong: members differ from tarfile (stopped at {stop}): ours {ours[:4]} " \
               f"tarfile {None if ref is None else ref[:4]}"
    for i in range(len(ds)):
        o, n = int(ds._offset[i]), int(ds.sizes[i])
        if ds[i] != data[o:o + n] or o + n > len(data):
            return f"wrong: sample {i} bytes are not its member's"
    if ds.targets is not None and (ds.targets.min() < 0 or ds.targets.max() >= ds.num_classes):
        return "wrong: label outside [0, num_classes)"
    return verdict


def _replay_first(ds, path):
    """replay_batch of sample 0 with its source name: '' or what is wrong with the error."""
    import tinyvit

    try:
        tinyvit.replay_batch([ds[0]], [1], tinyvit.AugConfig(img_size=16), num_threads=1,
                             names=[ds.source_name(0)])
    except (tinyvit.errors.ImageDecodeError, ValueError, OSError) as exc:
        msg = str(exc)
        if path not in msg or "key " not in msg:
            return f"unnamed: replay error does not name shard and key: {msg[:200]}"
        return "typed"  # the payload is refused, naming shard and key
    return ""


def run_case(case) -> tuple:
    """case = (seed, index, tmp dir) -> (kind, verdict, detail)."""
    import tinyvit

    seed, index, tmp = case
    kind, data = make_case(seed, index)
    path = os.path.join(tmp, f"case{index % 1000:03d}.tar")
    with open(path, "wb") as f:
        f.write(data)
    try:
        try:
            ds = tinyvit.TarShards(path, index=False)
        except tinyvit.errors.DatasetError as exc:
            msg = " ".join(str(exc).split())
            return (kind, "typed", None) if path in msg else (kind, "unnamed", msg[:300])
        verdict = _check_accepted(ds, path, data)
        if verdict.startswith("ok") and len(ds):
            verdict = _replay_first(ds, path) or verdict
        head = verdict.split(":")[0]
        return kind, head, (None if head == "ok" else verdict[:300])
    finally:
        os.unlink(path)


# ------------------------------------------------------------------ the campaign
def fuzz(cases: int, seconds: float, seed: int = 0, wall_s: float = 2.0, mem_mb: int = 256,
         progress: bool = False) -> dict:
    from _bounded import FAILURES, BoundedWorker

    per_outcome, per_kind, problems = Counter(), {}, []
    slowest = (0.0, None)
    t0, done = time.monotonic(), 0
    with tempfile.TemporaryDirectory(prefix="tinyvit_fuzz_tar_") as tmp, \
            BoundedWorker("fuzz_tar:run_case", setup="fuzz_tar:warm", wall_s=wall_s,
                          mem_mb=mem_mb) as w:
        for index in range(cases):
            if time.monotonic() - t0 > seconds:
                break
            kind = KINDS[index % len(KINDS)]
            out = w.run((seed, index, tmp))
            if out.status == "ok":
                kind, verdict, detail = out.verdict
            else:
                verdict, detail = out.status, out.detail
            per_outcome[verdict] += 1
            per_kind.setdefault(kind, Counter())[verdict] += 1
            if out.seconds > slowest[0]:
                slowest = (out.seconds, kind)
            if verdict not in PASSING:
                problems.append(dict(index=index, kind=kind, verdict=verdict, detail=detail))
            done += 1
            if progress and done % 500 == 0:
                print(f"  {done} cases, {time.monotonic() - t0:.0f} s", flush=True)
        restarts = w.restarts
    outcomes = VERDICTS + FAILURES
    return dict(cases=done, seconds=round(time.monotonic() - t0, 1), seed=seed,
                limits=dict(wall_s=wall_s, mem_mb=mem_mb), worker_restarts=restarts,
                slowest_case=dict(seconds=round(slowest[0], 3), kind=slowest[1]),
                per_outcome={o: per_outcome.get(o, 0) for o in outcomes},
                per_kind={k: dict(c) for k, c in sorted(per_kind.items())},
                failures=sum(per_outcome.get(o, 0) for o in outcomes if o not in PASSING),
                problems=problems[:200])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=300.0, help="stop starting cases after this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    from _common import cpu_model, git_revision, load_average

    r = fuzz(args.cases, args.seconds, args.seed, progress=True)
    r.update(machine=cpu_model(), git=git_revision(), load_average=load_average())
    print(f"{r['cases']} cases in {r['seconds']} s (slowest {r['slowest_case']})")
    print("  " + "  ".join(f"{o}={n}" for o, n in r["per_outcome"].items()))
    for k, c in r["per_kind"].items():
        print(f"  {k:24} {dict(c)}")
    for p in r["problems"][:20]:
        print("  problem:", p)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fuzz_tar.json"), "w") as f:
        json.dump(r, f, indent=1)
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
