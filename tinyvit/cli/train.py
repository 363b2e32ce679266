"""`tinyvit train`: arguments -> the one training loop (``tinyvit.jobs.train.train``)."""
from __future__ import annotations

import argparse
import json
import os

import torch

from ..augment.config import AugConfig
from ..data.datasets import open_dataset
from ..data.loader import DistillLoader, ReplayLoader
from ..jobs.distributed import init_distributed
from ..jobs.evaluate import eval_tensors
from ..jobs.models import build_model, parse_kwargs
from ..jobs.train import train
from ..store import LogitStore
from .options import add_aug_arguments, aug_config_from_args


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a timm student: from a logit store, hard labels, or an online teacher",
        description="Train a student. --distill STORE replays the stored augmentations and trains on "
        "the stored sparse soft labels (no teacher, no labels); --hard-labels trains on labels; "
        "--online-teacher runs a teacher every step (dense KD). torchrun for DDP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="student: timm model name or module:function")
    p.add_argument("--model-kwargs", default=None, help="JSON object of extra model kwargs")
    p.add_argument("--data", required=True, help="ImageFolder directory or fashion-mnist[:DIR]")
    p.add_argument("--subset", type=int, default=None, help="first N training samples")
    p.add_argument("--val-subset", type=int, default=None, help="first N validation samples")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--in-chans", type=int, default=3, choices=[1, 3],
                   help="1: the student takes the channel mean (grayscale data)")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--distill", metavar="STORE", help="train on this logit store (label-free)")
    m.add_argument("--hard-labels", action="store_true", help="no distillation")
    m.add_argument("--online-teacher", metavar="MODEL", help="teacher (timm name or module:function) "
                   "run every step; weights from --teacher-checkpoint")
    p.add_argument("--teacher-checkpoint", default=None)
    p.add_argument("--teacher-kwargs", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing (--hard-labels)")
    p.add_argument("--base-seed", type=int, default=0, help="augmentation seeds (not with --distill: "
                   "the store's)")
    p.add_argument("--seed", type=int, default=0, help="model init seed")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", default=None, help="directory for log.jsonl and last.pt")
    p.add_argument("--no-progress", action="store_true")
    add_aug_arguments(p)
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    dist = init_distributed(args.device)
    torch.manual_seed(args.seed)
    dataset = open_dataset(args.data, "train", args.subset)
    store = None
    if args.distill:
        store = LogitStore.open(args.distill)
        stored = (store.manifest.get("meta") or {}).get("aug_config")
        cfg = aug_config_from_args(args, AugConfig.from_dict(stored) if stored else None)
        num_classes = args.num_classes or store.num_classes
    else:
        cfg = aug_config_from_args(args)
        num_classes = args.num_classes or dataset.num_classes
    student = build_model(args.model, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                          kwargs=parse_kwargs(args.model_kwargs))
    teacher = None
    if args.online_teacher:
        teacher = build_model(args.online_teacher, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                              checkpoint=args.teacher_checkpoint, kwargs=parse_kwargs(args.teacher_kwargs))
    if store is not None:
        loader = DistillLoader(dataset, store, cfg, batch_size=args.batch_size, num_workers=args.workers,
                               device=dist.device, num_classes=num_classes, epoch=0)
        # every epoch must be present and complete before the first step
        for e in range(args.epochs):
            loader.set_epoch(e)
        mode = "distill"
    else:
        loader = ReplayLoader(dataset, cfg, base_seed=args.base_seed, batch_size=args.batch_size,
                              num_workers=args.workers, device=dist.device)
        mode = "online" if teacher is not None else "hard"
    val = open_dataset(args.data, "test", args.val_subset)
    eval_data = eval_tensors(val, cfg.height)
    if args.out and dist.main:
        os.makedirs(args.out, exist_ok=True)
    res = train(student, loader, mode=mode, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                warmup_epochs=args.warmup_epochs, smoothing=args.smoothing, teacher=teacher,
                num_classes=num_classes, device=dist.device, amp=not args.no_amp, dist=dist,
                eval_data=eval_data, out_dir=args.out, progress=not args.no_progress, in_chans=args.in_chans)
    if dist.main:
        print(json.dumps({"mode": mode, "val_acc": res["val_acc"], "step_time_s": res["step_time_s"]}))
    if dist.enabled:
        torch.distributed.destroy_process_group()
    return 0
