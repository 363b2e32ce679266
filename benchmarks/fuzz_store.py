"""Adversarial campaign against the logit store and `tinyvit inspect` / `tinyvit verify`.

Each case copies a small pristine store (every encoding / index width), applies 1-2 random
mutations -- manifest fields deleted / retyped / nested 10^5 deep / huge, garbage or truncated
JSON, manifest.json or an epoch file replaced by a FIFO, a symlink loop, a directory or a
dangling link, epoch files deleted / truncated / extended / swapped, bit flips in records,
records zeroed or moved, and records forged with a VALID checksum over invalid content (NaN,
inf, negative, > 1, sum > 1, duplicate or out-of-range classes, bad compact scale / bitmap) --
then runs open / read (each sample and batched) / missing / audit / disk_usage / inspect /
verify. Every call must end in success or a typed StoreError. Counted per case:

  crash        the worker process died (every case runs through benchmarks/_bounded.py: one
               spawned worker, restarted after a death)
  hang         a case did not answer within --timeout seconds (worker killed)
  over_time    a case took more than --wall-s seconds (2 s)
  over_memory  a case grew peak RSS by more than --mem-mb MiB (256; RLIMIT_AS set relative
               to the worker's address space), or raised MemoryError
  untyped      an exception that is not a StoreError
  wrong        a silently wrong result: a read returned something other than the pristine
               record, read/missing/audit disagree on a record, inspect and verify exit
               differently, an exit status contradicts what the API saw, or unbounded output

Prints the counts and writes benchmarks/results/fuzz_store.json. Full run: --cases 10000.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# wrong / untyped: the campaign's own findings; crash / hang / over_time / over_memory (and
# untyped for an exception escaping a case): benchmarks/_bounded.py's
CATEGORIES = ("crash", "hang", "over_time", "over_memory", "untyped", "wrong")


# ---- worker side ------------------------------------------------------------------------------
def _templates(base):
    import numpy as np
    from tinyvit import LogitStore
    out = []
    for C, enc in ((7, "fp16"), (100, "compact"), (70000, "fp16"), (70000, "compact")):
        K = min(C, 5)
        d = os.path.join(base, f"tpl_{C}_{enc}")
        s = LogitStore.create(d, 6, C, K, aug_fingerprint="fp", value_encoding=enc, epochs=2,
                              meta={"base_seed": 1})
        g = np.random.default_rng(C)
        for e in range(2):
            n = 6 if e == 0 else 5  # epoch 1, sample 5: never written (a hole)
            idx = np.stack([g.choice(C, K, replace=False) for _ in range(n)])
            pr = -np.sort(-g.dirichlet(np.ones(K + 1), size=n)[:, :K].astype(np.float32), axis=1)
            s.write(e, np.arange(n), g.integers(0, 2 ** 32, n), idx, pr)
        expected = {}
        for e in range(2):
            for i in range(6):
                try:
                    sd, ix, p = s.read(e, [i])
                    expected[(e, i)] = (int(sd[0]), ix[0].tolist(), p[0].tolist())
                except Exception:
                    pass
        s.close()
        out.append((d, C, K, enc, expected))
    return out


_NASTY = [0, 1, -1, 2, 7, 255, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 48, 2 ** 48 + 1, 2 ** 63,
          10 ** 30, 1 << 20, (1 << 20) + 1, 0.5, float("1e308"), "1", "", None, [], {}, True,
          False, "fp16", "compact", "uint16", "int32", "crc32c", "0123456789abcdef", "zz",
          [1, 2], {"a": 1}]


def _deep(depth, rng):
    o, c = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
    return o * depth + "1" + c * depth


def _forge(path, sample, epoch, body, L, sid, enc, K, C):
    import tinyvit
    _C = tinyvit._C
    w = 2 if C <= 65535 else 4
    prefix = b"TVLS" + bytes([1, 1 if enc == "fp16" else 2, w, 0]) + struct.pack("<IIQ", K, C, sid)
    c = _C._store_crc32c(struct.pack("<QQ", epoch, sample) + body,
                         _C._store_crc32c(prefix, 0xFFFFFFFF))
    rec = body + struct.pack("<I", (~c) & 0xFFFFFFFF or 1)
    with open(path, "r+b") as f:
        f.seek(sample * L["record_size"])
        f.write(rec)


def _bad_body(rng, L, enc, K, C):
    """A record body (all but the check) with content the contract refuses."""
    import numpy as np
    w = L["index_bytes"]
    fmt = "<H" if w == 2 else "<I"
    idx = list(range(K))
    seed = rng.getrandbits(32)
    kind = rng.choice(["dup", "big_index", "nan", "inf", "neg", "gt1", "sum", "scale", "bitmap"]
                      if enc == "compact" else ["dup", "big_index", "nan", "inf", "neg", "gt1",
                                                "sum"])
    if kind == "dup" and K >= 2:
        idx[1] = idx[0]
    elif kind == "big_index":
        idx[rng.randrange(K)] = C + rng.randint(0, 3) if C + 3 < (1 << (8 * w)) else (1 << (8 * w)) - 1
    elif kind == "dup":
        kind = "big_index"
        idx[0] = min(C, (1 << (8 * w)) - 1)
    ib = b"".join(struct.pack(fmt, i) for i in idx)
    if enc == "fp16":
        p = np.full(K, 0.1 / K, np.float32)
        bad = {"nan": np.nan, "inf": np.inf, "neg": -0.25, "gt1": 1.5, "sum": 0.9}.get(kind)
        if kind == "sum":
            p[:] = 0.9 if K >= 2 else 1.5
        elif bad is not None:
            p[rng.randrange(K)] = bad
        vb = p.astype("<f2").tobytes()
        return struct.pack("<I", seed) + ib + vb, kind
    nb = L["values_bytes"]
    bits = bytearray(nb)
    for k in range(K):  # level 0 for all: valid bitmap, K set bits
        pos = k
        bits[pos >> 3] |= 1 << (pos & 7)
    scale = 1.0 / K
    if kind == "scale":
        scale = rng.choice([0.0, 3.0, float("nan"), -1.0])
    elif kind == "bitmap":
        bits[-1] |= 0x80
    elif kind in ("nan", "inf", "neg", "gt1", "sum"):
        scale = 1.0 if kind in ("gt1", "sum") else 1.9  # sum K * 1.9 > 1 -> refused (sum)
        kind = "sum"
    rec = struct.pack("<If", seed, scale) + ib + bytes(bits)
    if K == 1 and kind == "sum":  # one level-0 value * scale <= 2: still > 1 -> refused
        pass
    return rec, kind


def _write(path, data):
    """Replace a file's content; a FIFO / directory / link left by an earlier mutation is
    removed first (opening a FIFO for writing would block the fuzzer itself)."""
    if os.path.lexists(path) and not _regular(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def _regular(path):
    """A plain file (not a FIFO, directory or symlink): safe for the fuzzer itself to read."""
    return os.path.isfile(path) and not os.path.islink(path)


def _mutate(rng, d, tdir, C, K, enc, findings_expected):
    """Apply one mutation; returns its name. The manifest edited is the pristine one (a
    previous mutation may have left garbage, a FIFO or a loop there)."""
    try:
        return _mutate1(rng, d, tdir, C, K, enc, findings_expected)
    except OSError as e:  # e.g. the target was replaced by a directory by the first mutation
        return f"skipped_{type(e).__name__}"


def _mutate1(rng, d, tdir, C, K, enc, findings_expected):
    from tinyvit import _C
    mp = os.path.join(d, "manifest.json")
    e0, e1 = os.path.join(d, "epoch_00000.bin"), os.path.join(d, "epoch_00001.bin")
    m = json.load(open(os.path.join(tdir, "manifest.json")))
    r = rng.random()
    if r < 0.30:
        k = rng.choice(list(m) + ["extra"])
        how = rng.random()
        if how < 0.2:
            m.pop(k, None)
            name = f"manifest_del_{k}"
        elif how < 0.6:
            m[k] = rng.choice(_NASTY)
            name = f"manifest_set_{k}"
        elif how < 0.8 and isinstance(m.get(k), int) and not isinstance(m.get(k), bool):
            m[k] += rng.choice([-1, 1, 2, 1000, -(1 << 40)])
            name = f"manifest_delta_{k}"
        else:
            m[k] = "x" * rng.choice([10 ** 4, 10 ** 5, 10 ** 6])
            name = f"manifest_huge_{k}"
        raw = json.dumps(m)
        if rng.random() < 0.15:  # nested values, also deeper than any recursion limit
            raw = raw[:-1] + ', "nest": ' + _deep(rng.choice([10, 900, 5000, 100000]), rng) + "}"
            name += "+nested"
        _write(mp, raw)
        return name
    if r < 0.40:
        raw = open(os.path.join(tdir, "manifest.json"), "rb").read()
        how = rng.randrange(6)
        data = [raw[:rng.randrange(len(raw))], b"", b"\xff\xfe\x00garbage",
                json.dumps([m]).encode(), _deep(100000, rng).encode(),
                b"9" * 6000][how]
        _write(mp, data)
        return f"manifest_raw_{how}"
    if r < 0.48:
        target = rng.choice([mp, e0, e1])
        if os.path.isdir(target) and not os.path.islink(target):
            os.rmdir(target)
        elif os.path.lexists(target):
            os.unlink(target)
        how = rng.randrange(5)
        base = os.path.basename(target)
        if how == 0:
            os.mkfifo(target)
        elif how == 1:
            os.symlink(base, target)  # loop: the link points at itself
        elif how == 2:
            os.mkdir(target)
        elif how == 3:
            os.symlink("does_not_exist", target)
        else:
            with open(target, "wb") as f:  # sparse, past every size limit
                f.truncate(17 << 20 if target == mp else (1 << 30))
        return f"special_{base}_{how}"
    if r < 0.58:
        f = rng.choice([e0, e1])
        if not _regular(f) or not _regular(e0 if f == e1 else e1) or \
                os.path.getsize(f) > 1 << 20:
            return "skipped_special"
        size = os.path.getsize(f)
        how = rng.randrange(5)
        if how == 0:
            os.unlink(f)
        elif how == 1:
            os.truncate(f, rng.randrange(size))
        elif how == 2:
            os.truncate(f, size + rng.choice([1, 7, size, 1 << 20]))
        elif how == 3:
            shutil.copyfile(e0 if f == e1 else e1, f)  # the other epoch's records
        else:
            with open(f, "ab") as fh:
                fh.write(os.urandom(rng.randint(1, 64)))
        return f"epochfile_{how}"
    L = _C._store_layout(enc, K, C, 0)
    R = L["record_size"]
    f = rng.choice([e0, e1])
    if not _regular(f) or os.path.getsize(f) > 1 << 20 or os.path.getsize(f) < 6 * R:
        return "skipped_special"
    if r < 0.78:
        data = bytearray(open(f, "rb").read())
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        open(f, "wb").write(bytes(data))
        return "bitflip"
    if r < 0.92:
        e = rng.randrange(2)
        sample = rng.randrange(6)
        body, kind = _bad_body(rng, L, enc, K, C)
        f = [e0, e1][e]
        if not _regular(f) or os.path.getsize(f) < 6 * R:
            return "skipped_special"
        _forge(f, sample, e, body, L, int(m["store_id"], 16), enc, K, C)
        findings_expected.add((e, sample))
        return f"forged_{kind}"
    data = bytearray(open(f, "rb").read())
    a, b = rng.randrange(6), rng.randrange(6)
    how = rng.randrange(3)
    if how == 0:
        data[a * R:(a + 1) * R] = bytes(R)
    elif how == 1:
        data[a * R:(a + 1) * R] = data[b * R:(b + 1) * R]
    else:
        m["store_id"] = "%016x" % rng.getrandbits(64)
        _write(mp, json.dumps(m))
    open(f, "wb").write(bytes(data))
    return f"record_{how}"


def _cli(cmd, d):
    from tinyvit.cli import store as cli
    ns = argparse.Namespace(store=d, epoch=None, chunk=1 << 16, no_progress=True, records=3)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = (cli.cmd_inspect if cmd == "inspect" else cli.cmd_verify)(ns)
    return rc, buf.getvalue()


def run_case(i, seed, base, templates):
    """One case; returns (mutations, problems: list of (category, text))."""
    from tinyvit import LogitStore
    from tinyvit.errors import StoreError
    rng = random.Random(seed * 1_000_003 + i)
    tdir, C, K, enc, expected = templates[rng.randrange(len(templates))]
    d = os.path.join(base, f"case_{i}")
    shutil.copytree(tdir, d)
    problems = []
    forged = set()
    names = [_mutate(rng, d, tdir, C, K, enc, forged) for _ in range(rng.choice([1, 1, 2]))]

    def untyped(what, ex):
        problems.append(("untyped", f"{what}: {type(ex).__name__}: {str(ex)[:200]}"))

    ok_api = None
    try:
        st = LogitStore.open(d, mode="r")
    except StoreError:
        st = None
        ok_api = False
    except Exception as ex:  # noqa: BLE001 - the point of the campaign
        untyped("open", ex)
        st = None
    if st is not None:
        ok_api = True
        try:
            _ = (st.aug_fingerprint, st.manifest, repr(st), st.nbytes)
            st.disk_usage()
        except StoreError:
            pass
        except Exception as ex:  # noqa: BLE001
            untyped("properties", ex)
        n = st.num_samples
        for e in range(min(st.epochs, 3)):
            readable = set()
            try:
                miss = set(st.missing(e).tolist())
            except StoreError:
                miss = None
                ok_api = False
            except Exception as ex:  # noqa: BLE001
                untyped(f"missing({e})", ex)
                miss = None
            for s in range(min(n, 8)):
                try:
                    sd, ix, p = st.read(e, [s])
                    got = (int(sd[0]), ix[0].tolist(), p[0].tolist())
                    readable.add(s)
                    if expected.get((e, s)) != got:
                        problems.append(("wrong", f"read({e}, {s}) returned {got}, pristine "
                                                  f"{expected.get((e, s))}"))
                except StoreError:
                    pass
                except Exception as ex:  # noqa: BLE001
                    untyped(f"read({e}, {s})", ex)
            if miss is not None and n <= 8:
                if readable != set(range(n)) - miss:
                    problems.append(("wrong", f"epoch {e}: read ok for {sorted(readable)} but "
                                              f"missing() = {sorted(miss)}"))
                if miss:
                    ok_api = False
                try:
                    a = st.audit(e)
                    if a["ok"] != n - len(miss):
                        problems.append(("wrong", f"epoch {e}: audit ok {a['ok']} != "
                                                  f"{n - len(miss)} valid records"))
                except StoreError:
                    ok_api = False
                except Exception as ex:  # noqa: BLE001
                    untyped(f"audit({e})", ex)
            try:
                st.read(e, list(range(min(n, 8))))
            except StoreError:
                pass
            except Exception as ex:  # noqa: BLE001
                untyped(f"read({e}, batch)", ex)
        for (e, s) in forged:
            if e < min(st.epochs, 3) and s < min(n, 8):
                try:
                    st.read(e, [s])
                    problems.append(("wrong", f"forged record ({e}, {s}) accepted"))
                except StoreError:
                    pass
                except Exception as ex:  # noqa: BLE001
                    untyped("forged read", ex)
        if st.epochs > 3 or st.num_samples > 8:
            ok_api = None  # not fully checked through the API: only compare the two CLIs
        st.close()
    rcs = {}
    for cmd in ("inspect", "verify"):
        try:
            rc, out = _cli(cmd, d)
            rcs[cmd] = rc
            if out.count("\n") > 200 or len(out) > 200_000:
                problems.append(("wrong", f"{cmd}: unbounded output ({out.count(chr(10))} lines)"))
            if "Traceback" in out:
                problems.append(("untyped", f"{cmd}: traceback in output"))
        except Exception as ex:  # noqa: BLE001
            untyped(cmd, ex)
    if len(rcs) == 2:
        if rcs["inspect"] != rcs["verify"]:
            problems.append(("wrong", f"inspect exit {rcs['inspect']} != verify exit "
                                      f"{rcs['verify']}"))
        if ok_api is True and rcs["verify"] != 0:
            problems.append(("wrong", f"verify exit {rcs['verify']} on a store the API reads "
                                      "completely"))
        if ok_api is False and rcs["verify"] == 0:
            problems.append(("wrong", "verify exit 0 on a store with API errors"))
    shutil.rmtree(d, ignore_errors=True)
    return names, problems


# The worker: benchmarks/_bounded.py runs every case in one spawned process, bounded to
# wall_s seconds and mem_mb MiB of peak-RSS growth (RLIMIT_AS), restarted after a death.
_W = {}


def setup():
    """In the worker, once: the pristine templates, built in the campaign's base directory."""
    base = os.environ["FUZZ_STORE_DIR"]
    _W.update(base=base, templates=_templates(os.path.join(base, f"tpl_{os.getpid()}")))


def bounded_case(case):
    """(i, seed) -> (mutation names, problems); exceptions escaping are the harness's untyped."""
    i, seed = case
    return run_case(i, seed, _W["base"], _W["templates"])


# ---- driver -----------------------------------------------------------------------------------
def run(cases=10000, seed=0, timeout=None, base=None, batch=None, log=print, wall_s=2.0, mem_mb=256):
    """``timeout``: seconds before a case is killed as a hang (default: the harness's
    max(10, 5 * wall_s)); ``batch`` is accepted for old callers and unused (one worker,
    restarted only after a death)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _bounded import BoundedWorker

    own = base is None
    base = base or tempfile.mkdtemp(prefix="tv_fuzz_", dir="/dev/shm" if os.path.isdir(
        "/dev/shm") else None)
    os.environ["FUZZ_STORE_DIR"] = base
    counts = dict.fromkeys(CATEGORIES, 0)
    examples = {c: [] for c in CATEGORIES}
    mutations, failed_cases = {}, 0
    t0 = time.time()
    done = 0
    worst = {"case_s": 0.0, "peak_mb": 0.0}  # the slowest case and the largest peak-RSS growth
    try:
        with BoundedWorker("fuzz_store:bounded_case", setup="fuzz_store:setup", wall_s=wall_s,
                           mem_mb=mem_mb, kill_s=timeout) as w:
            for i in range(cases):
                o = w.run((i, seed))
                worst["case_s"] = max(worst["case_s"], round(o.seconds, 3))
                if o.peak_mb == o.peak_mb:  # not nan
                    worst["peak_mb"] = max(worst["peak_mb"], round(o.peak_mb, 1))
                done += 1
                if o.status == "ok":
                    names, problems = o.verdict
                    for name in names:
                        key = name.split("+")[0]
                        mutations[key] = mutations.get(key, 0) + 1
                else:  # the harness's verdict: crash / hang / over_time / over_memory / untyped
                    problems = [(o.status, (o.detail or "")[-500:])]
                    shutil.rmtree(os.path.join(base, f"case_{i}"), ignore_errors=True)
                failed_cases += bool(problems)
                for cat, text in problems:
                    counts[cat] += 1
                    if len(examples[cat]) < 10:
                        examples[cat].append(f"case {i}: {text}")
                if done % 500 == 0:
                    log(f"  {done}/{cases} cases, {time.time() - t0:.0f} s, {counts}")
            restarts = w.restarts
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
    return {"cases": done, "seed": seed, "seconds": round(time.time() - t0, 1),
            "worst": worst, "bounds": {"wall_s": wall_s, "mem_mb": mem_mb, "worker_restarts": restarts},
            "counts": counts, "failed_cases": failed_cases, "examples": examples,
            "mutations": dict(sorted(mutations.items()))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds before a case is killed as a hang (default: 5 x --wall-s, >= 10)")
    ap.add_argument("--wall-s", type=float, default=2.0, help="per-case wall-time bound (over: a failure)")
    ap.add_argument("--mem-mb", type=int, default=256, help="per-case peak-RSS growth bound (over: a failure)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "fuzz_store.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import finish_facts, machine_facts, write_json  # noqa: E402
    facts = machine_facts()
    res = run(args.cases, args.seed, args.timeout, wall_s=args.wall_s, mem_mb=args.mem_mb)
    res["machine"] = finish_facts(facts)
    print(f"{'category':12s} {'count':>7s}")
    for c in CATEGORIES:
        print(f"{c:12s} {res['counts'][c]:7d}")
    print(f"cases {res['cases']} in {res['seconds']} s; mutation kinds {len(res['mutations'])}")
    write_json(args.out, res)
    print(f"wrote {args.out}")
    return 0 if not any(res["counts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
