"""`tinyvit save-logits`: run the teacher once over the augmented data, store seeds + top-K.

Per epoch and rank: ``todo = store.missing(epoch)`` (so a rerun after a crash or Ctrl-C
writes exactly what is missing), whole Mixup pairs dealt to ranks by ``min(i, partner) %
world_size`` (disjoint writes, no coordination), images replayed from
``sample_seed(base_seed, epoch, i)`` by ``TeacherBatches`` (the exact pipeline DistillLoader
replays for the student), teacher forward (AMP on CUDA), softmax, top-K, ``store.write`` of
the missing rows only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

import numpy as np
import torch

from .aug_config import AugConfig
from .datasets import dataset_fingerprint, open_dataset
from .loader import DatasetMismatchError, StoreMismatchError, TeacherBatches, teacher_order, _mixing
from .runtime import (Dist, TeacherOutputError, add_aug_arguments, aug_config_from_args, build_model,
                      init_distributed, parse_kwargs)
from .store import FingerprintMismatchError, LogitStore, StoreExistsError

__all__ = ["save_logits", "open_or_create_store", "check_teacher_output", "add_save_logits_parser"]


def check_teacher_output(teacher, cfg: AugConfig, num_classes: int, device, in_chans: int = 3) -> None:
    """One forward on a zero batch of 2 images: the output must be [2, num_classes]."""
    x = torch.zeros(2, in_chans, cfg.height, cfg.width, device=device)
    was = teacher.training
    teacher.eval()
    with torch.no_grad():
        out = teacher(x)
    teacher.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != num_classes:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TeacherOutputError(
            f"teacher output has shape {shape} for a batch of 2, expected "
            f"[2, {num_classes}] (num_classes = {num_classes}); nothing was written")


def open_or_create_store(path, *, dataset, cfg: AugConfig, num_classes: int, topk: int, epochs: int,
                         base_seed: int, teacher_desc, value_encoding: str = "fp16",
                         dist: Optional[Dist] = None, dataset_spec: Optional[str] = None) -> LogitStore:
    """Open an existing store (checking it belongs to this dataset / config / K / C /
    base_seed; growing it to ``epochs``) or create one. Under torchrun rank 0 does it, the
    others open after a barrier."""
    dist = dist or Dist()
    ds_fp = dataset_fingerprint(dataset)
    manifest = os.path.join(path, "manifest.json")
    if dist.main:
        if os.path.exists(manifest):
            store = LogitStore.open(path, mode="r+")
            _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp)
            if store.epochs < epochs:
                store.add_epochs(epochs - store.epochs)
            store.close()
        else:
            meta = {"base_seed": int(base_seed), "aug_config": cfg.to_dict(), "dataset": dataset_spec,
                    "classes": list(getattr(dataset, "classes", []) or [])}
            try:
                LogitStore.create(path, len(dataset), num_classes, topk, aug_fingerprint=cfg.fingerprint(),
                                  meta=meta, teacher=teacher_desc, dataset_fingerprint=ds_fp,
                                  value_encoding=value_encoding, epochs=epochs).close()
            except StoreExistsError:  # another job (an epoch segment elsewhere) created it first
                store = LogitStore.open(path, mode="r")
                _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp)
                store.close()
    dist.barrier()
    store = LogitStore.open(path, mode="r+")
    if not dist.main:
        _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp)
    return store


def _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp):
    where = f"store {store.path!r}"
    if store.num_samples != len(dataset):
        raise StoreMismatchError(f"{where}: num_samples {store.num_samples} != len(dataset) {len(dataset)}")
    if store.num_classes != num_classes:
        raise StoreMismatchError(f"{where}: num_classes {store.num_classes} != {num_classes}")
    if store.topk != topk:
        raise StoreMismatchError(f"{where}: topk {store.topk} != --topk {topk}")
    if store.aug_fingerprint != cfg.fingerprint():
        raise FingerprintMismatchError(f"{where}: aug_fingerprint {store.aug_fingerprint!r} != this "
                                       f"config's {cfg.fingerprint()!r}")
    stored = store.manifest.get("dataset_fingerprint")
    if stored is not None and ds_fp is not None and stored != ds_fp:
        raise DatasetMismatchError(f"{where}: dataset_fingerprint {stored!r} != this dataset's {ds_fp!r}")
    sb = (store.manifest.get("meta") or {}).get("base_seed")
    if sb is not None and int(sb) != int(base_seed):
        raise StoreMismatchError(f"{where}: meta.base_seed {sb} != --base-seed {base_seed}")


@torch.no_grad()
def save_logits(teacher, dataset, store: LogitStore, cfg: AugConfig, *, epochs, batch_size: int = 256,
                device="cpu", amp: bool = True, dist: Optional[Dist] = None, num_workers: int = 0,
                progress: bool = True, max_batches: Optional[int] = None, in_chans: int = 3,
                log=print) -> dict:
    """Fill the missing records of ``epochs`` (an iterable of epoch numbers). Returns stats:
    records written, teacher accuracy on the augmented images (own label), seconds."""
    from tqdm import tqdm

    dist = dist or Dist()
    device = torch.device(device)
    teacher = teacher.to(device).eval()
    base_seed = int(store.manifest["meta"]["base_seed"])
    k = store.topk
    use_amp = amp and device.type == "cuda"
    stats = {"written": 0, "seen": 0, "correct": 0, "seconds": 0.0, "epochs": {}}
    batches_done = 0
    t_all = time.perf_counter()
    for epoch in epochs:
        todo = store.missing(epoch)
        order, mask = teacher_order(todo, epoch, store.num_samples, base_seed, _mixing(cfg),
                                    dist.rank, dist.world_size)
        tb = TeacherBatches(dataset, cfg, order, mask, epoch=epoch, base_seed=base_seed,
                            batch_size=batch_size, device=device, num_workers=num_workers)
        bar = tqdm(total=int(mask.sum()), desc=f"save-logits epoch {epoch}", unit="img",
                   disable=not (progress and dist.main), dynamic_ncols=True, leave=True)
        ep = {"written": 0, "seen": 0, "correct": 0, "todo": int(todo.size)}
        t0 = time.perf_counter()
        for x, idx, seeds, labels, wmask in tb:
            if in_chans == 1:
                x = x.mean(1, keepdim=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = teacher(x)
            if logits.dim() != 2 or logits.shape[1] != store.num_classes:
                raise TeacherOutputError(f"teacher output {list(logits.shape)}, expected "
                                         f"[{x.shape[0]}, {store.num_classes}]")
            probs = logits.float().softmax(-1)
            vals, inds = probs.topk(k, dim=-1)
            if labels is not None:
                ep["correct"] += int((probs.argmax(-1).cpu() == labels).sum())
                ep["seen"] += int(labels.numel())
            w = wmask.nonzero().view(-1)
            if w.numel():
                store.write(epoch, idx[w], seeds[w], inds.cpu()[w], vals.cpu()[w])
            ep["written"] += int(w.numel())
            bar.update(int(w.numel()) * dist.world_size)
            if ep["seen"]:
                bar.set_postfix(teacher_acc=f"{ep['correct'] / ep['seen']:.3f}")
            batches_done += 1
            if max_batches is not None and batches_done >= max_batches:
                bar.close()
                store.flush()
                stats["stopped_early"] = True
                stats["seconds"] = time.perf_counter() - t_all
                return stats
        bar.close()
        ep["seconds"] = time.perf_counter() - t0
        if dist.enabled:
            t = torch.tensor([ep["written"], ep["seen"], ep["correct"]], dtype=torch.float64)
            torch.distributed.all_reduce(t)
            ep["written"], ep["seen"], ep["correct"] = (int(v) for v in t.tolist())
        for key in ("written", "seen", "correct"):
            stats[key] += ep[key]
        stats["epochs"][epoch] = ep
        if dist.main and progress:
            acc = ep["correct"] / ep["seen"] if ep["seen"] else float("nan")
            log(f"epoch {epoch}: wrote {ep['written']} of {store.num_samples} records "
                f"({ep['todo']} were missing), teacher accuracy on augmented images {acc:.4f}, "
                f"{ep['seconds']:.1f}s")
    store.flush()
    dist.barrier()
    stats["seconds"] = time.perf_counter() - t_all
    stats["teacher_acc"] = stats["correct"] / stats["seen"] if stats["seen"] else None
    return stats


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
