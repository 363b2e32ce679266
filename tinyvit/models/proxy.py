"""Proxy scorers for the contraction search, and a small Fashion-MNIST reader.

A scorer is any callable ``scorer(factors) -> float`` (validation top-1 accuracy in [0, 1]) with
an optional ``config() -> dict`` describing it (logged, and checked on resume so cached scores
are only reused for the same proxy). Two are provided:

* :class:`DistillProxy` ("distill"): a few epochs of stored-logit distillation -- the student
  is trained against the teacher's sparse top-K probabilities read from a
  :class:`tinyvit.LogitStore` with :func:`tinyvit.sparse_soft_cross_entropy` (paper Sec. 3.1);
* :class:`LabelsProxy` ("labels"): the same loop with hard-label cross-entropy (fallback when
  no store is given).

Both are deterministic for a fixed ``seed`` (init, shuffling) on CPU.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data.idx import read_idx
from .contraction import ContractionFactors

from ..data.datasets import FASHION_MNIST_DIR  # noqa: E402
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: str) -> np.ndarray:
    return read_idx(path, None)


def load_fashion_mnist(split: str = "train", limit: Optional[int] = None, offset: int = 0,
                       root: str = FASHION_MNIST_DIR) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] and labels int64 [N] of ``split`` ("train" or "test"),
    samples ``offset .. offset + limit`` (Debian package ``dataset-fashion-mnist``)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    xi, yi = (os.path.join(root, f) for f in _FILES[split])
    x, y = _read_idx(xi), _read_idx(yi)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{xi}: {x.shape[0]} images but {yi} has {y.shape[0]} labels")
    end = x.shape[0] if limit is None else offset + limit
    if offset < 0 or end > x.shape[0]:
        raise ValueError(f"{split}: samples [{offset}, {end}) out of range (N = {x.shape[0]})")
    return x[offset:end], y[offset:end].astype(np.int64)


def to_tensor(images: np.ndarray, img_size: int) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, img_size, img_size], normalised to zero mean / unit
    std (Fashion-MNIST statistics). 28 px is zero-padded to 32; other sizes are resized."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0).unsqueeze(1)
    h = x.shape[-1]
    if img_size != h:
        if img_size > h and (img_size - h) % 2 == 0 and img_size - h <= 8:
            p = (img_size - h) // 2
            x = F.pad(x, (p, p, p, p))
        else:
            x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return (x - 0.2860) / 0.3530


class _TrainEvalProxy:
    """Shared loop: build the model from factors, train ``epochs`` epochs with AdamW, return
    top-1 accuracy on the validation tensors."""

    name = "base"

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                 val_y: torch.Tensor, num_classes: int, epochs: int = 3, batch: int = 32,
                 lr: float = 3e-3, weight_decay: float = 0.05, seed: int = 0,
                 data_id: str = "", device="cpu"):
        if epochs < 1 or batch < 1:
            raise ValueError(f"epochs and batch must be >= 1, got epochs={epochs}, batch={batch}")
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.num_classes, self.epochs, self.batch = num_classes, epochs, batch
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        self.data_id, self.device = data_id, torch.device(device)
        self.img_size = int(train_x.shape[-1])
        self.in_chans = int(train_x.shape[1])

    def config(self) -> Dict:
        return {"proxy": self.name, "epochs": self.epochs, "batch": self.batch, "lr": self.lr,
                "weight_decay": self.weight_decay, "seed": self.seed, "data": self.data_id,
                "num_train": int(self.train_x.shape[0]), "num_val": int(self.val_x.shape[0]),
                "img_size": self.img_size, "in_chans": self.in_chans}

    def _loss(self, logits: torch.Tensor, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, factors: ContractionFactors) -> float:
        torch.manual_seed(self.seed)
        model = factors.build(num_classes=self.num_classes, img_size=self.img_size,
                              in_chans=self.in_chans, drop_path_rate=0.0).to(self.device)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = self.train_x.shape[0]
        steps = self.epochs * ((n + self.batch - 1) // self.batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps,
                                                    pct_start=0.2)
        g = torch.Generator().manual_seed(self.seed)
        model.train()
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=g)
            for s in range(0, n, self.batch):
                idx = order[s:s + self.batch]
                logits = model(self.train_x[idx].to(self.device))
                loss = self._loss(logits, idx, epoch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for s in range(0, self.val_x.shape[0], 256):
                pred = model(self.val_x[s:s + 256].to(self.device)).argmax(1).cpu()
                correct += int((pred == self.val_y[s:s + 256]).sum())
        return correct / self.val_x.shape[0]


class LabelsProxy(_TrainEvalProxy):
    """Hard-label cross-entropy proxy (no teacher)."""

    name = "labels"

    def _loss(self, logits, idx, epoch):
        return F.cross_entropy(logits, self.train_y[idx].to(logits.device))


class DistillProxy(_TrainEvalProxy):
    """Stored-logit distillation proxy: sample ``i`` of the training tensors is record ``i``
    of the store; epoch ``e`` reads store epoch ``e % store.epochs`` (the proxy uses no
    augmentation, so the stored seeds are not replayed)."""

    name = "distill"

    def __init__(self, store, *args, **kwargs):
        super().__init__(*args, **kwargs)
        m = store.manifest
        if m["num_samples"] != self.train_x.shape[0]:
            raise ValueError(f"{store.path}: store has num_samples={m['num_samples']} but the proxy "
                             f"trains on {self.train_x.shape[0]} samples")
        if m["num_classes"] != self.num_classes:
            raise ValueError(f"{store.path}: store has num_classes={m['num_classes']} but the data "
                             f"has {self.num_classes}")
        if m["epochs"] < 1:
            raise ValueError(f"{store.path}: store has no epochs")
        for e in range(min(m["epochs"], self.epochs)):
            if len(store.missing(e)):
                raise ValueError(f"{store.path}: epoch {e} has {len(store.missing(e))} "
                                 f"unwritten/corrupt records")
        self.store = store

    def config(self) -> Dict:
        c = super().config()
        m = self.store.manifest
        # Identity by store_id (not path): a moved store still resumes the same search.
        c["store"] = {"store_id": m.get("store_id"),
                      "topk": m["topk"], "epochs": m["epochs"]}
        return c

    def _loss(self, logits, idx, epoch):
        from .. import sparse_soft_cross_entropy

        _, ind, prob = self.store.read(epoch % self.store.manifest["epochs"], idx)
        return sparse_soft_cross_entropy(logits, ind.to(logits.device), prob.to(logits.device))


def make_teacher_store(path: str, teacher: ContractionFactors, train_x: torch.Tensor,
                       train_y: torch.Tensor, num_classes: int, topk: int = 5,
                       epochs: int = 3, seed: int = 0, batch: int = 64, data_id: str = ""):
    """Train ``teacher`` on the hard labels for ``epochs`` epochs, then save its top-``topk``
    probabilities for every training sample as epoch 0 of a new LogitStore at ``path``
    (seeds 0: the proxy does not augment). Returns the open store (mode "r+")."""
    from .. import LogitStore

    torch.manual_seed(seed)
    model = teacher.build(num_classes=num_classes, img_size=int(train_x.shape[-1]),
                          in_chans=int(train_x.shape[1]), drop_path_rate=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    g = torch.Generator().manual_seed(seed)
    n = train_x.shape[0]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    store = LogitStore.create(path, n, num_classes, topk, aug_fingerprint="none",
                              teacher={"factors": teacher.to_dict(), "epochs": epochs,
                                       "seed": seed},
                              dataset_fingerprint=data_id or None, epochs=1)
    model.eval()
    with torch.inference_mode():
        for s in range(0, n, 256):
            p = model(train_x[s:s + 256]).float().softmax(-1)
            v, i = p.topk(topk, dim=-1)
            idx = torch.arange(s, min(s + 256, n))
            store.write(0, idx, torch.zeros(len(idx), dtype=torch.int64), i, v)
    return store


ScorerFn = Callable[[ContractionFactors], float]
