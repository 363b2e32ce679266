"""Adversarial campaign against replay attestation (``<store>/attest.json``, tinyvit/data/attest.py).

The worker (benchmarks/_bounded.py: every case bounded to 2 s and 256 MiB of peak-RSS growth,
hangs killed, crashes restarted) saves one small store (12 PPM images, 2 epochs) and a copy of
its dataset whose attested sample 0 has other pixels of the same byte size. Each case writes a
mutated attest.json -- fields deleted / retyped / out of range, epochs removed, the sample list
emptied / shortened / reordered, digests of another type / length / case, nesting up to 10^5
deep, duplicate keys, NaN, invalid UTF-8, truncation, byte flips, over the size cap, a FIFO or a
directory in its place, and benign rewrites (whitespace, key order) -- then runs what verify,
DistillLoader and a save-logits rerun run: ``load_attestation``, ``check_replay`` on the real
and on the changed dataset, ``record_epoch(new=False)``. Outcome per case:

  refused       ReplayMismatchError, one line, naming the store's attest.json
  parsed        (kind big_store: up to 4 MiB read as the attest.json of a 512-epoch store) a
                valid document loaded -- the parser's time / memory bounds are what is tested
  caught        the document is valid; the real data replays (check_replay == 2) and the
                changed sample is refused (ReplayMismatchError)
  silent        FAILURE: the changed sample accepted (a real mismatch went through), or a valid
                document refused on the real data / a mutated one accepted that differs
  bad_message   FAILURE: a refusal of more than one line or not naming the file
  crash / hang / over_time / over_memory / untyped: FAILURES counted by the harness

    python benchmarks/fuzz_attest.py --cases 3000 --seconds 300

Prints the counts and writes benchmarks/results/fuzz_attest.json (commit, machine, cases,
seconds, counts per outcome and per mutation kind); exits 1 on any failure. The test suite runs
a short version (tests/store/test_attest.py::test_fuzz_attest_short).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

OUTCOMES = ("refused", "caught", "parsed")
FAILURES = ("silent", "bad_message", "crash", "hang", "over_time", "over_memory", "untyped")
_W = {}  # the worker's pristine store, datasets and document (set by setup)
_CAP = 4096 + 8192 * 2  # attest.max_bytes of the 2-epoch store (checked in setup)


# ---- worker side ------------------------------------------------------------------------------
def _ppm(rng, w, h):
    return f"P6\n{w} {h}\n255\n".encode() + rng.integers(0, 256, (h, w, 3), "uint8").tobytes()


def setup():
    """In the worker, once: a 2-epoch store of 12 PPM images and a same-size changed copy."""
    import numpy as np
    import torch

    import tinyvit
    from tinyvit.jobs.save_logits import open_or_create_store, save_logits

    base = os.environ.get("FUZZ_ATTEST_DIR") or tempfile.mkdtemp(prefix="tv_fuzz_attest_")
    root = os.path.join(base, "data")
    rng = np.random.default_rng(0)
    for i in range(12):
        os.makedirs(os.path.join(root, f"c{i % 3}"), exist_ok=True)
        with open(os.path.join(root, f"c{i % 3}", f"{i:03d}.ppm"), "wb") as f:
            f.write(_ppm(rng, 18 + i % 4, 15 + i % 3))
    changed = os.path.join(base, "changed")
    shutil.copytree(root, changed)
    p0 = os.path.join(changed, "c0", "000.ppm")
    data = bytearray(open(p0, "rb").read())
    data[-30:] = bytes(255 - b for b in data[-30:])  # same size: same dataset fingerprint
    open(p0, "wb").write(bytes(data))
    cfg = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    ds = tinyvit.ImageFolder(root, index=False)
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    path = os.path.join(base, "store")
    store = open_or_create_store(path, dataset=ds, cfg=cfg, num_classes=3, topk=2, epochs=2,
                                 base_seed=4, teacher_desc={"m": "t"})
    save_logits(teacher, ds, store, cfg, epochs=range(2), batch_size=4, progress=False)
    att = os.path.join(path, "attest.json")
    _W.update(store=store, ds=ds, changed=tinyvit.ImageFolder(changed, index=False), cfg=cfg,
              att=att, doc=json.load(open(att)))
    assert ds.fingerprint() == _W["changed"].fingerprint()
    from tinyvit.data.attest import max_bytes

    assert max_bytes(store) == _CAP, (max_bytes(store), _CAP)


def _nodes(doc, path=()):
    """Every (path, value) of a JSON document, depth first."""
    yield path, doc
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _nodes(v, path + (k,))


def _set(doc, path, value):
    for k in path[:-1]:
        doc = doc[k]
    doc[path[-1]] = value


_NASTY = [None, True, False, 0, -1, 1, 2 ** 32, 2 ** 63, 10 ** 30, 1.0, 0.5, -0.0, "", "0", "x" * 300,
          "0" * 64, "A" * 64, [], [0], [[]], {}, {"0": {}}]


def _deep(rng, depth):
    op, cl = rng.choice([("[", "]"), ('{"a":', "}")])
    return (op * depth + "0" + cl * depth).encode()


def _big_valid(doc, epochs: int) -> bytes:
    """A valid document of ``epochs`` epochs (for the 512-epoch stand-in store)."""
    entry = doc["epochs"]["0"]
    return json.dumps({"version": 1, "epochs": {str(e): entry for e in range(epochs)}}, indent=1).encode()


class _BigStore:
    """The worker's store seen as one of 512 epochs: attest.json may have 4 MiB."""

    def __init__(self, store):
        self.path, self.num_samples, self.epochs = store.path, store.num_samples, 512


def _mutate(rng, doc):
    """(kind, bytes or a special marker) of one mutation of the pristine document."""
    d = copy.deepcopy(doc)
    ep = rng.choice(sorted(d["epochs"]))
    kind = rng.choice(KINDS)
    if kind == "empty_epochs":
        d["epochs"] = {}
    elif kind == "drop_epoch":
        del d["epochs"][ep]
    elif kind == "retype_node":
        path, _ = rng.choice([n for n in _nodes(d) if n[0]])
        _set(d, path, copy.deepcopy(rng.choice(_NASTY)))
    elif kind == "delete_key":
        path, _ = rng.choice([n for n in _nodes(d) if n[0] and isinstance(n[0][-1], str)])
        parent = d
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
    elif kind == "add_key":
        path, node = rng.choice([n for n in _nodes(d) if isinstance(n[1], dict)])
        node[rng.choice(["extra", "version", "0", "9", "samples"]) + rng.choice(["", "_"])] = 1
    elif kind == "samples":
        s = d["epochs"][ep]["samples"]
        op = rng.choice(["empty", "drop", "reorder", "dup", "neg", "big", "float", "extra_field"])
        if op == "empty":
            s.clear()
        elif op == "drop":
            s.pop(rng.randrange(len(s)))
        elif op == "reorder":
            s.reverse()
        elif op == "dup":
            s[1] = list(s[0])
        elif op in ("neg", "big", "float"):
            r = rng.randrange(len(s))
            s[r][rng.randrange(2)] = {"neg": -1, "big": 2 ** 40, "float": float(s[r][0])}[op]
        else:
            s[0].append(0)
    elif kind == "digest":
        row = rng.choice(d["epochs"][ep]["samples"])
        dg = row[2]
        row[2] = rng.choice([int(dg[:8], 16), dg.upper(), dg[:63], dg + "0", "g" + dg[1:], None,
                             ("0" if dg[0] != "0" else "1") + dg[1:]])
    elif kind == "identity":
        ident = d["epochs"][ep]["identity"]
        ident[rng.choice(sorted(ident) + ["new"])] = rng.choice(["x", 99, "libjpeg 80", "pil"])
    elif kind == "identity_str":
        d["epochs"][ep]["identity"] = rng.choice(["cpp", "", "{}"])
    elif kind == "epoch_key":
        d["epochs"][rng.choice(["00", "-1", " 0", "1e0", "2", "99999999999", "0x0", "\u0660"])] = \
            d["epochs"].pop(ep)
    elif kind == "version":
        d["version"] = rng.choice([0, 2, "1", 1.0, True, None])
    elif kind == "not_object":
        d = rng.choice([[], "x", 1, None, [d]])
    text = json.dumps(d, indent=rng.choice([None, 1]), sort_keys=rng.random() < 0.5)
    if kind == "deep":
        return kind, _deep(rng, rng.choice([6, 50, 1000, 10 ** 5]))
    if kind == "deep_inside":
        return kind, text.replace('"samples": [', '"samples": [' + "[" * 50000, 1).encode()
    if kind == "dup_key":
        return kind, text.replace("{", '{"version": 1, ', 1).encode() if rng.random() < 0.5 else \
            text.replace(f'"{ep}": {{', f'"{ep}": {{}}, "{ep}": {{', 1).encode()
    if kind == "constant":
        return kind, text.replace("1", rng.choice(["NaN", "Infinity", "-Infinity"]), 1).encode()
    if kind == "bad_utf8":
        b = text.encode()
        k = rng.randrange(len(b))
        return kind, b[:k] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + b[k:]
    if kind == "truncate":
        b = text.encode()
        return kind, b[:rng.randrange(len(b))]
    if kind == "byte_flip":
        b = bytearray(text.encode())
        for _ in range(rng.choice([1, 2, 8])):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "huge":  # over this store's cap, or over the 4 MiB of any store
        return kind, text.encode() + b" " * rng.choice([_CAP + 1 - len(text), (4 << 20) + 1])
    if kind == "huge_quotes":  # the depth pre-check on an adversarial file of the largest size
        n = rng.choice([_CAP, 4 << 20])  # allowed (this store / a 500-epoch one): linear, bounded
        return kind, b'["' + b'\\"' * (n // 2 - 4) + b'"]'
    if kind == "huge_brackets":
        return kind, b"[" * rng.choice([_CAP, 4 << 20])
    if kind == "big_store":  # read as the attest.json of a 512-epoch store (cap 4 MiB)
        return kind, rng.choice([
            b'["' + b'\\"' * ((4 << 20) // 2 - 4) + b'"]', b"[" * (4 << 20), b'{"a":' * ((4 << 20) // 5),
            b'["' + b"[" * ((4 << 20) - 8) + b'"]', b"[" + b"0," * ((4 << 20) // 2 - 2) + b"0]",
            _big_valid(d, rng.randrange(1, 513))])
    if kind in ("fifo", "directory", "empty_file"):
        return kind, kind
    return kind, text.encode()


KINDS = ("empty_epochs", "drop_epoch", "retype_node", "delete_key", "add_key", "samples", "digest",
         "identity", "identity_str", "epoch_key", "version", "not_object", "deep", "deep_inside",
         "dup_key", "constant", "bad_utf8", "truncate", "byte_flip", "huge", "huge_quotes",
         "huge_brackets", "big_store", "fifo",
         "directory", "empty_file", "benign")


def _place(att, payload):
    if os.path.isdir(att) and not os.path.islink(att):
        os.rmdir(att)
    elif os.path.lexists(att):
        os.unlink(att)
    if payload == "fifo":
        os.mkfifo(att)
    elif payload == "directory":
        os.mkdir(att)
    else:
        with open(att, "wb") as f:
            f.write(b"" if payload == "empty_file" else payload)


def _refusal(ex, att) -> str:
    from tinyvit.store.errors import ReplayMismatchError

    if not isinstance(ex, ReplayMismatchError):
        raise ex  # untyped: the harness records it
    msg = str(ex)
    if "\n" in msg or len(msg) > 1200 or os.path.dirname(att) not in msg:
        return "bad_message"
    return "refused"


def _after_load(doc) -> str:
    """A document that validated: the real data must replay (else it is refused, typed, one
    line -- right for a document whose content is wrong, a failure for the pristine one), and
    the changed sample 0 must never pass."""
    from tinyvit.data import attest

    s, cfg = _W["store"], _W["cfg"]
    try:
        n = attest.check_replay(s, _W["ds"], cfg, epochs=[0, 1])  # what verify / DistillLoader run
    except Exception as ex:  # noqa: BLE001 - classified by _refusal
        return "silent" if doc == _W["doc"] else _refusal(ex, _W["att"])
    if n != 2:
        return "silent"
    try:
        attest.check_replay(s, _W["changed"], cfg, epochs=[0])
        return "silent"  # sample 0 has other pixels: must never pass
    except Exception as ex:  # noqa: BLE001 - classified by _refusal
        if _refusal(ex, _W["att"]) != "refused":
            return "bad_message"
    attest.record_epoch(s, _W["ds"], cfg, 0, new=False)  # a save-logits rerun: checks only
    return "caught"


def run_case(case):
    """(seed) -> (mutation kind, outcome). Exceptions other than those classified escape
    (the harness counts them as untyped)."""
    from tinyvit.data import attest

    rng = random.Random(case)
    kind, payload = _mutate(rng, _W["doc"])
    if kind == "benign":
        payload = json.dumps(_W["doc"], indent=rng.choice([None, 0, 3]), sort_keys=False).encode()
    att = _W["att"]
    _place(att, payload)
    try:
        if kind == "big_store":  # the parser's bounds at the largest size any store allows
            try:
                attest.load_attestation(_BigStore(_W["store"]))
                return kind, "parsed"
            except Exception as ex:  # noqa: BLE001 - classified by _refusal
                return kind, _refusal(ex, att)
        try:
            doc = attest.load_attestation(_W["store"])
        except Exception as ex:  # noqa: BLE001 - classified by _refusal
            return kind, _refusal(ex, att)
        return kind, _after_load(doc)
    finally:
        _place(att, json.dumps(_W["doc"]).encode())


# ---- driver -----------------------------------------------------------------------------------
def fuzz(cases=500, seconds=300.0, seed=0, wall_s=2.0, mem_mb=256, log=print) -> dict:
    from _bounded import BoundedWorker

    base = tempfile.mkdtemp(prefix="tv_fuzz_attest_")
    os.environ["FUZZ_ATTEST_DIR"] = base  # the spawned worker builds its store here
    counts = dict.fromkeys(OUTCOMES + FAILURES, 0)
    per_kind, examples = {}, []
    t0 = time.time()
    done = 0
    worst = {"case_s": 0.0, "peak_mb": 0.0}  # the slowest case and the largest peak-RSS growth
    try:
        with BoundedWorker("fuzz_attest:run_case", setup="fuzz_attest:setup", wall_s=wall_s,
                           mem_mb=mem_mb) as w:
            for i in range(cases):
                if time.time() - t0 > seconds:
                    break
                case = seed * 1_000_003 + i
                kind = _mutate(random.Random(case), _W_DOC)[0]
                o = w.run(case)
                worst["case_s"] = max(worst["case_s"], round(o.seconds, 3))
                if o.peak_mb == o.peak_mb:  # not nan
                    worst["peak_mb"] = max(worst["peak_mb"], round(o.peak_mb, 1))
                outcome = o.verdict[1] if o.status == "ok" else o.status
                counts[outcome] += 1
                per_kind.setdefault(kind, dict.fromkeys(OUTCOMES + FAILURES, 0))[outcome] += 1
                if outcome in FAILURES and len(examples) < 20:
                    examples.append(f"case {case} ({kind}): {outcome}: {(o.detail or '')[-600:]}")
                done += 1
                if done % 250 == 0:
                    log(f"  {done}/{cases} cases, {time.time() - t0:.0f} s, {counts}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"cases": done, "seed": seed, "seconds": round(time.time() - t0, 1),
            "worst": worst, "bounds": {"wall_s": wall_s, "mem_mb": mem_mb}, "counts": counts,
            "failures": sum(counts[f] for f in FAILURES),
            "per_kind": {k: {o: n for o, n in v.items() if n} for k, v in sorted(per_kind.items())},
            "examples": examples}


# The parent draws the same kind as the worker (for the per-kind counts) from a stand-in
# document of the same shape: _mutate's first draws depend only on the epoch keys.
_W_DOC = {"version": 1, "epochs": {"0": {"identity": {"backend": "cpp", "jpeg": "j", "plan_format": 1},
                                         "samples": [[0, 1, "0" * 64], [4, 1, "0" * 64],
                                                     [7, 1, "0" * 64], [11, 1, "0" * 64]]},
                                   "1": {"identity": {"backend": "cpp", "jpeg": "j", "plan_format": 1},
                                         "samples": [[0, 1, "0" * 64], [4, 1, "0" * 64],
                                                     [7, 1, "0" * 64], [11, 1, "0" * 64]]}}}


def main(argv=None) -> int:
    from _common import RESULTS, finish_facts, machine_facts, write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=300.0, help="stop after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wall-s", type=float, default=2.0, help="per-case wall-time bound")
    ap.add_argument("--mem-mb", type=int, default=256, help="per-case peak-RSS growth bound")
    ap.add_argument("--out", default=os.path.join(RESULTS, "fuzz_attest.json"))
    args = ap.parse_args(argv)
    facts = machine_facts()
    r = fuzz(args.cases, args.seconds, args.seed, args.wall_s, args.mem_mb)
    r["machine"] = finish_facts(facts)
    write_json(args.out, r)
    print(json.dumps({k: r[k] for k in ("cases", "seconds", "counts", "failures")}))
    for e in r["examples"]:
        print("  " + e)
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
