"""Tiny synthetic stores and a recording store for the trainer-integration tests (also run
as the torchrun / Lightning worker scripts' imports)."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

import tinyvit
from tinyvit.jobs.save_logits import open_or_create_store, save_logits

CFG = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
CFG_NOMIX = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
                              mixup_alpha=0.0, cutmix_alpha=0.0)
NUM_CLASSES = 10


def synthetic(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return tinyvit.ArrayDataset(rng.integers(0, 256, (n, 20, 20, 3), dtype=np.uint8),
                                rng.integers(0, NUM_CLASSES, n), name=f"synthetic{n}")


class LinearTeacher(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(3 * 16 * 16, NUM_CLASSES, generator=g) * 0.2)

    def forward(self, x):
        return x.flatten(1) @ self.w


def make_store(path, ds, epochs=3, cfg=CFG, topk=3, base_seed=7, fill=None):
    """A store of ``epochs`` epochs; ``fill`` (default all) = the epochs to write."""
    store = open_or_create_store(str(path), dataset=ds, cfg=cfg, num_classes=NUM_CLASSES,
                                 topk=topk, epochs=epochs, base_seed=base_seed,
                                 teacher_desc={"model": "linear"})
    save_logits(LinearTeacher(), ds, store, cfg, epochs=range(epochs) if fill is None else fill,
                batch_size=16, progress=False, log=lambda *a, **k: None)
    return tinyvit.LogitStore.open(str(path))


class RecordingStore(tinyvit.LogitStore):
    """A LogitStore that records every read: ``reads`` [(epoch, [indices])], and appends a
    JSON line per read to ``log_path`` when set (one file per rank in the multi-process
    tests). Asserting on these is asserting on what was READ, not on what training did."""

    log_path = None

    def read(self, epoch, sample_indices, *args, **kwargs):
        idx = [int(i) for i in np.asarray(sample_indices).reshape(-1)]
        self.__dict__.setdefault("reads", []).append((int(epoch), idx))
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps({"epoch": int(epoch), "indices": idx}) + "\n")
        return super().read(epoch, sample_indices, *args, **kwargs)

    def __reduce__(self):
        return (_reopen_recording, (self.path, self.mode, self.log_path))


def _reopen_recording(path, mode, log_path):
    s = RecordingStore.open(path, mode)
    s.log_path = log_path
    return s


def open_recording(path, log_path=None):
    s = RecordingStore.open(str(path))
    s.log_path = log_path
    return s


def epochs_read(reads):
    """The store epoch of each pass, from a list of (epoch, indices) reads in order."""
    out = []
    for e, _ in reads:
        if not out or out[-1] != e:
            out.append(e)
    return out


def load_log(path):
    with open(path) as f:
        return [(d["epoch"], d["indices"]) for d in map(json.loads, f)]


def check_ranks(logs, num_samples, epochs):
    """Per rank: store epochs read in order == epochs; per epoch: ranks disjoint, union complete."""
    for rank, reads in enumerate(logs):
        assert epochs_read(reads) == list(epochs), (rank, epochs_read(reads))
    for e in epochs:
        per_rank = [[i for ep, idx in reads if ep == e for i in idx] for reads in logs]
        sets = [set(r) for r in per_rank]
        for r, (lst, st) in enumerate(zip(per_rank, sets)):
            assert len(lst) == len(st), f"rank {r} read a sample twice in epoch {e}"
        for a in range(len(sets)):
            for b in range(a + 1, len(sets)):
                assert not sets[a] & sets[b], f"epoch {e}: ranks {a} and {b} share {sorted(sets[a] & sets[b])[:5]}"
        assert set().union(*sets) == set(range(num_samples)), f"epoch {e}: union incomplete"


def env_threads():
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
