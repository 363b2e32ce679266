"""`tinyvit train` resumes from last.pt bit-identically (issue 16.7), and save-logits with a
random teacher is the same store under torchrun as in one process (issue 13)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinyvit
from tinyvit.data.datasets import FASHION_MNIST_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_fmnist = pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
                                  reason="dataset-fashion-mnist not installed")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests", "jobs")]))


def _train(out, kill_at=None, extra=()):
    env = dict(ENV)
    if kill_at:
        env["TINYVIT_TEST_KILL_AT"] = str(kill_at)
    cmd = [sys.executable, "-m", "tinyvit", "train", "--hard-labels", "--data", "fashion-mnist", "--subset", "64",
           "--val-subset", "32", "--model", "resume_model:student", "--epochs", "3", "--batch-size", "16",
           "--img-size", "16", "--device", "cpu", "--no-progress", "--warmup-epochs", "0.5", "--out", str(out),
           *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _log(out):
    return [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]


@needs_fmnist
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    r = _train(ref)
    assert r.returncode == 0, r.stderr[-2000:]
    # 4 steps per epoch: the 7th training forward is mid-epoch 1 (epoch 0 is checkpointed)
    r = _train(cut, kill_at=7)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    assert [row["epoch"] for row in _log(cut)] == [0]
    assert torch.load(cut / "last.pt", weights_only=True)["epoch"] == 0
    r = _train(cut)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stdout and json.loads(r.stdout.strip().splitlines()[-1])["resumed_from_epoch"] == 0
    a, b = torch.load(ref / "last.pt", weights_only=True), torch.load(cut / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"] == 12
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k  # bit-identical weights
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    la, lb = _log(ref), _log(cut)
    assert [row["epoch"] for row in lb] == [0, 1, 2]  # no duplicate rows
    drop = lambda rows: [{k: v for k, v in row.items() if k != "epoch_s"} for row in rows]  # noqa: E731
    assert drop(la) == drop(lb)
    # a finished run: rerunning trains nothing and keeps the log
    r = _train(cut)
    assert r.returncode == 0 and [row["epoch"] for row in _log(cut)] == [0, 1, 2]
    # another run's checkpoint is refused (one line, naming the field); --restart starts over
    r = _train(cut, extra=["--lr", "5e-4"])
    assert r.returncode == 2 and "lr = 0.001 there, 0.0005 now" in r.stderr and "Traceback" not in r.stderr
    r = _train(cut, extra=["--restart", "--epochs", "1"])
    assert r.returncode == 0 and [row["epoch"] for row in _log(cut)] == [0]


@needs_fmnist
def test_killed_between_log_row_and_checkpoint_no_duplicate_row(tmp_path):
    out = tmp_path / "o"
    r = _train(out, extra=["--epochs", "2"])
    assert r.returncode == 0, r.stderr[-2000:]
    # simulate: epoch 1's row written, its checkpoint not (the checkpoint says epoch 0)
    ck = torch.load(out / "last.pt", weights_only=True)
    from tinyvit.jobs.train import _cut_log

    rows = _cut_log(str(out / "log.jsonl"), 0)
    assert [r["epoch"] for r in rows] == [0] and [r["epoch"] for r in _log(out)] == [0]
    assert ck["epoch"] == 1


def _read_all(path):
    s = tinyvit.LogitStore.open(str(path))
    return [t.numpy() for t in s.read(0, np.arange(s.num_samples))]


@needs_fmnist
def test_random_teacher_two_gloo_ranks_equal_one_process(tmp_path):
    common = ["--data", "fashion-mnist", "--subset", "64", "--model", "test_resnet", "--random-teacher", "--seed",
              "3", "--topk", "3", "--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu",
              "--img-size", "16"]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "tinyvit"]
    r = subprocess.run(run + ["save-logits", str(tmp_path / "dist")] + common, cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "randomly initialised" in r.stderr
    r = subprocess.run([sys.executable, "-m", "tinyvit", "save-logits", str(tmp_path / "one")] + common, cwd=ROOT,
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for x, y in zip(_read_all(tmp_path / "dist"), _read_all(tmp_path / "one")):  # seeds, classes, fp16 probs
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    # (record bytes equal; the files' headers differ only by each store's random store id)
    m = json.load(open(tmp_path / "one" / "manifest.json"))
    assert m["teacher"]["random_init_seed"] == 3


# Ctrl-C from a terminal reaches a process whose SIGINT disposition is the default, so Python
# installs its KeyboardInterrupt handler at start-up. A process started with SIGINT *ignored*
# (the suite run from a non-interactive shell's background job, nohup, some CI agents: SIG_IGN
# survives fork + exec) gets no handler, and the model's self-sent SIGINT is discarded: the run
# finishes with exit 0 and no output, i.e. the `AssertionError: (0, '')` of a fresh clone's
# `make test`. The interrupted runs therefore start through this trampoline, which resets
# SIGINT to the default and then execs the CLI, so the child is in a terminal's condition
# whatever the pytest process inherited.
_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                   "os.execv(sys.argv[1], sys.argv[1:])")


def _as_from_a_terminal(cmd):
    return [sys.executable, "-c", _DEFAULT_SIGINT, *cmd]


@needs_fmnist
def test_ctrl_c_is_one_line_exit_130_and_keeps_what_was_written(tmp_path):
    def save(path, env_extra=None):
        env = dict(ENV, **(env_extra or {}))
        cmd = _as_from_a_terminal([sys.executable, "-m", "tinyvit", "save-logits", str(path), "--data", "fashion-mnist",
                                   "--subset", "64", "--teacher", "resume_model:teacher", "--topk", "3", "--epochs", "2",
                                   "--batch-size", "16", "--img-size", "16", "--device", "cpu", "--no-progress"])
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    # forward 1 = the output-shape check, then 4 batches per epoch: forward 7 is mid-epoch 1
    r = save(tmp_path / "cut", {"TINYVIT_TEST_KILL_AT": "7", "TINYVIT_TEST_SIGNAL": "INT"})
    assert r.returncode == 130, (r.returncode, r.stderr[-2000:])
    err = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "interrupted" in err[0] and "Traceback" not in r.stderr, r.stderr
    s = tinyvit.LogitStore.open(str(tmp_path / "cut"))
    assert s.missing(0).size == 0 and 0 < s.missing(1).size < 64  # epoch 0 and part of epoch 1 kept
    s.close()
    assert save(tmp_path / "cut").returncode == 0  # resumes: writes only what is missing
    assert save(tmp_path / "ref").returncode == 0
    for e in (0, 1):
        a, b = tinyvit.LogitStore.open(str(tmp_path / "cut")), tinyvit.LogitStore.open(str(tmp_path / "ref"))
        for x, y in zip(a.read(e, np.arange(64)), b.read(e, np.arange(64))):
            assert x.numpy().tobytes() == y.numpy().tobytes()
    # train: Ctrl-C mid-epoch 1 keeps epoch 0's checkpoint, and the rerun resumes from it
    out = tmp_path / "train"
    env = dict(ENV, TINYVIT_TEST_KILL_AT="7", TINYVIT_TEST_SIGNAL="INT")
    cmd = _as_from_a_terminal([sys.executable, "-m", "tinyvit", "train", "--hard-labels", "--data", "fashion-mnist",
                               "--subset", "64", "--val-subset", "32", "--model", "resume_model:student", "--epochs", "2",
                               "--batch-size", "16", "--img-size", "16", "--device", "cpu", "--no-progress",
                               "--out", str(out)])
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 0
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "resuming from" in r.stdout


# ---- issue #22: resume on other data, malformed checkpoints, foreign log rows -----------------
def _ppm_folder(root, n=12, classes=3, start=0):
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        d = os.path.join(root, f"c{i % classes}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:03d}.ppm"), "wb") as f:
            f.write(f"P6\n{18 + i % 4} {15 + i % 3}\n255\n".encode() + rng.integers(0, 256, (15 + i % 3, 18 + i % 4, 3),
                                                                                      np.uint8).tobytes())
    return root


def _train_cmd(data, out, *mode):
    return ["train", *mode, "--data", data, "--model", "test_resnet", "--epochs", "2", "--batch-size", "4",
            "--img-size", "16", "--device", "cpu", "--no-progress", "--out", out]


def _refused(run_cli, cmd, match):
    code, out, err = run_cli(*cmd)
    lines = [l for l in err.splitlines() if ": error: " in l]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, out[-500:], err[-2000:])
    assert lines[0].startswith("tinyvit train: error: ") and "last.pt" in lines[0] and match in lines[0], lines[0]
    assert "resuming" not in out, out
    return lines[0]


def test_resume_refuses_other_files_or_classes(run_cli, tmp_path):
    data, out = _ppm_folder(str(tmp_path / "data")), str(tmp_path / "out")
    cmd = _train_cmd(data, out, "--hard-labels")
    assert run_cli(*cmd)[0] == 0
    code, o, _ = run_cli(*cmd)  # same data: resumes (nothing left to do)
    assert code == 0 and "resuming" in o
    _ppm_folder(data, n=10, start=100)  # 10 files added to the same classes
    _refused(run_cli, cmd, "train_fingerprint")
    _ppm_folder(data, n=2, classes=1, start=200)  # + a class: was a load_state_dict traceback
    os.rename(os.path.join(data, "c0"), os.path.join(data, "c9"))  # (name it apart from c0)
    _ppm_folder(data, n=3, start=300)
    _refused(run_cli, cmd, "num_classes = 3 there, 4 now")
    assert run_cli(*cmd, "--restart")[0] == 0  # the way out the message names


def test_resume_refuses_another_teachers_store_at_the_same_path(run_cli, tmp_path):
    import shutil

    data, out, store = _ppm_folder(str(tmp_path / "data")), str(tmp_path / "out"), str(tmp_path / "store")
    save = ["save-logits", store, "--data", data, "--model", "test_resnet", "--random-teacher", "--epochs", "2",
            "--topk", "2", "--img-size", "16", "--batch-size", "4", "--no-progress", "--device", "cpu"]
    assert run_cli(*save)[0] == 0
    cmd = _train_cmd(data, out, "--distill", store)
    assert run_cli(*cmd)[0] == 0
    shutil.rmtree(store)
    assert run_cli(*save, "--seed", "1")[0] == 0  # another teacher: a new store_id, same path
    _refused(run_cli, cmd, "store_id")


def test_malformed_checkpoint_is_one_resume_error_line(run_cli, tmp_path):
    data, out = _ppm_folder(str(tmp_path / "data")), str(tmp_path / "out")
    cmd = _train_cmd(data, out, "--hard-labels")
    assert run_cli(*cmd)[0] == 0
    path = os.path.join(out, "last.pt")
    good = torch.load(path, weights_only=True)
    foreign = torch.nn.Linear(3, 2).state_dict()
    wrong_shape = dict(good["model"], **{k: torch.zeros(1) for k in list(good["model"])[:1]})

    def edit(**kw):
        ck = dict(good)
        for k, v in kw.items():
            if v is KeyError:
                del ck[k]
            else:
                ck[k] = v
        return ck

    rng_bad_np = dict(good["rng"], numpy=[torch.zeros(3, dtype=torch.int64)] + good["rng"]["numpy"][1:])
    cases = [(edit(model=KeyError), "'model'"), (edit(rng=KeyError), "'rng'"), (edit(epoch="x"), "'epoch'"),
             (edit(epoch=True), "'epoch'"), (edit(step=-1), "'step'"), (edit(optimizer={}), "'optimizer'"),
             (edit(scaler=KeyError), "'scaler'"), (edit(rng={"torch": "x"}), "'rng'"),
             (edit(model=foreign), "does not fit this model"), (edit(model=wrong_shape), "does not fit"),
             (edit(rng=rng_bad_np), "'rng' cannot be restored"), (edit(run_config=None), "run_config"),
             (edit(run_config={k: v for k, v in good["run_config"].items() if k != "data"}),
              "records no data identity"),
             ([1, 2], "not a resumable"), (b"garbage", "not a resumable")]
    for ck, match in cases:
        torch.save(ck, path)
        _refused(run_cli, cmd, match)
    with open(path, "wb") as f:
        f.write(b"\x80\x02not a zip")
    _refused(run_cli, cmd, "cannot load the checkpoint")


def test_cut_log_keeps_one_row_per_epoch_of_this_run(tmp_path):
    from tinyvit.jobs.train import _cut_log

    path = str(tmp_path / "log.jsonl")
    rows = [{"epoch": -3, "mode": "hard"}, {"epoch": 0, "mode": "hard", "v": "a"}, {"epoch": True, "mode": "hard"},
            {"epoch": 1, "mode": "hard", "v": "old"}, {"epoch": 0, "mode": "distill"}, {"epoch": 1, "mode": "hard",
            "v": "new"}, {"epoch": 2, "mode": "hard"}, [1], {"epoch": "1", "mode": "hard"}]
    with open(path, "wb") as f:
        for r in rows[:3]:
            f.write(json.dumps(r).encode() + b"\n")
        f.write(b'{"epoch": 1, "mode": "hard", "x": "\xff\xfe"}\n')  # not UTF-8: was fatal
        for r in rows[3:]:
            f.write(json.dumps(r).encode() + b"\n")
        f.write(b'{"epoch": 1, "mo')  # torn by a kill
    kept = _cut_log(path, 1, "hard")
    assert kept == [{"epoch": 0, "mode": "hard", "v": "a"}, {"epoch": 1, "mode": "hard", "v": "new"}]
    assert [json.loads(l) for l in open(path, encoding="utf-8")] == kept
