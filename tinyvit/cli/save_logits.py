"""`tinyvit save-logits`: arguments -> ``tinyvit.jobs.save_logits``."""
from __future__ import annotations

import argparse
import os
import sys

from .options import (HelpFormatter, add_aug_arguments, add_common_arguments, aug_config_from_args,
                      nonneg_int, positive_int)


def add_save_logits_parser(sub) -> None:
    p = sub.add_parser(
        "save-logits", help="run a teacher once over augmented data; store seeds + top-K probabilities",
        description="Save the teacher's sparse top-K soft labels and the augmentation seeds of every "
        "(epoch, sample) into a LogitStore (paper Sec. 3.1). Resumable: a rerun (after a crash, a "
        "kill or Ctrl-C) writes only the missing records. Multi-process with torchrun (each rank "
        "writes disjoint samples).\n\nexit status: 0 = every requested epoch complete; 1 = "
        "incomplete after the run; 2 = error (nothing already written is lost); 130 = interrupted.",
        formatter_class=HelpFormatter)
    p.add_argument("store", help="store directory (created if absent)")
    add_common_arguments(p, batch_size=256)
    p.add_argument("--subset", type=positive_int, default=None,
                   help="use only the first N training samples (default: all)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="teacher: a timm model name (weights from --checkpoint)")
    g.add_argument("--teacher", help="teacher: module:function returning an nn.Module (with its weights)")
    p.add_argument("--checkpoint", help="teacher weights (state dict; torch.load weights_only=True)")
    p.add_argument("--random-teacher", action="store_true",
                   help="allow --model without --checkpoint: a randomly initialised teacher (seeded by "
                   "--seed, the same on every rank); only useful for tests and smoke runs")
    p.add_argument("--seed", type=int, default=0, help="RNG seed of the teacher's init (module:function or "
                   "--random-teacher)")
    p.add_argument("--model-kwargs", default=None, help="JSON object of extra model kwargs")
    p.add_argument("--num-classes", type=positive_int, default=None, help="C (default: the dataset's classes)")
    p.add_argument("--in-chans", type=int, default=3, choices=[1, 3],
                   help="1: the teacher takes the channel mean (grayscale data)")
    p.add_argument("--topk", type=positive_int, default=10, help="K stored classes per record")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs 0..E-1 (same as --end-epoch E)")
    p.add_argument("--start-epoch", type=nonneg_int, default=0, help="first epoch to fill")
    p.add_argument("--end-epoch", type=positive_int, default=None, help="one past the last epoch to fill")
    p.add_argument("--total-epochs", type=positive_int, default=None,
                   help="epochs the store holds (default: the end epoch); give every parallel epoch "
                   "segment the same value so no job has to grow the store")
    p.add_argument("--base-seed", type=nonneg_int, default=0, help="seeds are sample_seed(base_seed, epoch, i)")
    p.add_argument("--value-encoding", default="fp16", choices=["fp16", "compact"],
                   help="stored probabilities: fp16, or compact (8-bit, see docs)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto = cuda when available")
    p.add_argument("--no-amp", action="store_true", help="disable autocast on CUDA")
    p.add_argument("--workers", type=nonneg_int, default=0, help="DataLoader worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    p.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)  # tests: stop early
    add_aug_arguments(p)
    p.set_defaults(func=run_save_logits)


def run_save_logits(args) -> int:
    import torch

    from ..data.datasets import open_dataset
    from ..jobs.distributed import init_distributed
    from ..jobs.models import build_model, parse_kwargs
    from ..jobs.save_logits import check_teacher_output, open_or_create_store, save_logits
    from . import CLIError

    # every check that needs no data or model first
    end = args.end_epoch if args.end_epoch is not None else args.epochs
    if end is None:
        raise CLIError("give --epochs E or --end-epoch E")
    if args.epochs is not None and args.end_epoch is not None and args.epochs != args.end_epoch:
        raise CLIError(f"--epochs {args.epochs} and --end-epoch {args.end_epoch} disagree")
    if not args.start_epoch < end:
        raise CLIError(f"need --start-epoch ({args.start_epoch}) < end epoch ({end})")
    if args.total_epochs is not None and args.total_epochs < end:
        raise CLIError(f"--total-epochs {args.total_epochs} < end epoch {end}")
    if args.model and not args.checkpoint and not args.random_teacher:
        raise CLIError(f"--model {args.model} without --checkpoint would distil from a randomly initialised "
                       "teacher; give --checkpoint FILE, or --random-teacher to do it anyway")
    if args.checkpoint and args.random_teacher:
        raise CLIError("--checkpoint and --random-teacher exclude each other")
    cfg = aug_config_from_args(args)
    kwargs = parse_kwargs(args.model_kwargs)
    dist = init_distributed(args.device)
    dataset = open_dataset(args.data, "train", args.subset)
    num_classes = args.num_classes or dataset.num_classes
    if not 1 <= args.topk < num_classes:
        raise CLIError(f"--topk must be in [1, num_classes = {num_classes}), got {args.topk}")
    name = args.model or args.teacher
    torch.manual_seed(args.seed)  # a random init is the same on every rank (one teacher per store)
    teacher = build_model(name, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                          checkpoint=args.checkpoint, kwargs=kwargs)
    teacher = teacher.to(dist.device).eval()
    check_teacher_output(teacher, cfg, num_classes, dist.device, args.in_chans)
    desc = {"model": name, "checkpoint": os.path.abspath(args.checkpoint) if args.checkpoint else None}
    if args.model and not args.checkpoint:
        desc["random_init_seed"] = args.seed
    store = open_or_create_store(args.store, dataset=dataset, cfg=cfg, num_classes=num_classes,
                                 topk=args.topk, epochs=max(end, args.total_epochs or 0), base_seed=args.base_seed,
                                 teacher_desc=desc, value_encoding=args.value_encoding, dist=dist,
                                 dataset_spec=args.data)
    if args.model and not args.checkpoint and dist.main:  # said once the store is known to fit
        print(f"tinyvit save-logits: teacher {name} is randomly initialised (--random-teacher, seed "
              f"{args.seed}): its top-K carries no knowledge", file=sys.stderr)
    try:
        stats = save_logits(teacher, dataset, store, cfg, epochs=range(args.start_epoch, end),
                            batch_size=args.batch_size, device=dist.device, amp=not args.no_amp, dist=dist,
                            num_workers=args.workers, progress=True, bars=not args.no_progress,
                            max_batches=args.max_batches, in_chans=args.in_chans)
        if dist.main and not stats.get("stopped_early"):
            incomplete = {e: int(store.missing(e).size) for e in range(args.start_epoch, end)}
            bad = {e: n for e, n in incomplete.items() if n}
            print(f"store {store.path}: epochs {args.start_epoch}..{end - 1} "
                  + ("complete" if not bad else f"INCOMPLETE (missing records per epoch: {bad})"),
                  file=sys.stderr if bad else sys.stdout)
            return 1 if bad else 0
        return 0
    finally:
        store.close()  # also on Ctrl-C / errors: every record written so far is kept
