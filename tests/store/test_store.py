"""Tests of tinyvit.LogitStore: round trips, concurrency, crash/resume, typed errors, CLI, fuzz."""
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import tinyvit
from tinyvit import LogitStore, _C
from tinyvit import store as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def expected(samples, C, K):
    """Deterministic content of sample s (for the multi-process tests): any writer rebuilds it."""
    s = torch.as_tensor(samples, dtype=torch.int64)
    idx = (s[:, None] * 7919 + torch.arange(K) * 13) % C
    w = 0.5 ** torch.arange(1, K + 1, dtype=torch.float64)
    probs = (w[None, :] * (0.5 + (s[:, None] % 7).double() / 14)).float()
    return (s * 2654435761) % (2 ** 32), idx, probs


# A writer process: writes the given samples (or what is missing) in small batches.
WRITER = r"""
import sys, time, torch
sys.path.insert(0, {root!r})
from tinyvit import LogitStore
sys.path.insert(0, {tests!r})
from test_store import expected
path, epoch, part, nparts, delay, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1"
s = LogitStore.open(path, mode="r+")
todo = torch.from_numpy(s.missing(epoch)) if resume else torch.arange(s.num_samples)
todo = todo[todo % nparts == part]  # partition by sample: disjoint and stable
for a in range(0, len(todo), 16):
    b = todo[a:a + 16]
    seeds, idx, probs = expected(b, s.num_classes, s.topk)
    s.write(epoch, b, seeds, idx, probs)
    if delay:
        time.sleep(delay)
s.close()
print("done", len(todo))
"""


def run_writer(path, epoch, part, nparts, delay=0.0, resume=False):
    code = WRITER.format(root=ROOT, tests=os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen([sys.executable, "-c", code, str(path), str(epoch), str(part),
                             str(nparts), str(delay), "1" if resume else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def check_epoch_content(store, epoch, samples):
    seeds, idx, probs = store.read(epoch, samples)
    es, ei, ep = expected(samples, store.num_classes, store.topk)
    assert torch.equal(seeds, es)
    assert torch.equal(idx, ei)
    ref = torch.from_numpy(ep.numpy().astype(np.float16).astype(np.float32))
    assert torch.equal(probs, ref)


def fp16_reference(v):
    return torch.from_numpy(v.numpy().astype(np.float16).astype(np.float32))


# ---- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["fp16", "compact"])
@pytest.mark.parametrize("C", [1000, 21841, 70000])
def test_round_trip(teacher_topk, tmp_path, encoding, C):
    N, K = 48, 100
    s = LogitStore.create(tmp_path / "s", N, C, K, aug_fingerprint="aug1", teacher="t",
                          value_encoding=encoding, epochs=2)
    assert s.index_dtype == ("uint16" if C <= 65535 else "int32")
    seeds, idx, v = teacher_topk(N, C, K, seed=C)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    s.write(1, perm, seeds[perm], idx[perm], v[perm])
    s.close()
    r = LogitStore.open(tmp_path / "s", aug_fingerprint="aug1")
    q = torch.tensor([5, 0, 47, 5, 13])  # random order, repeats allowed
    rs, ri, rp = r.read(1, q)
    assert rs.dtype == torch.int64 and ri.dtype == torch.int64 and rp.dtype == torch.float32
    assert torch.equal(rs, seeds[q]) and torch.equal(ri, idx[q])
    if encoding == "fp16":
        assert torch.equal(rp, fp16_reference(v[q]))  # bit-exact IEEE RNE
    else:
        p = v[q].double()
        inr = p >= 4.2e-7
        ratio = rp.double()[inr] / p[inr]
        assert ratio.max() <= 2 ** (1 / 12) + 1e-6 and ratio.min() >= 2 ** (-1 / 12) - 1e-6
        assert (rp.double()[~inr] < 4.2e-7).all()
        assert (rp.double().sum(1) <= p.sum(1) * (1 + 1e-6)).all()
    assert r.missing(1).size == 0 and r.missing(0).size == N
    expect_size = {("fp16", 2): 408, ("fp16", 4): 608, ("compact", 2): 257, ("compact", 4): 457}
    assert r.record_size == expect_size[(encoding, 2 if C <= 65535 else 4)]
    assert r.nbytes == 2 * N * r.record_size


def test_compact_budget_and_unsorted_input(teacher_topk, tmp_path):
    assert _C._store_layout("compact", 100, 65535)["record_size"] <= 4 + 3 * 100
    s = LogitStore.create(tmp_path / "s", 4, 1000, 10, aug_fingerprint=None,
                          value_encoding="compact")
    seeds, idx, v = teacher_topk(4, 1000, 10, seed=3)
    perm = torch.randperm(10)
    s.write(0, torch.arange(4), seeds, idx[:, perm], v[:, perm])  # unsorted: stored sorted
    _, ri, rp = s.read(0, torch.arange(4))
    assert torch.equal(ri, idx)
    assert (rp[:, :-1] >= rp[:, 1:]).all()


def test_portable_and_fast_paths_agree(teacher_topk, tmp_path):
    seeds, idx, v = teacher_topk(16, 21841, 100, seed=9)
    outs = []
    for isa in ("portable", "auto"):
        _C._store_set_isa(isa)
        try:
            for enc in ("fp16", "compact"):
                s = LogitStore.create(tmp_path / f"{isa}{enc}", 16, 21841, 100,
                                      aug_fingerprint="a", value_encoding=enc)
                s._store_id = 42  # same id -> same bytes
                s._files.clear()
                s.write(0, torch.arange(16), seeds, idx, v)
                outs.append((s.raw_record(0, 3), s.read(0, torch.arange(16))))
        finally:
            _C._store_set_isa("auto")
    for a, b in ((0, 2), (1, 3)):
        assert outs[a][0] == outs[b][0]
        for x, y in zip(outs[a][1], outs[b][1]):
            assert torch.equal(x, y)


def test_record_check_matches_documented_spec(teacher_topk, tmp_path):
    """Recompute a record's check from the docs/store.md description (independent of the C++ code)."""
    s = LogitStore.create(tmp_path / "s", 8, 21841, 5, aug_fingerprint="a")
    seeds, idx, v = teacher_topk(8, 21841, 5, seed=2)
    s.write(3 if s.epochs > 3 else 0, torch.arange(8), seeds, idx, v)
    rec = s.raw_record(0, 6)
    sid = int(s.manifest["store_id"], 16)
    prefix = b"TVLS" + bytes([1, 1, 2, 0]) + struct.pack("<IIQ", 5, 21841, sid)
    c = _C._store_crc32c(prefix, 0xFFFFFFFF)
    c = _C._store_crc32c(struct.pack("<QQ", 0, 6) + rec[:-4], c)
    check = (~c) & 0xFFFFFFFF or 1
    assert struct.unpack("<I", rec[-4:])[0] == check
    # seed, then K uint16 indices, then K fp16 values
    assert struct.unpack("<I", rec[:4])[0] == int(seeds[6])
    assert list(struct.unpack("<5H", rec[4:14])) == idx[6].tolist()
    assert np.array_equal(np.frombuffer(rec[14:24], "<f2"), v[6].numpy().astype(np.float16))


def test_read_out_pinned_and_preallocated(teacher_topk, tmp_path):
    s = LogitStore.create(tmp_path / "s", 10, 1000, 8, aug_fingerprint="a")
    seeds, idx, v = teacher_topk(10, 1000, 8, seed=4)
    s.write(0, torch.arange(10), seeds, idx, v)
    out = (torch.empty(3, dtype=torch.int64), torch.empty(3, 8, dtype=torch.int64),
           torch.empty(3, 8))
    r = s.read(0, np.array([9, 2, 2]), out=out)
    assert r[0] is out[0] and torch.equal(out[1], idx[[9, 2, 2]])
    r = s.read(0, [1, 2], pin_memory=True)
    assert torch.equal(r[1], idx[[1, 2]])
    with pytest.raises(tinyvit.errors.ShapeMismatchError, match="out indices"):
        s.read(0, [1, 2, 3], out=(out[0], torch.empty(3, 7, dtype=torch.int64), out[2]))
    with pytest.raises(tinyvit.errors.ShapeMismatchError, match="dtype"):
        s.read(0, [1, 2, 3], out=(out[0], out[1], torch.empty(3, 8, dtype=torch.float64)))


# ---- multi-process writers, crash and resume ------------------------------------------------
def test_concurrent_writers(tmp_path):
    N = 3000
    s = LogitStore.create(tmp_path / "s", N, 1000, 10, aug_fingerprint="a", epochs=1)
    procs = [run_writer(tmp_path / "s", 0, p, 4) for p in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert s.missing(0).size == 0
    check_epoch_content(s, 0, torch.arange(N))
    assert s.audit(0)["ok"] == N


def test_sigkill_mid_epoch_then_resume(tmp_path):
    N = 6000
    path = tmp_path / "s"
    LogitStore.create(path, N, 1000, 10, aug_fingerprint="a", epochs=1).close()
    w = run_writer(path, 0, 0, 1, delay=0.004)
    reader = LogitStore.open(path, mode="r")  # another process, opened while the writer runs
    deadline = time.time() + 60
    while True:
        done = N - reader.missing(0).size
        if done >= 800 or time.time() > deadline:
            break
        time.sleep(0.02)
    # Concurrent read of what is verified so far, while the writer keeps writing.
    miss = set(reader.missing(0).tolist())
    ok = torch.tensor([i for i in range(N) if i not in miss][:500])
    check_epoch_content(reader, 0, ok)
    os.kill(w.pid, signal.SIGKILL)
    w.wait()
    assert w.returncode == -signal.SIGKILL
    miss = reader.missing(0)
    assert 0 < miss.size < N - 500  # killed mid-epoch, earlier records kept
    done = np.setdiff1d(np.arange(N), miss)
    check_epoch_content(reader, 0, torch.from_numpy(done))
    # Simulate a torn record at the kill point: half a record of bytes at a missing slot.
    torn = int(miss[0])
    full = LogitStore.open(path, mode="r+")
    es, ei, ep = expected([torn], 1000, 10)
    full.write(0, [torn], es, ei, ep)
    rec = full.raw_record(0, torn)
    full.close()
    with open(path / "epoch_00000.bin", "r+b") as f:
        f.seek(torn * len(rec))
        f.write(b"\0" * len(rec))
        f.seek(torn * len(rec))
        f.write(rec[: len(rec) // 2])
    assert torn in reader.missing(0)
    with pytest.raises(tinyvit.errors.ChecksumError, match=f"sample {torn}"):
        reader.read(0, [torn])
    # Resume with two writers over exactly the missing records.
    before = reader.missing(0)
    procs = [run_writer(path, 0, p, 2, resume=True) for p in range(2)]
    written = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        written += int(out.split()[-1])
    assert written == before.size  # exactly the missing ones were rewritten
    assert reader.missing(0).size == 0
    check_epoch_content(reader, 0, torch.arange(N))
    assert reader.audit(0)["ok"] == N


def test_create_exist_ok_from_many_processes(tmp_path):
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); from tinyvit import LogitStore; "
            f"s = LogitStore.create({str(tmp_path / 's')!r}, 100, 50, 5, aug_fingerprint='x', "
            f"epochs=3, exist_ok=True); print(s.manifest['store_id'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    ids = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        ids.add(out.decode().strip())
    assert len(ids) == 1  # one store, whoever won the race
    assert not [f for f in os.listdir(tmp_path / "s") if f.endswith(".tmp")]


# ---- typed errors --------------------------------------------------------------------------
def test_error_hierarchy():
    for name in st.__all__:
        obj = getattr(st, name)
        if isinstance(obj, type) and name != "LogitStore":
            assert issubclass(obj, tinyvit.errors.StoreError), name
            assert getattr(tinyvit.errors, name) is obj


def test_errors_manifest(small_store):
    m = small_store / "manifest.json"
    good = m.read_text()
    m.write_text("{not json")
    with pytest.raises(st.ManifestError, match="manifest.json.*not valid JSON"):
        LogitStore.open(small_store)
    d = json.loads(good)
    d["format_version"] = 99
    m.write_text(json.dumps(d))
    with pytest.raises(st.FormatVersionError, match="format_version"):
        LogitStore.open(small_store)
    for field, value in (("topk", "4"), ("num_samples", None), ("record_size", 407),
                         ("index_dtype", "int32"), ("store_id", "xyz")):
        d = json.loads(good)
        d[field] = value
        m.write_text(json.dumps(d))
        with pytest.raises(st.ManifestError, match=field):
            LogitStore.open(small_store)
    m.unlink()
    with pytest.raises(st.ManifestError, match="manifest missing"):
        LogitStore.open(small_store)


def test_errors_files_and_records(small_store):
    s = LogitStore.open(small_store, mode="r")
    with pytest.raises(st.RecordMissingError, match=r"epoch_00000.bin \(epoch 0\): sample 15"):
        s.read(0, [1, 15])
    with pytest.raises(st.SampleIndexError, match="sample_indices"):
        s.read(0, [20])
    with pytest.raises(st.SampleIndexError):
        s.read(0, [-1])
    with pytest.raises(st.EpochMissingError, match="epoch 2"):
        s.read(2, [0])
    with pytest.raises(st.ReadOnlyError):
        s.write(0, [0], [0], [[0, 1, 2, 3]], [[0.1] * 4])
    s.close()
    # Corrupt one byte of record 3: ChecksumError naming epoch and sample.
    f0 = small_store / "epoch_00000.bin"
    data = bytearray(f0.read_bytes())
    R = len(data) // 20
    data[3 * R + 5] ^= 0x40
    f0.write_bytes(bytes(data))
    with pytest.raises(st.ChecksumError, match=r"\(epoch 0\): sample 3"):
        LogitStore.open(small_store).read(0, [3])
    # Record copied to another slot does not verify there.
    data[4 * R:5 * R] = data[6 * R:7 * R]
    f0.write_bytes(bytes(data))
    with pytest.raises(st.ChecksumError, match="sample 4"):
        LogitStore.open(small_store).read(0, [4])
    os.truncate(f0, len(data) - 1)
    with pytest.raises(st.TruncatedFileError, match="epoch_00000.bin.*file size"):
        LogitStore.open(small_store).read(0, [0])
    with open(f0, "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(st.FileSizeError, match="expected"):
        LogitStore.open(small_store).read(0, [0])
    os.unlink(small_store / "epoch_00001.bin")
    with pytest.raises(st.EpochMissingError, match="epoch_00001.bin"):
        LogitStore.open(small_store).missing(1)
    os.mkdir(small_store / "epoch_00001.bin")  # not a regular file: an OS-level failure
    with pytest.raises(st.StoreIOError, match="epoch_00001.bin"):
        LogitStore.open(small_store).missing(1)


def test_errors_write(small_store):
    s = LogitStore.open(small_store, mode="r+")
    ok_idx, ok_p = [[0, 1, 2, 3]], [[0.4, 0.3, 0.2, 0.1]]
    with pytest.raises(st.ShapeMismatchError, match="topk_indices.*K = 4"):
        s.write(0, [0], [1], [[0, 1, 2]], [[0.1] * 3])
    with pytest.raises(st.ShapeMismatchError, match="topk_probs"):
        s.write(0, [0, 1], [1, 2], ok_idx * 2, ok_p)
    with pytest.raises(st.ShapeMismatchError, match="num_classes=100"):
        s.write(0, [0], [1], [[0, 1, 2, 100]], ok_p)
    with pytest.raises(st.ShapeMismatchError, match="integers"):
        s.write(0, [0], [1], torch.tensor(ok_idx, dtype=torch.float32), ok_p)
    with pytest.raises(st.ShapeMismatchError, match="floating"):
        s.write(0, [0], [1], ok_idx, torch.tensor([[1, 0, 0, 0]]))
    with pytest.raises(st.InvalidRecordError, match="repeated"):
        s.write(0, [0], [1], [[0, 1, 1, 3]], ok_p)
    with pytest.raises(st.InvalidRecordError, match="outside \\[0, 1\\]"):
        s.write(0, [0], [1], ok_idx, [[1.5, 0, 0, 0]])
    with pytest.raises(st.InvalidRecordError, match="sum"):
        s.write(0, [0], [1], ok_idx, [[0.6, 0.5, 0, 0]])
    with pytest.raises(st.InvalidRecordError, match="seed"):
        s.write(0, [0], [2 ** 32], ok_idx, ok_p)
    with pytest.raises(st.SampleIndexError):
        s.write(0, [20], [1], ok_idx, ok_p)
    # A refused batch writes nothing, not even its valid records.
    before = s.raw_record(0, 11)
    with pytest.raises(st.InvalidRecordError, match="batch position 1"):
        s.write(0, [11, 12], [1, 2], ok_idx * 2, [ok_p[0], [2.0, 0, 0, 0]])
    assert s.raw_record(0, 11) == before
    with pytest.raises(st.StoreExistsError):
        LogitStore.create(small_store, 20, 100, 4, aug_fingerprint="aug", epochs=2)
    with pytest.raises(st.ManifestError, match="topk"):
        LogitStore.create(small_store, 20, 100, 5, aug_fingerprint="aug", epochs=2, exist_ok=True)
    again = LogitStore.create(small_store, 20, 100, 4, aug_fingerprint="aug", epochs=2, exist_ok=True)
    assert again.missing(0).size == 10  # nothing already written was lost


def test_fingerprint_and_manifest_fields(small_store):
    with pytest.raises(st.FingerprintMismatchError, match="aug_fingerprint.*'other'"):
        LogitStore.open(small_store, aug_fingerprint="other")
    s = LogitStore.open(small_store, aug_fingerprint="aug")
    m = s.manifest
    assert m["num_samples"] == 20 and m["num_classes"] == 100 and m["topk"] == 4
    assert m["index_dtype"] == "uint16" and m["value_encoding"] == "fp16"
    assert m["teacher"] is None and m["meta"] == {"note": 1} and m["epochs"] == 2
    assert m["record_size"] == 4 + 4 * 4 + 4
    s2 = LogitStore.open(small_store, mode="r+")
    s2.add_epochs(1)
    assert LogitStore.open(small_store).epochs == 3 and LogitStore.open(small_store).missing(2).size == 20
    import pickle
    s3 = pickle.loads(pickle.dumps(s))
    assert torch.equal(s3.read(0, [1])[1], s.read(0, [1])[1])


# ---- CLI -----------------------------------------------------------------------------------
def cli(*args, run_cli=None):
    """(exit code, stdout + stderr) of the CLI: in-process when run_cli (the fixture) is given
    (fast), else as `python -m tinyvit.cli`."""
    if run_cli is not None:
        code, out, err = run_cli(*args)
        return code, out + err
    p = subprocess.run([sys.executable, "-m", "tinyvit", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_cli(teacher_topk, small_store, tmp_path, run_cli):
    code, out = cli("verify", "--help")
    assert code == 0 and "exit status" in out and "checksum" in out
    code, out = cli("inspect", small_store, "--no-progress", run_cli=run_cli)
    assert code == 1 and "incomplete" in out and "sample 0: seed" in out
    code, out = cli("verify", small_store, "--no-progress", run_cli=run_cli)
    assert code == 1 and "missing 10" in out
    # Complete store: exit 0.
    s = LogitStore.open(small_store, mode="r+")
    seeds, idx, v = teacher_topk(20, 100, 4, seed=6)
    for e in range(2):
        s.write(e, torch.arange(20), seeds, idx, v)
    s.close()
    code, out = cli("verify", small_store)
    assert code == 0 and "all records verified" in out
    code, out = cli("inspect", small_store, run_cli=run_cli)
    assert code == 0 and "complete" in out
    code, out = cli("inspect", small_store, "--epoch", "1", "--records", "0", run_cli=run_cli)
    assert code == 0 and "100.00%" in out and "\n    0 " not in out
    # A corrupted record: nonzero exit, the sample named.
    f0 = small_store / "epoch_00001.bin"
    data = bytearray(f0.read_bytes())
    data[len(data) // 20 * 7 + 2] ^= 1
    f0.write_bytes(bytes(data))
    code, out = cli("verify", small_store, "--no-progress", run_cli=run_cli)
    assert code == 1 and "bad_checksum 1" in out and "sample 7" in out
    code, out = cli("verify", tmp_path / "nothing", run_cli=run_cli)
    assert code == 2 and "ManifestError" in out


def test_verify_content_findings(tmp_path, run_cli):
    """Records with valid checks but bad content (crafted): verify reports each finding."""
    s = LogitStore.create(tmp_path / "s", 3, 100, 3, aug_fingerprint="a")
    s.write(0, [0, 1, 2], [1, 2, 3], [[1, 2, 3]] * 3, [[0.5, 0.2, 0.1]] * 3)
    sid = int(s.manifest["store_id"], 16)
    path = tmp_path / "s" / "epoch_00000.bin"
    data = bytearray(path.read_bytes())
    R = s.record_size

    def forge(sample, idx, vals):
        body = struct.pack("<I3H", 9, *idx) + np.asarray(vals, "<f2").tobytes()
        prefix = b"TVLS" + bytes([1, 1, 2, 0]) + struct.pack("<IIQ", 3, 100, sid)
        c = _C._store_crc32c(struct.pack("<QQ", 0, sample) + body,
                             _C._store_crc32c(prefix, 0xFFFFFFFF))
        data[sample * R:(sample + 1) * R] = body + struct.pack("<I", (~c) & 0xFFFFFFFF or 1)

    forge(0, [1, 1, 2], [0.1, 0.1, 0.1])  # duplicate class
    forge(1, [1, 2, 3], [0.9, 0.9, 0.1])  # sum > 1
    forge(2, [1, 2, 3], [-0.1, 0.2, 0.1])  # negative prob
    path.write_bytes(bytes(data))
    a = LogitStore.open(tmp_path / "s").audit(0)
    assert (a["duplicate_index"], a["prob_sum"], a["prob_range"], a["ok"]) == (1, 1, 1, 0)
    code, out = cli("verify", tmp_path / "s", "--no-progress", run_cli=run_cli)
    assert code == 1 and "duplicate_index 1" in out


# ---- fuzz ----------------------------------------------------------------------------------
FUZZ = r"""
import json, os, random, struct, sys, shutil, tempfile
sys.path.insert(0, {root!r})
import numpy as np, torch
from tinyvit import LogitStore, _C
from tinyvit.errors import StoreError
rng = random.Random(int(sys.argv[1]))
base = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
n_cases = int(sys.argv[2])
counts = {{}}
vals = [0, 1, -1, 2, 3, 7, 100, 255, 256, 65535, 65536, 70000, 2**31, 2**32, 2**48 + 1, 2**63,
        10**30, 0.5, "1", None, [], {{}}, True, "fp16", "compact", "uint16", "int32", "zz"]
def mutate_manifest(m):
    m = dict(m)
    for _ in range(rng.randint(1, 3)):
        k = rng.choice(list(m) + ["extra"])
        r = rng.random()
        if r < 0.2:
            m.pop(k, None)
        elif r < 0.6:
            m[k] = rng.choice(vals)
        elif isinstance(m.get(k), int):
            m[k] = m[k] + rng.choice([-1, 1, 2, -2, 1000])
        else:
            m[k] = rng.choice(vals)
    return m
for case in range(n_cases):
    d = os.path.join(base, str(case))
    enc = rng.choice(["fp16", "compact"])
    C = rng.choice([5, 100, 1000, 65535, 65536, 70000])
    K = rng.randint(1, min(C, 12))
    N = rng.randint(1, 40)
    s = LogitStore.create(d, N, C, K, aug_fingerprint="a", value_encoding=enc, epochs=2)
    g = np.random.default_rng(case)
    k = rng.randint(0, N)
    if k:
        idx = np.stack([g.choice(C, K, replace=False) for _ in range(k)])
        pr = -np.sort(-g.dirichlet(np.ones(K + 1), size=k)[:, :K].astype(np.float32), axis=1)
        s.write(0, g.permutation(N)[:k], g.integers(0, 2**32, k), idx, pr)
    s.close()
    m = json.load(open(os.path.join(d, "manifest.json")))
    kind = rng.random()
    f0 = os.path.join(d, "epoch_00000.bin")
    if kind < 0.35:
        m = mutate_manifest(m)
        json.dump(m, open(os.path.join(d, "manifest.json"), "w"))
    elif kind < 0.45:
        raw = open(os.path.join(d, "manifest.json"), "rb").read()
        cut = rng.randint(0, len(raw))
        open(os.path.join(d, "manifest.json"), "wb").write(raw[:cut] + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 5))))
    elif kind < 0.6:
        size = os.path.getsize(f0)
        os.truncate(f0, rng.choice([0, 1, size - 1, size + 1, size * 2, max(0, size - rng.randint(1, 100))]))
    elif kind < 0.9:
        data = bytearray(open(f0, "rb").read())
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(data))
            data[i] = rng.getrandbits(8)
        if rng.random() < 0.5:
            # Forge valid checks over garbage bodies so the decoder's content checks run.
            R = len(data) // N
            sid = int(m["store_id"], 16)
            w = 2 if C <= 65535 else 4
            prefix = b"TVLS" + bytes([1, 1 if enc == "fp16" else 2, w, 0]) + struct.pack("<IIQ", K, C, sid)
            cb = _C._store_crc32c(prefix, 0xFFFFFFFF)
            for smp in range(N):
                if rng.random() < 0.5:
                    body = bytes(rng.getrandbits(8) for _ in range(R - 4))
                    c = _C._store_crc32c(struct.pack("<QQ", 0, smp) + body, cb)
                    data[smp * R:(smp + 1) * R] = body + struct.pack("<I", (~c) & 0xFFFFFFFF or 1)
        open(f0, "wb").write(bytes(data))
    else:
        os.unlink(f0) if rng.random() < 0.5 else None
    try:
        st = LogitStore.open(d, mode=rng.choice(["r", "r+"]))
        for e in (0, 1, 2):
            try:
                st.missing(e)
                st.audit(e)
            except StoreError:
                pass
            for _ in range(3):
                q = [rng.randint(-2, N + 2) for _ in range(rng.randint(1, 6))]
                try:
                    sd, ix, pr = st.read(e, q)
                    assert ((ix >= 0) & (ix < st.num_classes)).all()
                except StoreError as ex:
                    counts[type(ex).__name__] = counts.get(type(ex).__name__, 0) + 1
        counts["opened"] = counts.get("opened", 0) + 1
    except StoreError as ex:
        counts[type(ex).__name__] = counts.get(type(ex).__name__, 0) + 1
    shutil.rmtree(d)
print(json.dumps(counts))
"""


def test_fuzz_open_and_read(tmp_path):
    code = FUZZ.format(root=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(seed), "1000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for seed in (1, 2)]
    totals = {}
    for p in procs:
        out, err = p.communicate(timeout=300)
        # A crash (segfault, bus error) or any non-StoreError exception fails here.
        assert p.returncode == 0, err.decode()[-3000:]
        for k, v in json.loads(out.decode().strip().splitlines()[-1]).items():
            totals[k] = totals.get(k, 0) + v
    for kind in ("ManifestError", "ChecksumError", "RecordMissingError", "SampleIndexError",
                 "TruncatedFileError", "FileSizeError", "EpochMissingError",
                 "CorruptRecordError", "opened"):
        assert totals.get(kind, 0) > 0, (kind, totals)
