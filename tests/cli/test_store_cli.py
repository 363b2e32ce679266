"""`tinyvit inspect` / `verify` on the public LogitStore API: missing(epoch, first, count),
audit, absent_epochs and epoch_path (no private store member)."""
import re

import numpy as np
import pytest
import torch

from tinyvit import LogitStore


@pytest.fixture
def store3(tmp_path, teacher_topk):
    """N = 50, 3 epochs: epoch 0 complete, epoch 1 samples 10..49 written, epoch 2's file deleted."""
    s = LogitStore.create(tmp_path / "s", 50, 20, 3, aug_fingerprint="aug", epochs=3)
    seeds, idx, v = teacher_topk(50, 20, 3, seed=1)
    s.write(0, torch.arange(50), seeds, idx, v)
    s.write(1, torch.arange(10, 50), seeds[10:], idx[10:], v[10:])
    s.close()
    (tmp_path / "s" / "epoch_00002.bin").unlink()
    return tmp_path / "s"


def test_missing_range_is_a_slice_of_the_full_scan(store3):
    s = LogitStore.open(store3)
    full = s.missing(1)
    assert full.tolist() == list(range(10))
    for first, count in ((0, 7), (5, 10), (9, 41), (10, 40), (49, 1), (0, 0)):
        want = full[(full >= first) & (full < first + count)]
        assert np.array_equal(s.missing(1, first, count), want), (first, count)
    assert s.missing(1, 8).tolist() == [8, 9]  # count defaults to the end
    assert s.absent_epochs() == {2}
    assert s.epoch_path(2) == str(store3 / "epoch_00002.bin")


def test_inspect_and_verify_report_each_epoch(store3, run_cli):
    for cmd in ("inspect", "verify"):
        code, out, err = run_cli(cmd, store3, "--no-progress", "--chunk", "16")
        assert code == 1 and "Traceback" not in out + err
        absent = [line for line in out.splitlines() if "epoch_00002.bin (epoch 2): data file does not exist" in line]
        assert len(absent) == 1 and "EpochMissingError" in absent[0], out
    code, out, _ = run_cli("inspect", store3, "--no-progress", "--chunk", "16", "--records", "2")
    assert re.search(r"\n +1 +80\.00% +10 +incomplete \(first missing or invalid sample 0\)\n", out), out
    assert "sample 0: seed" in out and "sample 1: seed" in out  # records of epoch 0
    code, out, _ = run_cli("verify", store3, "--no-progress", "--chunk", "16", "--epoch", "1")
    assert code == 1 and "missing 10" in out and f"in {store3 / 'epoch_00001.bin'}" in out
    assert run_cli("verify", store3, "--no-progress", "--epoch", "0")[0] == 0
