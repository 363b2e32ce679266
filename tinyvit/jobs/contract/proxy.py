"""Proxy scorers for the contraction search: short runs of the one training loop.

A scorer is any callable ``scorer(factors) -> float`` (validation top-1 accuracy in [0, 1]) with
an optional ``config() -> dict`` describing it (logged, and checked on resume so cached scores
are only reused for the same proxy). The two provided here are not a second trainer: each
candidate is trained by :func:`tinyvit.jobs.train.train` (the loop behind ``tinyvit train`` and
the demo) on batches from the drop-in loaders, and scored by :func:`tinyvit.jobs.evaluate.evaluate`
on :func:`~tinyvit.jobs.evaluate.eval_tensors` images:

* :class:`DistillProxy` ("distill"): stored-logit distillation -- a :class:`tinyvit.DistillLoader`
  replays every training image from the store's seed for that epoch and yields the teacher's
  sparse top-K targets (paper Sec. 3.1, Eq. 2); epoch ``e`` reads store epoch ``e``.
* :class:`LabelsProxy` ("labels"): the same images from a :class:`tinyvit.ReplayLoader`, hard
  labels mixed with Mixup/CutMix and smoothed (fallback when no store is given).

Data: :func:`proxy_datasets` splits one :mod:`tinyvit.data` dataset (Fashion-MNIST) into the
training and validation subsets; augmentation defaults to the demo's small-image recipe
(``tinyvit.jobs.recipes.student_aug_config``, the one place that default is chosen). :func:`make_teacher_store` trains the teacher with the
same loop and fills the store with ``tinyvit.jobs.save_logits``. Deterministic for a fixed
``seed`` on CPU (init from ``seed``, images and order from the loaders' base seed).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from ...data.datasets import ArrayDataset, DatasetError, open_dataset
from ...data.loader import DistillLoader, ReplayLoader
from ...models.contraction import ContractionFactors
from ..evaluate import eval_tensors, evaluate
from ..recipes import student_aug_config, teacher_loader
from ..save_logits import open_or_create_store, save_logits
from ..train import train

__all__ = ["proxy_datasets", "DistillProxy", "LabelsProxy", "make_teacher_store", "ScorerFn"]

# Identifies the trainer in config(): logs scored by the old stand-alone proxy loop (no
# augmentation, one-cycle) carry no "loop" key, so resuming one is refused, never reused.
LOOP = "tinyvit.jobs.train/1"


def proxy_datasets(spec: str, n_train: int, n_val: int):
    """The first ``n_train`` samples of ``spec``'s training split and the next ``n_val``, as two
    :class:`tinyvit.data.ArrayDataset` (disjoint; each with its own fingerprint, so a store made
    for one training subset is refused for another). ``spec``: ``fashion-mnist[:DIR]``."""
    if n_train < 1 or n_val < 1:
        raise DatasetError(f"{spec}: need >= 1 training and validation samples, got "
                           f"{n_train} and {n_val}")
    ds = open_dataset(spec, "train", n_train + n_val)
    if not isinstance(ds, ArrayDataset):
        raise DatasetError(f"{spec}: the contraction search needs an in-memory dataset "
                           f"(fashion-mnist[:DIR]), got {type(ds).__name__}")
    name = getattr(ds, "name", "data")

    def part(a, b):
        return ArrayDataset(ds.images[a:b], ds.targets[a:b], ds.classes, name=f"{name}[{a}:{b}]")

    return part(0, n_train), part(n_train, n_train + n_val)


class _LoopProxy:
    """Build the model from factors, train it ``epochs`` epochs with the one loop (AdamW,
    linear warm-up over ``warmup`` of the run, cosine), return top-1 on the validation set."""

    name = "base"
    mode = ""
    loader = None  # set by the subclass: the one loader every candidate trains on

    def __init__(self, train_ds, val_ds, *, num_classes: int, img_size: int, epochs: int = 3,
                 batch: int = 32, lr: float = 3e-3, weight_decay: float = 0.05, warmup: float = 0.2,
                 smoothing: float = 0.1, seed: int = 0, aug_config=None, in_chans: int = 1,
                 data_id: str = "", device="cpu"):
        if epochs < 1 or batch < 1:
            raise ValueError(f"epochs and batch must be >= 1, got epochs={epochs}, batch={batch}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the run in [0, 1), got {warmup}")
        self.cfg = student_aug_config(img_size, aug_config)
        if (self.cfg.height, self.cfg.width) != (img_size, img_size):
            raise ValueError(f"aug_config makes {self.cfg.height}x{self.cfg.width} images, "
                             f"the proxy trains at img_size={img_size}")
        self.train_ds, self.num_classes, self.img_size = train_ds, num_classes, img_size
        self.epochs, self.batch, self.lr, self.weight_decay = epochs, batch, lr, weight_decay
        self.warmup, self.smoothing, self.seed, self.in_chans = warmup, smoothing, seed, in_chans
        self.data_id, self.device = data_id, torch.device(device)
        self.val = eval_tensors(val_ds, img_size)

    def config(self) -> Dict:
        return {"proxy": self.name, "loop": LOOP, "epochs": self.epochs, "batch": self.batch,
                "lr": self.lr, "weight_decay": self.weight_decay, "warmup": self.warmup,
                "smoothing": self.smoothing, "seed": self.seed, "aug": self.cfg.fingerprint(),
                "data": self.data_id, "num_train": len(self.train_ds), "num_val": len(self.val[1]),
                "img_size": self.img_size, "in_chans": self.in_chans}

    def train_model(self, factors: ContractionFactors) -> torch.nn.Module:
        """The candidate built from ``factors`` and trained by the one loop (on CPU: the same
        weights for the same factors, every call)."""
        torch.manual_seed(self.seed)
        model = factors.build(num_classes=self.num_classes, img_size=self.img_size,
                              in_chans=self.in_chans, drop_path_rate=0.0)
        # one loader for every candidate: train() sets its epoch 0.. each run
        train(model, self.loader, mode=self.mode, epochs=self.epochs, lr=self.lr,
              weight_decay=self.weight_decay, warmup_epochs=self.warmup * self.epochs,
              smoothing=self.smoothing, num_classes=self.num_classes, device=self.device, amp=False,
              in_chans=self.in_chans, progress=False, bars=False)
        return model

    def __call__(self, factors: ContractionFactors) -> float:
        return evaluate(self.train_model(factors), *self.val, self.cfg, self.device,
                        in_chans=self.in_chans)


class LabelsProxy(_LoopProxy):
    """Hard labels (no teacher): ``ReplayLoader`` images, Mixup/CutMix-mixed smoothed labels.
    ``base_seed`` (default ``seed``) draws the augmentations."""

    name = "labels"
    mode = "hard"

    def __init__(self, train_ds, val_ds, *, base_seed: Optional[int] = None, **kwargs):
        super().__init__(train_ds, val_ds, **kwargs)
        self.base_seed = self.seed if base_seed is None else int(base_seed)
        self.loader = ReplayLoader(train_ds, self.cfg, base_seed=self.base_seed, batch_size=self.batch)

    def config(self) -> Dict:
        return dict(super().config(), base_seed=self.base_seed)


class DistillProxy(_LoopProxy):
    """Stored-logit distillation: a ``DistillLoader`` over ``store`` (which must belong to
    ``train_ds`` and ``aug_config`` and hold ``epochs`` complete epochs -- refused here, before
    any candidate is trained, with the store's typed error otherwise)."""

    name = "distill"
    mode = "distill"

    def __init__(self, store, train_ds, val_ds, **kwargs):
        super().__init__(train_ds, val_ds, **kwargs)
        self.store = store
        # built here, so every check DistillLoader makes runs before the first candidate
        self.loader = DistillLoader(train_ds, store, self.cfg, batch_size=self.batch,
                                    num_classes=self.num_classes, epochs=self.epochs)

    def config(self) -> Dict:
        c = super().config()
        m = self.store.manifest
        # Identity by store_id (not path): a moved store still resumes the same search.
        c["store"] = {"store_id": m.get("store_id"), "topk": m["topk"], "epochs": m["epochs"]}
        return c


def make_teacher_store(path: str, teacher: ContractionFactors, train_ds, *, num_classes: int,
                       img_size: int, epochs: int, topk: int = 5, teacher_epochs: int = 3,
                       seed: int = 0, batch: int = 64, lr: float = 2e-3, aug_config=None,
                       in_chans: int = 1, data_id: str = "", progress: bool = False, log=print):
    """Train ``teacher`` on ``train_ds``'s labels (the one loop, the demo's teacher recipe),
    then run ``tinyvit save-logits``' job: ``epochs`` store epochs of its top-``topk`` over the
    students' augmented images (``aug_config``, default the proxy's). Returns the open store."""
    cfg = student_aug_config(img_size, aug_config)
    torch.manual_seed(seed)
    model = teacher.build(num_classes=num_classes, img_size=img_size, in_chans=in_chans,
                          drop_path_rate=0.0)
    # the teacher's own augmentation stream is independent of the store's (the demo's recipe)
    loader = teacher_loader(train_ds, img_size, seed, batch)
    train(model, loader, mode="hard", epochs=teacher_epochs, lr=lr, num_classes=num_classes,
          in_chans=in_chans, amp=False, progress=progress, bars=progress,
          log=lambda s: log("  teacher " + s))
    store = open_or_create_store(path, dataset=train_ds, cfg=cfg, num_classes=num_classes, topk=topk,
                                 epochs=epochs, base_seed=seed, dataset_spec=data_id or None,
                                 teacher_desc={"factors": teacher.to_dict(), "epochs": teacher_epochs,
                                               "seed": seed})
    save_logits(model, train_ds, store, cfg, epochs=range(epochs), batch_size=256, amp=False,
                in_chans=in_chans, progress=progress, bars=progress,
                log=lambda s: log("  save-logits " + s))
    return store


ScorerFn = Callable[[ContractionFactors], float]
