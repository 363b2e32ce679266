"""`tinyvit train`: arguments -> the one training loop (``tinyvit.jobs.train.train``)."""
from __future__ import annotations

import json
import os

from .options import (HelpFormatter, add_aug_arguments, add_common_arguments, aug_config_from_args,
                      nonneg_float, nonneg_int, positive_float, positive_int, probability)

# The options a checkpoint must agree with to be resumed (everything that changes the result;
# not --device, --workers, --out, --no-progress).
_RUN_FIELDS = ("model", "model_kwargs", "data", "subset", "val_subset", "num_classes", "in_chans",
               "distill", "hard_labels", "online_teacher", "teacher_checkpoint", "teacher_kwargs",
               "random_teacher", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
               "smoothing", "base_seed", "seed", "no_amp", "img_size", "interpolation", "scale", "hflip",
               "auto_augment", "color_jitter", "reprob", "mixup", "cutmix", "mean", "std")


def _data_identity(store, dataset, val, num_classes: int) -> dict:
    """What the run trains on, recorded in last.pt (run_config['data']): a resume on another
    store (store_id: another teacher's, even at the same path), on other files (dataset
    fingerprints: files added, removed or resized) or with another number of classes is
    refused, naming the field (jobs/train.py load_checkpoint)."""
    from ..data.datasets import dataset_fingerprint

    return {"store_id": store.manifest.get("store_id") if store is not None else None,
            "train_fingerprint": dataset_fingerprint(dataset), "train_samples": len(dataset),
            "val_fingerprint": dataset_fingerprint(val), "num_classes": int(num_classes)}


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a timm student: from a logit store, hard labels, or an online teacher",
        description="Train a student. --distill STORE replays the stored augmentations and trains on "
        "the stored sparse soft labels (no teacher, no labels); --hard-labels trains on labels; "
        "--online-teacher runs a teacher every step (dense KD). torchrun for DDP.\n\n"
        "With --out, every epoch appends a row to OUT/log.jsonl and writes OUT/last.pt; rerunning "
        "the same command resumes after the last finished epoch (bit-identical on CPU to a run "
        "that was never interrupted); --restart starts over.",
        formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="student: timm model name or module:function")
    p.add_argument("--model-kwargs", default=None, help="JSON object of extra model kwargs")
    add_common_arguments(p, batch_size=128)
    p.add_argument("--subset", type=positive_int, default=None, help="first N training samples (default: all)")
    p.add_argument("--val-subset", type=positive_int, default=None, help="first N validation samples (default: all)")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="classes C (default: the store's with --distill, else the dataset's)")
    p.add_argument("--in-chans", type=int, default=3, choices=[1, 3],
                   help="1: the student takes the channel mean (grayscale data)")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--distill", metavar="STORE", help="train on this logit store (label-free)")
    m.add_argument("--hard-labels", action="store_true", help="no distillation")
    m.add_argument("--online-teacher", metavar="MODEL", help="teacher (timm name or module:function) "
                   "run every step; weights from --teacher-checkpoint")
    p.add_argument("--teacher-checkpoint", default=None, help="online teacher weights (state dict)")
    p.add_argument("--teacher-kwargs", default=None, help="JSON object of extra teacher kwargs")
    p.add_argument("--random-teacher", action="store_true",
                   help="allow an online timm teacher without --teacher-checkpoint (random init from --seed)")
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs")
    p.add_argument("--reuse-epochs", action="store_true",
                   help="with --distill: train epoch e on stored epoch e %% (stored epochs) when --epochs is "
                   "longer than the store (repeats the stored augmentations; docs/loader.md)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=nonneg_float, default=0.05, help="AdamW weight decay (not on biases/norms)")
    p.add_argument("--warmup-epochs", type=nonneg_float, default=0.0, help="linear warm-up before the cosine decay")
    p.add_argument("--smoothing", type=probability, default=0.1, help="label smoothing (--hard-labels)")
    p.add_argument("--base-seed", type=nonneg_int, default=0,
                   help="augmentation seeds (ignored with --distill: the store's)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed of the model init")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto = cuda when available")
    p.add_argument("--no-amp", action="store_true", help="no autocast on CUDA")
    p.add_argument("--workers", type=nonneg_int, default=0, help="DataLoader worker processes")
    p.add_argument("--out", default=None, help="directory for log.jsonl and last.pt (default: none written)")
    p.add_argument("--restart", action="store_true", help="ignore OUT/last.pt and start at epoch 0")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    add_aug_arguments(p)
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    import torch

    from ..data.datasets import open_dataset
    from ..data.loader import DistillLoader, ReplayLoader
    from ..data.store_config import store_aug_config
    from ..jobs.distributed import init_distributed
    from ..jobs.evaluate import eval_tensors
    from ..jobs.models import build_model, parse_kwargs
    from ..jobs.train import train
    from ..store import LogitStore
    from . import CLIError

    # every check that needs no data first
    if args.online_teacher and not args.teacher_checkpoint and ":" not in args.online_teacher \
            and not args.random_teacher:
        raise CLIError(f"--online-teacher {args.online_teacher}: no --teacher-checkpoint; a randomly "
                       "initialised teacher teaches nothing (pass --random-teacher to do it anyway)")
    if (args.teacher_checkpoint or args.random_teacher) and not args.online_teacher:
        raise CLIError("--teacher-checkpoint / --random-teacher need --online-teacher")
    model_kwargs, teacher_kwargs = parse_kwargs(args.model_kwargs), parse_kwargs(args.teacher_kwargs)
    if not args.distill:
        cfg = aug_config_from_args(args)
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out!r} exists and is not a directory")
    dist = init_distributed(args.device)
    store = None
    if args.distill:
        store = LogitStore.open(args.distill)
        # the store's recorded config under the options; none recorded: the options alone
        # (DistillLoader then checks their fingerprint against the store's)
        cfg = aug_config_from_args(args, store_aug_config(store, required=False))
        num_classes = args.num_classes or store.num_classes
    dataset = open_dataset(args.data, "train", args.subset)
    if store is None:
        num_classes = args.num_classes or dataset.num_classes
    val = open_dataset(args.data, "test", args.val_subset)
    if store is not None:
        # epochs=: every epoch the run will train must be stored and complete before the first step
        loader = DistillLoader(dataset, store, cfg, batch_size=args.batch_size, num_workers=args.workers,
                               device=dist.device, num_classes=num_classes, epoch=0, epochs=args.epochs,
                               reuse_epochs=args.reuse_epochs)
        mode = "distill"
    else:
        loader = ReplayLoader(dataset, cfg, base_seed=args.base_seed, batch_size=args.batch_size,
                              num_workers=args.workers, device=dist.device)
        mode = "online" if args.online_teacher else "hard"
    torch.manual_seed(args.seed)  # same init on every rank
    student = build_model(args.model, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                          kwargs=model_kwargs)
    teacher = None
    if args.online_teacher:
        torch.manual_seed(args.seed + 1)
        teacher = build_model(args.online_teacher, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                              checkpoint=args.teacher_checkpoint, kwargs=teacher_kwargs)
        if not args.teacher_checkpoint and dist.main:
            print(f"tinyvit train: the online teacher {args.online_teacher} has no checkpoint: "
                  f"random init (seed {args.seed + 1})")
    eval_data = eval_tensors(val, cfg.eval_config())  # = tinyvit.eval_config(store): size, interp, crop
    if args.out and dist.main:
        os.makedirs(args.out, exist_ok=True)
    run_config = {k: getattr(args, k) for k in _RUN_FIELDS}
    run_config["aug_fingerprint"] = cfg.fingerprint()
    run_config["data"] = _data_identity(store, dataset, val, num_classes)  # resume refuses other data
    res = train(student, loader, mode=mode, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                warmup_epochs=args.warmup_epochs, smoothing=args.smoothing, teacher=teacher,
                num_classes=num_classes, device=dist.device, amp=not args.no_amp, dist=dist,
                eval_data=eval_data, out_dir=args.out, progress=True, bars=not args.no_progress,
                in_chans=args.in_chans, resume=not args.restart, run_config=run_config)
    if dist.main:
        print(json.dumps({"mode": mode, "val_acc": res["val_acc"], "step_time_s": res["step_time_s"],
                          "resumed_from_epoch": res["resumed_from"]}))
    if dist.enabled:
        torch.distributed.destroy_process_group()
    return 0
