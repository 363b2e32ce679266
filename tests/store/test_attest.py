"""Replay attestation: a store records the teacher's replayed pixels of a few samples per
epoch and the pipeline identity; opening it for training on a machine (or with data)
that would show the student other pixels is refused with ReplayMismatchError."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import tinyvit
from tinyvit.jobs.save_logits import open_or_create_store, save_logits
from tinyvit.data import attest

CFG = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ppm(rng, w, h):
    return f"P6\n{w} {h}\n255\n".encode() + rng.integers(0, 256, (h, w, 3), np.uint8).tobytes()


def make_folder(root, n=12):
    """PPM files: a changed pixel keeps the byte size (and so the dataset fingerprint)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = os.path.join(root, f"c{i % 3}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:03d}.ppm"), "wb") as f:
            f.write(_ppm(rng, 18 + i % 4, 15 + i % 3))
    return root


def teacher():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(12, 3))


@pytest.fixture
def saved(tmp_path):
    root = make_folder(str(tmp_path / "data"))
    ds = tinyvit.ImageFolder(root)
    store = open_or_create_store(str(tmp_path / "store"), dataset=ds, cfg=CFG, num_classes=3,
                                 topk=2, epochs=2, base_seed=4, teacher_desc={"m": "t"})
    save_logits(teacher(), ds, store, CFG, epochs=range(2), batch_size=4, progress=False)
    store.close()
    return ds, str(tmp_path / "store")


def _doc(store_path):
    with open(os.path.join(store_path, attest.ATTEST_FILE)) as f:
        return json.load(f)


def _write(store_path, doc):
    with open(os.path.join(store_path, attest.ATTEST_FILE), "w") as f:
        json.dump(doc, f)


def test_saved_store_attests_every_epoch_and_opens(saved):
    ds, path = saved
    doc = _doc(path)
    assert sorted(doc["epochs"]) == ["0", "1"]
    ident = attest.pipeline_identity()
    store = tinyvit.LogitStore.open(path)
    for e in (0, 1):
        entry = doc["epochs"][str(e)]
        assert entry["identity"] == ident
        samples = [i for i, _, _ in entry["samples"]]
        assert samples == [0, 4, 7, 11]  # fixed: first, last and between
        # independent reference: the seeds the store holds, pixels from replay() one by one
        seeds = store.read(e, np.asarray(samples))[0].tolist()
        assert [s for _, s, _ in entry["samples"]] == seeds
        import hashlib

        for (i, s, d) in entry["samples"]:
            px = tinyvit.replay(ds[i], s, CFG)
            assert hashlib.sha256(px.tobytes()).hexdigest() == d
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tinyvit.DistillLoader(ds, store, CFG, batch_size=4, epoch=1)
    assert attest.check_replay(store, ds, CFG) == 2


def test_tampered_digest_is_refused(saved):
    ds, path = saved
    doc = _doc(path)
    i, s, d = doc["epochs"]["1"]["samples"][2]
    doc["epochs"]["1"]["samples"][2] = [i, s, ("0" if d[0] != "0" else "1") + d[1:]]
    _write(path, doc)
    tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)  # epoch 0 is intact
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match=r"epoch 1: sample 7: replayed pixels"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=1)
    assert issubclass(tinyvit.errors.ReplayMismatchError, tinyvit.errors.StoreError)


def test_other_decoder_identity_is_refused(saved, monkeypatch):
    ds, path = saved
    doc = _doc(path)
    doc["epochs"]["0"]["identity"]["jpeg"] = "libjpeg-turbo 9.9.9"
    _write(path, doc)
    with pytest.raises(tinyvit.errors.ReplayMismatchError,
                       match=r"epoch 0: pixel pipeline component 'jpeg'.*9\.9\.9"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)
    # the same from this side: a machine with another plan format
    _write(path, json.loads(json.dumps(doc).replace("9.9.9", "x")))
    real = attest.pipeline_identity()
    monkeypatch.setattr(attest, "pipeline_identity", lambda: dict(real, plan_format=99))
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="'plan_format'.*99"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=1)


def test_changed_dataset_file_with_same_size_is_refused(saved):
    ds, path = saved
    target = ds[4]  # an attested sample
    data = bytearray(open(target, "rb").read())
    head = len(b"P6\n") + data[3:].index(b"\n255\n") + 5
    data[head:] = bytes(255 - b for b in data[head:])  # inverted: same size and fingerprint
    with open(target, "wb") as f:
        f.write(bytes(data))
    ds2 = tinyvit.ImageFolder(os.path.dirname(os.path.dirname(target)), validate="full")
    assert ds2.fingerprint() == ds.fingerprint()
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 0: sample 4: replayed pixels"):
        tinyvit.DistillLoader(ds2, path, CFG, batch_size=4, epoch=0)


def test_old_store_without_attestation_opens_with_warning(saved):
    ds, path = saved
    os.unlink(os.path.join(path, attest.ATTEST_FILE))
    with pytest.warns(RuntimeWarning, match="no replay attestation"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)


def test_resaving_an_epoch_on_another_pipeline_is_refused(saved, monkeypatch):
    ds, path = saved
    store = tinyvit.LogitStore.open(path, mode="r+")
    attest.record_epoch(store, ds, CFG, 0)  # same machine: a no-op check
    real = attest.pipeline_identity()
    monkeypatch.setattr(attest, "pipeline_identity", lambda: dict(real, jpeg="libjpeg 80"))
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="'jpeg'"):
        attest.record_epoch(store, ds, CFG, 0)


def test_verify_cli_with_data(saved):
    ds, path = saved
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "tinyvit", "verify", path, "--data", ds.root, "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "replay: OK (2 attested epochs" in r.stdout
    doc = _doc(path)
    doc["epochs"]["1"]["identity"]["backend"] = "pil"
    _write(path, doc)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "ReplayMismatchError" in r.stdout and "'backend'" in r.stdout


FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


@pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_replay_never_touches_pillow(monkeypatch):
    """Why the attested identity leaves Pillow out: array sources (the Fashion-MNIST demo)
    are augmented in C++ only, so stock Pillow and pillow-simd give the same bytes. Every
    Pillow pixel operation is made to fail; replay 'auto' must still equal 'cpp'."""
    from PIL import Image

    ds = tinyvit.FashionMNIST(subset=48)
    cfg = tinyvit.AugConfig(img_size=32, mean=(0.286,) * 3, std=(0.353,) * 3)
    want = [tinyvit.replay(ds[i], 7 * i + 1, cfg, path="cpp") for i in range(len(ds))]

    def boom(*a, **k):
        raise AssertionError("Pillow pixel operation used on the C++ path")

    for name in ("resize", "transform", "transpose", "filter", "point", "rotate", "convert",
                 "crop", "paste"):
        monkeypatch.setattr(Image.Image, name, boom)
    monkeypatch.setattr(Image, "fromarray", boom)
    got = tinyvit.replay_batch([ds[i] for i in range(len(ds))], [7 * i + 1 for i in range(len(ds))],
                               cfg, num_threads=2).numpy()
    for i in range(len(ds)):
        np.testing.assert_array_equal(got[i], want[i])
        np.testing.assert_array_equal(tinyvit.replay(ds[i], 7 * i + 1, cfg), want[i])


# ---- issue #22: unattested epochs, malformed attest.json, file mode -----------------------------
def _change_sample0(ds, tmp_path):
    """A copy of the dataset whose attested sample 0 has other pixels, same size and fingerprint."""
    import shutil

    root = str(tmp_path / "changed")
    shutil.copytree(ds.root, root)
    p0 = os.path.join(root, os.path.relpath(ds[0], ds.root))
    data = bytearray(open(p0, "rb").read())
    data[-30:] = bytes(255 - b for b in data[-30:])
    open(p0, "wb").write(bytes(data))
    changed = tinyvit.ImageFolder(root, index=False)
    assert changed.fingerprint() == ds.fingerprint() and len(changed) == len(ds)
    return changed


def test_empty_or_missing_epoch_entries_are_refused_not_skipped(saved, tmp_path, run_cli):
    ds, path = saved
    changed = _change_sample0(ds, tmp_path)
    full = _doc(path)
    for doc, epoch in (({"version": 1, "epochs": {}}, 0),
                       ({"version": 1, "epochs": {"1": full["epochs"]["1"]}}, 0),
                       ({"version": 1, "epochs": {"0": full["epochs"]["0"]}}, 1)):
        _write(path, doc)
        for data in (ds, changed):  # refused before any pixel is compared: the entry is missing
            with pytest.raises(tinyvit.errors.ReplayMismatchError, match=f"epoch {epoch} has no replay attestation"):
                tinyvit.DistillLoader(data, path, CFG, batch_size=4, epoch=epoch)
        code, out, err = run_cli("verify", path, "--data", changed.root, "--no-progress")
        assert code == 1 and "replay: ReplayMismatchError" in out and "no replay attestation" in out, out
        assert "replay: OK" not in out and "Traceback" not in out + err
    _write(path, full)  # the intact attestation still catches the real change
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 0: sample 0: replayed pixels"):
        tinyvit.DistillLoader(changed, path, CFG, batch_size=4, epoch=0)


def test_an_epoch_without_attestation_is_refused_when_set_epoch_reaches_it(saved, tmp_path):
    # Built at epoch 0 (attested), the loader must still refuse epoch 1 once its entry is gone
    # -- through every route that moves the epoch -- and its batches must never be produced.
    ds, path = saved
    full = _doc(path)
    _write(path, {"version": 1, "epochs": {"0": full["epochs"]["0"]}})
    for route in ("loader", "sampler", "batch_sampler"):
        dl = tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)
        assert len(list(dl)) == 3  # epoch 0 is attested: served
        target = {"loader": dl, "sampler": dl.sampler, "batch_sampler": dl.batch_sampler}[route]
        with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 1 has no replay attestation"):
            target.set_epoch(1)
        assert dl.epoch == 0
    auto = tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)
    list(auto)
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 1 has no replay attestation"):
        list(auto)  # the auto-advanced second pass reads epoch 1
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 1 has no replay attestation"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0, epochs=2)  # up-front check


def _malformed(doc):
    """The defects of issue #22 (each gave a TypeError / ValueError / AttributeError /
    RecursionError traceback) and their neighbours: (name, bytes)."""
    import copy

    def m(fn):
        d = copy.deepcopy(doc)
        fn(d)
        return json.dumps(d).encode()

    s0 = lambda d: d["epochs"]["0"]["samples"]  # noqa: E731
    return [
        ("deep nesting", b"[" * 100000 + b"]" * 100000),
        ("deep inside", json.dumps(doc).replace('"samples": [', '"samples": [' + "[" * 5000, 1).encode()),
        ("identity string", m(lambda d: d["epochs"]["0"].__setitem__("identity", "cpp"))),
        ("int digest", m(lambda d: s0(d)[1].__setitem__(2, 12345))),
        ("samples []", m(lambda d: s0(d).clear())),
        ("sample -1", m(lambda d: s0(d)[0].__setitem__(0, -1))),
        ("a sample left out", m(lambda d: s0(d).pop(0))),
        ("seed >= 2^32", m(lambda d: s0(d)[0].__setitem__(1, 2 ** 32))),
        ("short digest", m(lambda d: s0(d)[0].__setitem__(2, s0(d)[0][2][:63]))),
        ("upper-case digest", m(lambda d: s0(d)[0].__setitem__(2, s0(d)[0][2].upper()))),
        ("epoch key 00", m(lambda d: d["epochs"].__setitem__("00", d["epochs"].pop("0")))),
        ("epoch beyond the store", m(lambda d: d["epochs"].__setitem__("5", d["epochs"]["0"]))),
        ("version true", m(lambda d: d.__setitem__("version", True))),
        ("unknown key", m(lambda d: d.__setitem__("extra", 1))),
        ("duplicate key", json.dumps(doc).replace("{", '{"version": 1, ', 1).encode()),
        ("NaN", json.dumps(doc).replace('"version": 1', '"version": NaN').encode()),
        ("invalid UTF-8", b"\xff" + json.dumps(doc).encode()),
        ("over the size cap", json.dumps(doc).encode() + b" " * (attest.MAX_BYTES + 1)),
        ("over this 2-epoch store's cap", json.dumps(doc).encode().ljust(4096 + 2 * attest.PER_EPOCH_BYTES + 1)),
        ("a list", b"[]"),
    ]


def test_malformed_attestation_is_one_typed_line_everywhere(saved):
    ds, path = saved
    good = _doc(path)
    store = tinyvit.LogitStore.open(path)
    for name, data in _malformed(good):
        with open(os.path.join(path, attest.ATTEST_FILE), "wb") as f:
            f.write(data)
        for call in (lambda: attest.load_attestation(store),
                     lambda: tinyvit.DistillLoader(ds, store, CFG, batch_size=4, epoch=0),
                     lambda: attest.record_epoch(store, ds, CFG, 0, new=False),
                     lambda: attest.record_epoch(store, ds, CFG, 1)):
            with pytest.raises(tinyvit.errors.ReplayMismatchError) as ei:
                call()
            msg = str(ei.value)
            assert "\n" not in msg and path in msg and attest.ATTEST_FILE in msg, (name, msg)
        assert open(os.path.join(path, attest.ATTEST_FILE), "rb").read() == data, name  # not rewritten
    os.unlink(os.path.join(path, attest.ATTEST_FILE))
    for kind in ("fifo", "dir"):  # a FIFO must not block the open
        (os.mkfifo if kind == "fifo" else os.mkdir)(os.path.join(path, attest.ATTEST_FILE))
        with pytest.raises(tinyvit.errors.ReplayMismatchError, match="not a regular file"):
            attest.load_attestation(store)
        (os.unlink if kind == "fifo" else os.rmdir)(os.path.join(path, attest.ATTEST_FILE))


@pytest.fixture
def cli_saved(tmp_path, run_cli):
    root = make_folder(str(tmp_path / "data"))
    store = str(tmp_path / "store")
    cmd = ["save-logits", store, "--data", root, "--model", "test_resnet", "--random-teacher", "--epochs", "1",
           "--topk", "2", "--img-size", "16", "--batch-size", "4", "--no-progress", "--device", "cpu"]
    code, out, err = run_cli(*cmd)
    assert code == 0, out + err
    return root, store, cmd


def test_malformed_attestation_through_verify_train_and_save_logits(cli_saved, run_cli):
    root, store, save_cmd = cli_saved
    good = _doc(store)
    train = ["train", "--distill", store, "--data", root, "--model", "test_resnet", "--epochs", "1",
             "--batch-size", "4", "--device", "cpu", "--no-progress"]
    for name, data in [c for c in _malformed(good) if c[0] in
                       ("deep nesting", "identity string", "int digest", "samples []", "sample -1")]:
        with open(os.path.join(store, attest.ATTEST_FILE), "wb") as f:
            f.write(data)
        code, out, err = run_cli("verify", store, "--data", root, "--no-progress")
        assert code == 1 and "Traceback" not in out + err, (name, out, err)
        assert [l for l in out.splitlines() if l.startswith("replay:")][0].startswith(
            "replay: ReplayMismatchError: "), (name, out)
        for cmd in (train, save_cmd):
            code, out, err = run_cli(*cmd)
            lines = [l for l in err.splitlines() if ": error: " in l]  # (save-logits notes a random teacher)
            assert code == 2 and len(lines) == 1 and "Traceback" not in err, (name, cmd[0], err)
            assert lines[0].startswith(f"tinyvit {cmd[0]}: error: store ") and attest.ATTEST_FILE in lines[0]


def test_attest_json_has_the_mode_of_the_store(saved):
    ds, path = saved
    mode = lambda p: os.stat(os.path.join(path, p)).st_mode & 0o777  # noqa: E731
    assert mode(attest.ATTEST_FILE) == mode("manifest.json")
    os.chmod(os.path.join(path, "manifest.json"), 0o640)
    doc = _doc(path)
    del doc["epochs"]["1"]
    _write(path, doc)
    attest.record_epoch(tinyvit.LogitStore.open(path), ds, CFG, 1)  # rewrites the file
    assert mode(attest.ATTEST_FILE) == 0o640
    assert not [f for f in os.listdir(path) if f.startswith(".attest-")]  # no temp file left


def test_rerun_refuses_a_complete_unattested_epoch_and_verify_attest_attests_it(saved, tmp_path, run_cli):
    ds, path = saved
    doc = _doc(path)
    original = doc["epochs"].pop("1")
    _write(path, doc)
    store = tinyvit.LogitStore.open(path, mode="r+")
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="epoch 1 is complete but has no replay attestation"):
        save_logits(teacher(), ds, store, CFG, epochs=range(2), batch_size=4, progress=False)
    assert sorted(_doc(path)["epochs"]) == ["0"]  # nothing attested behind the user's back
    changed = _change_sample0(ds, tmp_path)
    code, out, _ = run_cli("verify", path, "--data", changed.root, "--attest", "--no-progress")
    assert code == 1 and "epoch 0: sample 0: replayed pixels" in out, out  # checks, never overwrites
    code, out, _ = run_cli("verify", path, "--data", ds.root, "--attest", "--no-progress")
    assert code == 0 and "attested epochs [1]" in out and "replay: OK (2 attested" in out, out
    assert _doc(path)["epochs"]["1"] == original  # this machine replays what save-logits attested
    tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=1)


def test_store_without_attestation_is_not_reported_ok_and_can_be_attested(saved, run_cli):
    ds, path = saved
    os.unlink(os.path.join(path, attest.ATTEST_FILE))
    code, out, _ = run_cli("verify", path, "--data", ds.root, "--no-progress")
    assert code == 1 and "replay: NOT CHECKED" in out, out
    code, out, err = run_cli("verify", path, "--attest", "--no-progress")
    assert code == 2 and err.strip() == "tinyvit verify: error: --attest needs --data SPEC (the dataset whose " \
        "replay it attests)", err
    code, out, _ = run_cli("verify", path, "--data", ds.root, "--attest", "--no-progress")
    assert code == 0 and "attested epochs [0, 1]" in out, out
    assert sorted(_doc(path)["epochs"]) == ["0", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)


def test_fuzz_attest_short():
    """benchmarks/fuzz_attest.py, 80 cases, through the bounded harness: 0 failures."""
    bench = os.path.join(ROOT, "benchmarks")
    sys.path.insert(0, bench)
    try:
        import fuzz_attest

        r = fuzz_attest.fuzz(cases=80, seconds=60, seed=7, log=lambda *a: None)
    finally:
        sys.path.remove(bench)
    assert r["cases"] == 80 and r["failures"] == 0, r["examples"]
    assert r["counts"]["refused"] > 0 and r["counts"]["caught"] > 0, r["counts"]


def test_save_logits_attests_before_writing_so_another_pipeline_writes_nothing(tmp_path, monkeypatch):
    root = make_folder(str(tmp_path / "data"))
    ds = tinyvit.ImageFolder(root)
    store = open_or_create_store(str(tmp_path / "store"), dataset=ds, cfg=CFG, num_classes=3,
                                 topk=2, epochs=1, base_seed=4, teacher_desc={"m": "t"})
    st = save_logits(teacher(), ds, store, CFG, epochs=[0], batch_size=4, progress=False, max_batches=1)
    assert st["stopped_early"] and 0 < store.missing(0).size < 12
    assert sorted(_doc(store.path)["epochs"]) == ["0"]  # attested before its first record: no crash window
    missing = store.missing(0).tolist()
    real = attest.pipeline_identity()
    monkeypatch.setattr(attest, "pipeline_identity", lambda: dict(real, jpeg="libjpeg 80"))
    with pytest.raises(tinyvit.errors.ReplayMismatchError, match="'jpeg'"):
        save_logits(teacher(), ds, store, CFG, epochs=[0], batch_size=4, progress=False)
    assert store.missing(0).tolist() == missing  # refused before writing a record
    monkeypatch.undo()
    save_logits(teacher(), ds, store, CFG, epochs=[0], batch_size=4, progress=False)
    assert store.missing(0).size == 0
    tinyvit.DistillLoader(ds, store, CFG, batch_size=4, epoch=0)


def test_an_epoch_without_records_is_the_loaders_error_not_an_attestation_one(saved):
    ds, path = saved
    store = tinyvit.LogitStore.open(path, mode="r+")
    store.add_epochs(1)  # epoch 2: no record, no entry: nothing to vouch for
    with pytest.raises(tinyvit.errors.RecordMissingError, match="12 of 12 records missing"):
        tinyvit.DistillLoader(ds, store, CFG, batch_size=4, epoch=2)
    with pytest.raises(tinyvit.errors.EpochMissingError, match="epoch 5 not in the store"):
        tinyvit.DistillLoader(ds, store, CFG, batch_size=4, epoch=5)
    assert attest.check_replay(store, ds, CFG, epochs=[0, 1, 2]) == 2
