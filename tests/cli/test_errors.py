"""One error path: every subcommand's expected failure is one line `tinyvit CMD: error: ...`
on stderr and exit 2 (in-process through tinyvit.cli.main, so these are fast)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tinyvit
import tinyvit.cli
from tinyvit.data.datasets import FASHION_MNIST_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_fmnist = pytest.mark.skipif(not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
                                  reason="dataset-fashion-mnist not installed")
AUG = ["--img-size", "16"]


def one_line_error(run_cli, command, *argv, match):
    code, out, err = run_cli(command, *argv)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tinyvit {command}: error: "), lines[0]
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def store64(tmp_path_factory):
    """A 64-sample, 16 px, 1-epoch store (random teacher: only the layout matters here)."""
    path = tmp_path_factory.mktemp("s") / "store"
    assert tinyvit.cli.main(["save-logits", str(path), "--data", "fashion-mnist", "--subset", "64", "--model",
                             "test_resnet", "--random-teacher", "--epochs", "1", "--topk", "3", "--batch-size",
                             "32", "--no-progress", "--device", "cpu"] + AUG) == 0
    return str(path)


def test_train_bad_data_model_and_values(run_cli, tmp_path):
    base = ["--hard-labels", "--model", "test_resnet", "--epochs", "1", "--device", "cpu"]
    one_line_error(run_cli, "train", "--data", "/nonexistent", *base, match="'/nonexistent'")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", "--subset", "8", "--hard-labels", "--model",
                   "no_such_model", match="'no_such_model'")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", *base, "--hflip", "1.5", match="--hflip")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", *base, "--auto-augment", "rand-m9-foo",
                   match="'foo'")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", *base, "--batch-size", "0", match="--batch-size")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", *base, "--model-kwargs", "[1]",
                   match="JSON object")
    one_line_error(run_cli, "train", "--data", "fashion-mnist", "--online-teacher", "test_resnet", "--model",
                   "test_resnet", match="--random-teacher")


@needs_fmnist
def test_train_distill_on_a_store_of_another_subset_or_size(run_cli, store64, tmp_path):
    base = ["--model", "test_resnet", "--epochs", "1", "--device", "cpu", "--no-progress"]
    one_line_error(run_cli, "train", "--distill", store64, "--data", "fashion-mnist", "--subset", "32", *base,
                   match="num_samples 64")
    line = one_line_error(run_cli, "train", "--distill", store64, "--data", "fashion-mnist", "--subset", "64",
                          *base, "--img-size", "24", match="aug_fingerprint")
    assert store64 in line
    one_line_error(run_cli, "train", "--distill", store64, "--data", "fashion-mnist", "--subset", "64", *base,
                   "--epochs", "2", match="asks for 2 epochs but the store holds 1")
    one_line_error(run_cli, "train", "--distill", str(tmp_path / "nothing"), "--data", "fashion-mnist", *base,
                   match="nothing")


@needs_fmnist
def test_save_logits_bad_values_before_any_work(run_cli, tmp_path):
    s = str(tmp_path / "s")
    base = [s, "--data", "fashion-mnist", "--subset", "16", "--model", "test_resnet", "--random-teacher",
            "--epochs", "1", "--topk", "3", "--device", "cpu"] + AUG
    one_line_error(run_cli, "save-logits", *base, "--hflip", "1.5", match="--hflip: must be a probability")
    one_line_error(run_cli, "save-logits", *base, "--auto-augment", "rand-m9-foo", match="rand-m9-foo")
    one_line_error(run_cli, "save-logits", *base, "--batch-size", "0", match="--batch-size: must be >= 1")
    one_line_error(run_cli, "save-logits", *base, "--topk", "10", match="--topk")
    one_line_error(run_cli, "save-logits", *base, "--start-epoch", "1", match="--start-epoch")
    one_line_error(run_cli, "save-logits", s, "--data", "fashion-mnist", "--model", "test_resnet", "--epochs", "1",
                   match="--random-teacher")
    one_line_error(run_cli, "save-logits", *base[:-2], "--checkpoint", str(tmp_path / "no.pt"),
                   match="exclude")
    assert not os.path.exists(s)  # nothing was created


@needs_fmnist
def test_save_logits_refuses_another_config_and_keeps_the_store(run_cli, store64):
    before = open(os.path.join(store64, "manifest.json")).read()
    one_line_error(run_cli, "save-logits", store64, "--data", "fashion-mnist", "--subset", "64", "--model",
                   "test_resnet", "--random-teacher", "--epochs", "1", "--topk", "3", "--img-size", "24",
                   "--no-progress", match="aug_fingerprint")
    assert open(os.path.join(store64, "manifest.json")).read() == before
    assert tinyvit.LogitStore.open(store64).missing(0).size == 0


def test_contract_demo_show_info_inspect(run_cli, tmp_path, store64):
    one_line_error(run_cli, "contract", "--from", "no_such_preset", "--max-params", "1M", "--log",
                   str(tmp_path / "c.jsonl"), match="'no_such_preset'")
    one_line_error(run_cli, "contract", "--max-params", "1M", "--data", "/x", "--log", str(tmp_path / "c.jsonl"),
                   match="fashion-mnist")
    one_line_error(run_cli, "demo", "--epochs", "0", match="--epochs: must be >= 1")
    one_line_error(run_cli, "demo", "--seeds", "0", match="--seeds")
    one_line_error(run_cli, "demo", "--topk", "10", match="--topk")
    one_line_error(run_cli, "demo", "--student", "no_such_model", match="'no_such_model'")
    one_line_error(run_cli, "show", store64, "--data", "fashion-mnist", "--epoch", "3", "--out",
                   str(tmp_path / "g.png"), match="--epoch 3")
    one_line_error(run_cli, "show", store64, "--data", "fashion-mnist", "--subset", "32", "--out",
                   str(tmp_path / "g.png"), match="num_samples 64")
    one_line_error(run_cli, "inspect", str(tmp_path / "none"), match="none")
    one_line_error(run_cli, "verify", str(tmp_path / "none"), match="none")
    one_line_error(run_cli, "info", "--no-such-flag", match="--no-such-flag")


def test_traceback_flag_and_env_show_the_trace(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tinyvit", "train", "--data", "/nonexistent", "--hard-labels", "--model",
           "test_resnet"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--traceback"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "DatasetError" in r.stderr
    r = subprocess.run(cmd, cwd=ROOT, env=dict(env, TINYVIT_TRACEBACK="1"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_help_has_one_default_per_option_and_python_m_works(run_cli):
    import argparse

    parser = tinyvit.cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for cmd, p in sub.choices.items():
        assert p.description, f"{cmd} has no description"
        fmt = p._get_formatter()
        for a in p._actions:
            if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
                continue
            assert a.help, f"{cmd} {a.option_strings or a.dest}: no help"
            text = fmt._expand_help(a) if hasattr(fmt, "_expand_help") else a.help
            assert text.lower().count("default") <= 1, f"{cmd} {a.option_strings}: {text!r}"
            assert "default: None" not in text and "default: False" not in text, (cmd, text)
        code, out, err = run_cli(cmd, "--help")
        assert code == 0 and out
    r = subprocess.run([sys.executable, "-m", "tinyvit", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0 and "save-logits" in r.stdout and "show" in r.stdout


def test_an_internal_error_exits_70_with_one_line_never_1(run_cli, monkeypatch, tmp_path):
    """A bug (an exception no input should cause) is not 'findings' (1) nor 'bad input' (2):
    one line naming it, 'please report', exit 70; --traceback / TINYVIT_TRACEBACK=1 show it."""
    import tinyvit.cli.store as cli_store

    def boom(args):
        raise KeyError("internal_field")

    monkeypatch.setattr(cli_store, "cmd_verify", boom)
    code, out, err = run_cli("verify", str(tmp_path))
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == tinyvit.cli.EXIT_INTERNAL == 70, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("tinyvit verify: internal error: KeyError: 'internal_field'") and \
        "please report" in lines[0], lines[0]
    with pytest.raises(KeyError):
        tinyvit.cli.main(["verify", str(tmp_path), "--traceback"])
    monkeypatch.setenv("TINYVIT_TRACEBACK", "1")
    with pytest.raises(KeyError):
        tinyvit.cli.main(["verify", str(tmp_path)])
    monkeypatch.delenv("TINYVIT_TRACEBACK")
    # expected failures keep exit 2, findings keep 1: only the unexpected moved
    monkeypatch.undo()
    one_line_error(run_cli, "verify", str(tmp_path / "none"), match="none")
