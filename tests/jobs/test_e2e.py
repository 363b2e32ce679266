"""End to end: datasets, save-logits, DistillLoader, train, resume, torchrun, bad input."""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import tinyvit
import tinyvit.cli
import tinyvit.jobs.train
import tinyvit.jobs.models
import tinyvit.jobs.evaluate
from tinyvit.data.datasets import FASHION_MNIST_DIR
from tinyvit.data.loader import TeacherBatches, teacher_order
from tinyvit.jobs.save_logits import check_teacher_output, open_or_create_store, save_logits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAVE_FMNIST = os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"))
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="dataset-fashion-mnist not installed")

# small but with every augmentation on (RandAugment, erase, Mixup and CutMix)
CFG = tinyvit.AugConfig(img_size=16, mean=(0.286,) * 3, std=(0.353,) * 3)
AUG_ARGS = ["--img-size", "16", "--mean", "0.286", "0.286", "0.286", "--std", "0.353", "0.353", "0.353"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyTeacher(torch.nn.Module):
    """Deterministic small teacher; records what it was fed when ``record`` is a list."""

    def __init__(self, num_classes=10, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(3 * 16 * 16, num_classes, generator=g) * 0.2)
        self.record = None

    def forward(self, x):
        if self.record is not None:
            self.record.append(x.detach().clone())
        return x.flatten(1) @ self.w


def wrong_width_teacher():  # used as --teacher test_e2e:wrong_width_teacher
    return TinyTeacher(num_classes=7)


def small_fmnist(n=64, split="train"):
    return tinyvit.FashionMNIST(split=split, subset=n)


def make_store(tmp_path, ds, epochs=2, topk=3, teacher=None, name="store", cfg=CFG, base_seed=5):
    teacher = teacher or TinyTeacher()
    store = open_or_create_store(str(tmp_path / name), dataset=ds, cfg=cfg, num_classes=10, topk=topk,
                                 epochs=epochs, base_seed=base_seed, teacher_desc={"model": "tiny"})
    save_logits(teacher, ds, store, cfg, epochs=range(epochs), batch_size=16, progress=False)
    return store


def read_all(store, epoch):
    idx = np.arange(store.num_samples)
    return [t.numpy() for t in store.read(epoch, idx)]


# ---------------------------------------------------------------------------------- datasets
def test_train_refuses_an_unknown_mode_or_a_teacher_mismatch_before_any_step():
    ds = tinyvit.ArrayDataset(np.zeros((4, 16, 16), np.uint8), np.zeros(4, np.int64))
    loader = tinyvit.ReplayLoader(ds, CFG, batch_size=2)
    model = TinyTeacher()
    before = model.w.detach().clone()
    for kw, msg in ((dict(mode="soft"), "mode must be one of"), (dict(mode="online"), "needs a teacher"),
                    (dict(mode="hard", teacher=TinyTeacher()), "takes no teacher")):
        with pytest.raises(ValueError, match=msg):
            tinyvit.jobs.train.train(model, loader, epochs=1, num_classes=10, progress=False, **kw)
    assert torch.equal(model.w, before)


def _write_idx(path, arr):
    arr = np.asarray(arr, np.uint8)
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_fashion_mnist_reader_against_independent_files(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    ds = tinyvit.open_dataset(f"fashion-mnist:{tmp_path}")
    assert len(ds) == 7 and ds.num_classes == 10
    np.testing.assert_array_equal(ds[3], imgs[3])
    np.testing.assert_array_equal(ds.targets, labels)
    fp = ds.fingerprint()
    imgs[6, 0, 0] ^= 1
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    assert tinyvit.open_dataset(f"fashion-mnist:{tmp_path}").fingerprint() != fp
    # truncated payload / missing files -> DatasetError naming the file
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 7, 28, 28) + b"\0" * 100)
    with pytest.raises(tinyvit.errors.DatasetError, match="train-images-idx3-ubyte.gz"):
        tinyvit.open_dataset(f"fashion-mnist:{tmp_path}")
    with pytest.raises(tinyvit.errors.DatasetError, match="t10k-images"):
        tinyvit.open_dataset(f"fashion-mnist:{tmp_path}", split="test")
    with pytest.raises(tinyvit.errors.DatasetError, match="not a directory"):
        tinyvit.open_dataset(f"fashion-mnist:{tmp_path}/nope")


@needs_fmnist
def test_fashion_mnist_system_files():
    ds = tinyvit.FashionMNIST(split="test")
    assert len(ds) == 10000 and ds[0].shape == (28, 28)
    assert np.bincount(ds.targets, minlength=10).tolist() == [1000] * 10  # the published split


def _jpeg(color, size=(20, 14)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_folder(root, per_class=4):
    for c, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            (d / f"img_{i}.jpg").write_bytes(_jpeg(tuple(v + 5 * i for v in color), (20 + i, 14 + c)))
    return root


def test_image_folder(tmp_path):
    root = make_folder(tmp_path / "data")
    (tmp_path / "data" / "class_0" / "notes.txt").write_text("not an image")
    ds = tinyvit.ImageFolder(root)
    assert len(ds) == 12 and ds.classes == ["class_0", "class_1", "class_2"]
    assert ds.targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds[5].endswith(os.path.join("class_1", "img_1.jpg"))
    assert ds.source_sizes([0, 5]).tolist() == [[20, 14], [21, 15]]
    fp = ds.fingerprint()
    assert tinyvit.ImageFolder(root).fingerprint() == fp
    (root / "class_2" / "img_9.jpg").write_bytes(_jpeg((1, 2, 3)))
    assert tinyvit.ImageFolder(root).fingerprint() != fp
    with pytest.raises(tinyvit.errors.DatasetError, match="no class subdirectories"):
        tinyvit.ImageFolder(root / "class_0")
    with pytest.raises(tinyvit.errors.DatasetError, match="not a directory"):
        tinyvit.ImageFolder(tmp_path / "missing")


# ------------------------------------------------------------------ teacher == student pixels
@needs_fmnist
def test_student_sees_exactly_the_teacher_images(tmp_path):
    ds = small_fmnist(66)  # with an odd number of pairs per batch boundary
    teacher = TinyTeacher()
    teacher.record = []
    store = make_store(tmp_path, ds, epochs=2, teacher=teacher)
    seen = torch.cat(teacher.record)
    # what the teacher saw, per sample: recompute the order save_logits used
    order = np.concatenate([teacher_order(np.arange(len(ds)), e, len(ds), 5, True)[0] + e * len(ds)
                            for e in range(2)])
    assert seen.shape[0] == order.size == 2 * len(ds)
    by_key = {int(k): seen[j] for j, k in enumerate(order)}
    mixed = 0
    for epoch in range(2):
        seeds, _, _ = store.read(epoch, np.arange(len(ds)))
        np.testing.assert_array_equal(seeds.numpy(), tinyvit.augment.seeds.sample_seeds(5, epoch, np.arange(len(ds))))
        loader = tinyvit.DistillLoader(ds, store, CFG, batch_size=16, epoch=epoch)
        idx = loader.sampler.indices()
        got = torch.cat([x for x, _ in loader])
        assert got.shape[0] == idx.size
        for pos, i in enumerate(idx.tolist()):
            want = by_key[epoch * len(ds) + i]
            assert torch.equal(got[pos], want), f"epoch {epoch} sample {i}"  # bitwise
        # mixing really happened: a mixed image differs from its unmixed replay
        plain = tinyvit.augment.device.normalize(tinyvit.replay_batch([ds[i] for i in idx[:8]], seeds[idx[:8]].tolist(), CFG),
                                  CFG.mean, CFG.std)
        mixed += int((plain != got[:8]).flatten(1).any(1).sum())
    assert mixed > 0
    # and the targets are the stored records
    loader = tinyvit.DistillLoader(ds, store, CFG, batch_size=16, epoch=1)
    _, t = next(iter(loader))
    _, si, sp = store.read(1, loader.sampler.indices()[:16])
    assert torch.equal(t.indices, si) and torch.equal(t.probs, sp)


@needs_fmnist
def test_distributed_sampler_without_mixing(tmp_path):
    from torch.utils.data import DistributedSampler

    cfg = tinyvit.AugConfig(img_size=16, mixup_alpha=0.0, cutmix_alpha=0.0, re_prob=0.5)
    ds = small_fmnist(40)
    teacher = TinyTeacher()
    teacher.record = []
    store = make_store(tmp_path, ds, epochs=2, teacher=teacher, cfg=cfg)
    seen = torch.cat(teacher.record)[len(ds):]  # epoch 1, in sample order (no pairs)
    got = {}
    for rank in range(2):
        sampler = DistributedSampler(range(len(ds)), num_replicas=2, rank=rank, shuffle=True, seed=3)
        loader = tinyvit.DistillLoader(ds, store, cfg, batch_size=7, sampler=sampler, epoch=1)
        order = list(iter(sampler))
        xs = torch.cat([x for x, _ in loader])
        got.update({i: xs[p] for p, i in enumerate(order)})
    assert sorted(got) == list(range(len(ds)))
    for i in range(len(ds)):
        assert torch.equal(got[i], seen[i]), i


@needs_fmnist
def test_stored_topk_matches_teacher_softmax(tmp_path):
    ds = small_fmnist(32)
    teacher = TinyTeacher()
    teacher.record = []
    store = make_store(tmp_path, ds, epochs=1, topk=4, teacher=teacher)
    x = torch.cat(teacher.record)
    order, _ = teacher_order(np.arange(len(ds)), 0, len(ds), 5, True)
    p = (x.flatten(1) @ teacher.w).softmax(-1)
    v, i = p.topk(4, -1)
    _, si, sp = store.read(0, order)
    assert torch.equal(si, i)
    torch.testing.assert_close(sp, v.half().float(), rtol=0, atol=0)  # fp16 encoding


# --------------------------------------------------------------------------- README example
@needs_fmnist
def test_readme_example(tmp_path, monkeypatch):
    text = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- readme-example:start -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README example block not found"
    code = m.group(1)
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    # the store the example opens, written by the CLI exactly as the README says
    rc = tinyvit.cli.main(["save-logits", "fmnist_top5", "--data", "fashion-mnist", "--subset", "512",
                           "--model", "test_resnet", "--random-teacher", "--topk", "5", "--epochs", "1",
                           "--batch-size", "128", "--no-progress", "--img-size", "32"])
    assert rc == 0
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert torch.isfinite(ns["loss"]) and ns["loss"].requires_grad


@needs_fmnist
def test_worker_processes_give_the_same_batches(tmp_path):
    ds = small_fmnist(48)
    store = make_store(tmp_path, ds, epochs=1)
    a = list(tinyvit.DistillLoader(ds, store, CFG, batch_size=16))
    b = list(tinyvit.DistillLoader(ds, store, CFG, batch_size=16, num_workers=2))
    assert len(a) == len(b) == 3
    for (xa, ta), (xb, tb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ta.indices, tb.indices) and torch.equal(ta.probs, tb.probs)
        torch.testing.assert_close(ta.loss(xa.flatten(1)[:, :10]),
                                   tinyvit.sparse_soft_cross_entropy(xa.flatten(1)[:, :10], *ta))


# ------------------------------------------------------------------------------------ resume
@needs_fmnist
def test_resume_after_stop_writes_only_missing(tmp_path):
    ds = small_fmnist(64)
    ref = make_store(tmp_path, ds, epochs=1, name="ref")
    store = open_or_create_store(str(tmp_path / "s"), dataset=ds, cfg=CFG, num_classes=10, topk=3, epochs=1,
                                 base_seed=5, teacher_desc={"model": "tiny"})
    st = save_logits(TinyTeacher(), ds, store, CFG, epochs=[0], batch_size=16, progress=False, max_batches=2)
    assert st["stopped_early"]
    done_before = set(range(64)) - set(store.missing(0).tolist())
    assert 0 < len(done_before) < 64
    before = {i: store.raw_record(0, i) for i in done_before}
    st = save_logits(TinyTeacher(), ds, store, CFG, epochs=[0], batch_size=16, progress=False)
    assert st["written"] == 64 - len(done_before)
    assert store.missing(0).size == 0
    assert all(store.raw_record(0, i) == b for i, b in before.items())  # not rewritten
    for a, b in zip(read_all(store, 0), read_all(ref, 0)):
        np.testing.assert_array_equal(a, b)


def _cli(*args, env=None, **kw):
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.path.join(ROOT, "tests"))
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "tinyvit", *args], cwd=ROOT, env=e, **kw)


def _teacher_ckpt(tmp_path):
    import timm

    torch.manual_seed(0)
    m = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    path = str(tmp_path / "teacher.pt")
    torch.save(m.state_dict(), path)
    return path


@needs_fmnist
def test_resume_after_sigkill(tmp_path):
    ckpt = _teacher_ckpt(tmp_path)
    store_dir = str(tmp_path / "s")
    args = ["save-logits", store_dir, "--data", "fashion-mnist", "--subset", "600", "--model", "test_resnet",
            "--checkpoint", ckpt, "--topk", "3", "--epochs", "1", "--batch-size", "8", "--no-progress"] + AUG_ARGS
    p = _cli(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_with = None
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(os.path.join(store_dir, "manifest.json")):
            s = tinyvit.LogitStore.open(store_dir)
            left = s.missing(0).size
            s.close()
            if left < 600 - 40:
                p.send_signal(signal.SIGKILL)
                killed_with = left
                break
        time.sleep(0.05)
    p.wait()
    assert killed_with is not None, p.stderr.read().decode()[-2000:]
    s = tinyvit.LogitStore.open(store_dir)
    assert 0 < s.missing(0).size < 600
    s.close()
    r = _cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=300)
    assert r.returncode == 0, err.decode()[-2000:]
    s = tinyvit.LogitStore.open(store_dir)
    assert s.missing(0).size == 0
    assert tinyvit.cli.main(["verify", store_dir, "--no-progress"]) == 0


@needs_fmnist
def test_epoch_segments_into_one_store_equal_one_run(tmp_path):
    ckpt = _teacher_ckpt(tmp_path)
    common = ["--data", "fashion-mnist", "--subset", "48", "--model", "test_resnet", "--checkpoint", ckpt,
              "--topk", "3", "--batch-size", "16", "--no-progress"] + AUG_ARGS
    seg = str(tmp_path / "seg")
    # the later segment first, as a second machine might
    assert tinyvit.cli.main(["save-logits", seg, "--start-epoch", "1", "--end-epoch", "2", "--total-epochs", "2"]
                            + common) == 0
    s = tinyvit.LogitStore.open(seg)
    assert s.epochs == 2 and s.missing(0).size == 48 and s.missing(1).size == 0
    assert tinyvit.cli.main(["save-logits", seg, "--start-epoch", "0", "--end-epoch", "1", "--total-epochs", "2"]
                            + common) == 0
    assert tinyvit.cli.main(["save-logits", str(tmp_path / "one"), "--epochs", "2"] + common) == 0
    a, b = tinyvit.LogitStore.open(seg), tinyvit.LogitStore.open(str(tmp_path / "one"))
    for e in range(2):
        for x, y in zip(read_all(a, e), read_all(b, e)):
            np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------------- torchrun
@needs_fmnist
def test_torchrun_two_ranks_save_and_train(tmp_path):
    ckpt = _teacher_ckpt(tmp_path)
    common = ["--data", "fashion-mnist", "--subset", "96", "--model", "test_resnet", "--checkpoint", ckpt,
              "--topk", "3", "--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"] + AUG_ARGS
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "tinyvit"]
    r = subprocess.run(run + ["save-logits", str(tmp_path / "dist")] + common, cwd=ROOT, env=env,
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    r1 = subprocess.run([sys.executable, "-m", "tinyvit", "save-logits", str(tmp_path / "single")] + common,
                        cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert r1.returncode == 0, r1.stderr.decode()[-3000:]
    a, b = tinyvit.LogitStore.open(str(tmp_path / "dist")), tinyvit.LogitStore.open(str(tmp_path / "single"))
    assert a.missing(0).size == 0
    sa, ia, pa = read_all(a, 0)
    sb, ib, pb = read_all(b, 0)
    np.testing.assert_array_equal(sa, sb)  # seeds
    np.testing.assert_array_equal(ia, ib)  # top-K classes
    np.testing.assert_array_equal(pa, pb)  # fp16 probabilities
    out = tmp_path / "train"
    r = subprocess.run(run + ["train", "--distill", str(tmp_path / "dist"), "--data", "fashion-mnist",
                              "--subset", "96", "--val-subset", "64", "--model", "test_resnet",
                              "--epochs", "1", "--batch-size", "16", "--out", str(out), "--no-progress",
                              "--device", "cpu"], cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    log = [json.loads(l) for l in open(out / "log.jsonl")]
    assert len(log) == 1 and log[0]["mode"] == "distill" and np.isfinite(log[0]["train_loss"])
    # 96 samples = 48 pairs over 2 ranks of batches of 16: 24 pairs each -> 3 steps per rank
    assert log[0]["steps"] == 3 and 0.0 <= log[0]["val_acc"] <= 1.0


# ---------------------------------------------------------------------------------- training
@needs_fmnist
def test_train_modes_run_and_log(tmp_path):
    ds = small_fmnist(64)
    store = make_store(tmp_path, ds, epochs=2)
    val = tinyvit.jobs.evaluate.eval_tensors(small_fmnist(32, "test"), 16)
    import timm

    for mode in ("distill", "hard", "online"):
        torch.manual_seed(0)
        model = timm.create_model("test_resnet", pretrained=False, num_classes=10)
        if mode == "distill":
            loader = tinyvit.DistillLoader(ds, store, CFG, batch_size=16)
        else:
            loader = tinyvit.ReplayLoader(ds, CFG, base_seed=5, batch_size=16)
        out = tmp_path / mode
        out.mkdir()
        res = tinyvit.jobs.train.train(model, loader, mode=mode, epochs=2, num_classes=10, eval_data=val,
                                  teacher=TinyTeacher() if mode == "online" else None, out_dir=str(out),
                                  progress=False)
        log = [json.loads(l) for l in open(out / "log.jsonl")]
        assert [r["epoch"] for r in log] == [0, 1] and all(r["steps"] == 4 for r in log)
        assert res["step_time_s"] > 0 and 0 <= res["val_acc"] <= 1
        state = torch.load(out / "last.pt", weights_only=True)
        assert state["epoch"] == 1 and set(state["model"]) == set(model.state_dict())


# --------------------------------------------------------------------------------- bad input
@needs_fmnist
def test_loader_refuses_mismatched_store_before_any_batch(tmp_path):
    ds = small_fmnist(64)
    store = make_store(tmp_path, ds, epochs=1)
    with pytest.raises(tinyvit.errors.EpochMissingError, match="epoch 1 not in the store"):
        tinyvit.DistillLoader(ds, store, CFG, epoch=1)
    loader = tinyvit.DistillLoader(ds, store, CFG)
    with pytest.raises(tinyvit.errors.EpochMissingError):
        loader.set_epoch(3)
    with pytest.raises(tinyvit.errors.StoreMismatchError, match="num_samples 64 != len\\(dataset\\) 32"):
        tinyvit.DistillLoader(small_fmnist(32), store, CFG)
    with pytest.raises(tinyvit.errors.DatasetMismatchError, match="dataset_fingerprint"):
        tinyvit.DistillLoader(small_fmnist(64, "test"), store, CFG)
    other = tinyvit.AugConfig(img_size=16, mean=(0.286,) * 3, std=(0.353,) * 3, hflip=0.0)
    with pytest.raises(tinyvit.errors.FingerprintMismatchError, match="aug_fingerprint"):
        tinyvit.DistillLoader(ds, store, other)
    with pytest.raises(tinyvit.errors.StoreMismatchError, match="num_classes 10 != the model's 100"):
        tinyvit.DistillLoader(ds, store, CFG, num_classes=100)
    # an incomplete epoch is refused too (with the count), not discovered mid-epoch
    store.add_epochs(1)
    with pytest.raises(tinyvit.errors.RecordMissingError, match="64 of 64 records missing"):
        tinyvit.DistillLoader(ds, store, CFG, epoch=1)


@needs_fmnist
def test_train_cli_missing_epoch_fails_before_training(tmp_path):
    ds = small_fmnist(64)
    make_store(tmp_path, ds, epochs=1)
    out = tmp_path / "out"
    with pytest.raises(tinyvit.errors.EpochMissingError, match="asks for 2 epochs but the store holds 1"):
        tinyvit.cli.main(["train", "--traceback", "--distill", str(tmp_path / "store"), "--data", "fashion-mnist",
                          "--subset", "64", "--val-subset", "16", "--model", "test_resnet", "--epochs", "2",
                          "--batch-size", "16", "--out", str(out), "--no-progress"])
    assert not (out / "log.jsonl").exists()


@needs_fmnist
def test_save_logits_refuses_other_config_and_keeps_records(tmp_path):
    ds = small_fmnist(64)
    store = make_store(tmp_path, ds, epochs=1)
    before = read_all(store, 0)
    path = str(tmp_path / "store")
    for kwargs, err in [(dict(cfg=tinyvit.AugConfig(img_size=16, hflip=0.0)), tinyvit.errors.FingerprintMismatchError),
                        (dict(num_classes=12), tinyvit.errors.StoreMismatchError),
                        (dict(topk=4), tinyvit.errors.StoreMismatchError),
                        (dict(base_seed=6), tinyvit.errors.StoreMismatchError),
                        (dict(dataset=small_fmnist(64, "test")), tinyvit.errors.DatasetMismatchError),
                        (dict(dataset=small_fmnist(32)), tinyvit.errors.StoreMismatchError)]:
        args = dict(dataset=ds, cfg=CFG, num_classes=10, topk=3, epochs=2, base_seed=5,
                    teacher_desc={"model": "tiny"})
        args.update(kwargs)
        with pytest.raises(err):
            open_or_create_store(path, **args)
    after = tinyvit.LogitStore.open(path)
    assert after.epochs == 1  # not grown by a refused call
    for a, b in zip(before, read_all(after, 0)):
        np.testing.assert_array_equal(a, b)


@needs_fmnist
def test_teacher_output_width_checked_before_writing(tmp_path):
    with pytest.raises(tinyvit.errors.TeacherOutputError, match=r"\[2, 7\].*expected \[2, 10\]"):
        check_teacher_output(TinyTeacher(num_classes=7), CFG, 10, "cpu")
    path = tmp_path / "s"
    with pytest.raises(tinyvit.errors.TeacherOutputError):
        tinyvit.cli.main(["save-logits", "--traceback", str(path), "--data", "fashion-mnist", "--subset", "32",
                          "--teacher", "test_e2e:wrong_width_teacher", "--topk", "3", "--epochs", "1", "--no-progress"]
                         + AUG_ARGS)
    assert not path.exists()  # nothing created


def test_unreadable_image_typed_error_and_nothing_lost(tmp_path):
    root = make_folder(tmp_path / "data")
    ds = tinyvit.ImageFolder(root)
    cfg = tinyvit.AugConfig(img_size=16)
    store = open_or_create_store(str(tmp_path / "s"), dataset=ds, cfg=cfg, num_classes=3, topk=2, epochs=2,
                                 base_seed=0, teacher_desc=None)
    save_logits(TinyTeacher(3), ds, store, cfg, epochs=[0], batch_size=4, progress=False)
    before = read_all(store, 0)
    bad = root / "class_1" / "img_2.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + os.urandom(bad.stat().st_size - 3))  # same size: same fingerprint
    with pytest.raises(tinyvit.errors.ImageDecodeError, match="img_2.jpg"):
        save_logits(TinyTeacher(3), ds, store, cfg, epochs=[1], batch_size=4, progress=False)
    for a, b in zip(before, read_all(store, 0)):
        np.testing.assert_array_equal(a, b)
    loader = tinyvit.DistillLoader(tinyvit.ImageFolder(root), store, cfg, batch_size=4)
    with pytest.raises(tinyvit.errors.ImageDecodeError, match="img_2.jpg"):
        for _ in loader:
            pass


@needs_fmnist
def test_demo_smoke(tmp_path, capsys):
    w = tmp_path / "w"
    rc = tinyvit.cli.main(["demo", "--train-samples", "64", "--val-samples", "32", "--teacher-samples", "96",
                           "--teacher-epochs", "1", "--epochs", "1", "--seeds", "2", "--topk", "3", "--no-progress",
                           "--out", str(w)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "stored top-3 KD" in text and "hard labels" in text and "online dense KD" in text and "+-" in text
    assert "] teacher test_resnet: training on hard labels" in text and "] save-logits:" in text  # phases
    res = json.load(open(w / "results.json"))
    store = tinyvit.LogitStore.open(str(w / "store_top3"))
    assert res["store"]["bytes"] == 64 * 1 * store.record_size
    assert all(len(v) == 2 and all(0 <= r["val_acc"] <= 1 for r in v) for v in res["runs"].values())
    assert res["summary"]["hard labels"]["mean"] == np.mean([r["val_acc"] for r in res["runs"]["hard labels"]])
    assert os.path.getsize(w / "demo.png") > 10_000
    # a rerun reuses the teacher and the (complete) store
    assert tinyvit.cli.main(["demo", "--train-samples", "64", "--val-samples", "32", "--teacher-samples", "96",
                             "--teacher-epochs", "1", "--epochs", "1", "--seeds", "2", "--topk", "3", "--no-progress",
                             "--no-online", "--out", str(w)]) == 0
    assert "teacher: reusing" in capsys.readouterr().out


@needs_fmnist
def test_train_cli_grayscale_student_and_checkpoint(tmp_path):
    out = tmp_path / "gray"
    assert tinyvit.cli.main(["train", "--hard-labels", "--data", "fashion-mnist", "--subset", "32", "--val-subset",
                             "16", "--model", "test_resnet", "--in-chans", "1", "--epochs", "1", "--batch-size", "16",
                             "--out", str(out), "--no-progress"] + AUG_ARGS) == 0
    state = torch.load(out / "last.pt", weights_only=True)["model"]
    first = next(v for k, v in state.items() if v.ndim == 4)
    assert first.shape[1] == 1  # the stem takes one channel
    # the saved student loads back through --checkpoint (weights_only), a wrong model does not
    ckpt = str(tmp_path / "student.pt")
    torch.save(state, ckpt)
    m = tinyvit.jobs.models.build_model("test_resnet", 10, in_chans=1, checkpoint=ckpt)
    assert torch.equal(next(v for v in m.state_dict().values() if v.ndim == 4), first)
    with pytest.raises(tinyvit.errors.ModelError, match="student.pt"):
        tinyvit.jobs.models.build_model("test_convnext", 10, checkpoint=ckpt)
    with pytest.raises(tinyvit.errors.ModelError, match="not a timm model"):
        tinyvit.jobs.models.build_model("no_such_model_xyz", 10)
    with pytest.raises(tinyvit.errors.ModelError, match="does not exist"):
        tinyvit.jobs.models.build_model("test_resnet", 10, checkpoint=str(tmp_path / "missing.pt"))


@needs_fmnist
def test_train_cli_online_teacher(tmp_path):
    ckpt = _teacher_ckpt(tmp_path)
    out = tmp_path / "online"
    assert tinyvit.cli.main(["train", "--online-teacher", "test_resnet", "--teacher-checkpoint", ckpt,
                             "--data", "fashion-mnist", "--subset", "32", "--val-subset", "16", "--model",
                             "test_resnet", "--epochs", "1", "--batch-size", "16", "--out", str(out),
                             "--no-progress"] + AUG_ARGS) == 0
    log = [json.loads(l) for l in open(out / "log.jsonl")]
    assert log[0]["mode"] == "online" and log[0]["steps"] == 2
