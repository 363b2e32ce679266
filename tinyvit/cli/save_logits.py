"""`tinyvit save-logits`: arguments -> ``tinyvit.jobs.save_logits``."""
from __future__ import annotations

import argparse
import os
import sys

from ..data.datasets import open_dataset
from ..jobs.distributed import init_distributed
from ..jobs.models import build_model, parse_kwargs
from ..jobs.save_logits import check_teacher_output, open_or_create_store, save_logits
from .options import add_aug_arguments, aug_config_from_args


def add_save_logits_parser(sub) -> None:
    p = sub.add_parser(
        "save-logits", help="run a teacher once over augmented data; store seeds + top-K probabilities",
        description="Save the teacher's sparse top-K soft labels and the augmentation seeds of every "
        "(epoch, sample) into a LogitStore (paper Sec. 3.1). Resumable: a rerun writes only missing "
        "records. Multi-process with torchrun (each rank writes disjoint samples).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("store", help="store directory (created if absent)")
    p.add_argument("--data", required=True, help="ImageFolder directory or fashion-mnist[:DIR]")
    p.add_argument("--subset", type=int, default=None, help="use only the first N training samples")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="teacher: a timm model name (use --checkpoint for weights)")
    g.add_argument("--teacher", help="teacher: module:function returning an nn.Module")
    p.add_argument("--checkpoint", help="teacher weights (state dict; torch.load weights_only=True)")
    p.add_argument("--model-kwargs", default=None, help="JSON object of extra model kwargs")
    p.add_argument("--num-classes", type=int, default=None, help="C (default: the dataset's classes)")
    p.add_argument("--in-chans", type=int, default=3, choices=[1, 3])
    p.add_argument("--topk", type=int, default=10, help="K stored classes per record")
    p.add_argument("--epochs", type=int, default=None, help="epochs 0..E-1 (same as --end-epoch E)")
    p.add_argument("--start-epoch", type=int, default=0)
    p.add_argument("--end-epoch", type=int, default=None, help="exclusive")
    p.add_argument("--total-epochs", type=int, default=None,
                   help="epochs the store holds (default: the end epoch); give every parallel epoch "
                   "segment the same value so no job has to grow the store")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--base-seed", type=int, default=0, help="seeds are sample_seed(base_seed, epoch, i)")
    p.add_argument("--value-encoding", default="fp16", choices=["fp16", "compact"])
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="disable autocast on CUDA")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)  # tests: stop early
    add_aug_arguments(p)
    p.set_defaults(func=run_save_logits)


def run_save_logits(args) -> int:
    dist = init_distributed(args.device)
    end = args.end_epoch if args.end_epoch is not None else args.epochs
    if end is None:
        raise SystemExit("save-logits: give --epochs E or --end-epoch E")
    if not 0 <= args.start_epoch < end:
        raise SystemExit(f"save-logits: need 0 <= --start-epoch ({args.start_epoch}) < end epoch ({end})")
    cfg = aug_config_from_args(args)
    dataset = open_dataset(args.data, "train", args.subset)
    num_classes = args.num_classes or dataset.num_classes
    if not 1 <= args.topk < num_classes:
        raise SystemExit(f"save-logits: --topk must be in [1, num_classes = {num_classes}), got {args.topk}")
    name = args.model or args.teacher
    teacher = build_model(name, num_classes, img_size=cfg.height, in_chans=args.in_chans,
                          checkpoint=args.checkpoint, kwargs=parse_kwargs(args.model_kwargs))
    teacher = teacher.to(dist.device).eval()
    check_teacher_output(teacher, cfg, num_classes, dist.device, args.in_chans)
    desc = {"model": name, "checkpoint": os.path.abspath(args.checkpoint) if args.checkpoint else None}
    store = open_or_create_store(args.store, dataset=dataset, cfg=cfg, num_classes=num_classes,
                                 topk=args.topk, epochs=max(end, args.total_epochs or 0), base_seed=args.base_seed, teacher_desc=desc,
                                 value_encoding=args.value_encoding, dist=dist, dataset_spec=args.data)
    stats = save_logits(teacher, dataset, store, cfg, epochs=range(args.start_epoch, end),
                        batch_size=args.batch_size, device=dist.device, amp=not args.no_amp, dist=dist,
                        num_workers=args.workers, progress=not args.no_progress,
                        max_batches=args.max_batches, in_chans=args.in_chans)
    if dist.main and not stats.get("stopped_early"):
        incomplete = {e: int(store.missing(e).size) for e in range(args.start_epoch, end)}
        bad = {e: n for e, n in incomplete.items() if n}
        print(f"store {store.path}: epochs {args.start_epoch}..{end - 1} "
              + ("complete" if not bad else f"INCOMPLETE (missing records per epoch: {bad})"),
              file=sys.stderr if bad else sys.stdout)
        store.close()
        return 1 if bad else 0
    store.close()
    return 0
