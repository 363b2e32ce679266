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
    with pytest.raises(tinyvit.ReplayMismatchError, match=r"epoch 1: sample 7: replayed pixels"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=1)
    assert issubclass(tinyvit.ReplayMismatchError, tinyvit.StoreError)


def test_other_decoder_identity_is_refused(saved, monkeypatch):
    ds, path = saved
    doc = _doc(path)
    doc["epochs"]["0"]["identity"]["jpeg"] = "libjpeg-turbo 9.9.9"
    _write(path, doc)
    with pytest.raises(tinyvit.ReplayMismatchError,
                       match=r"epoch 0: pixel pipeline component 'jpeg'.*9\.9\.9"):
        tinyvit.DistillLoader(ds, path, CFG, batch_size=4, epoch=0)
    # the same from this side: a machine with another plan format
    _write(path, json.loads(json.dumps(doc).replace("9.9.9", "x")))
    real = attest.pipeline_identity()
    monkeypatch.setattr(attest, "pipeline_identity", lambda: dict(real, plan_format=99))
    with pytest.raises(tinyvit.ReplayMismatchError, match="'plan_format'.*99"):
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
    with pytest.raises(tinyvit.ReplayMismatchError, match="epoch 0: sample 4: replayed pixels"):
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
    with pytest.raises(tinyvit.ReplayMismatchError, match="'jpeg'"):
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
