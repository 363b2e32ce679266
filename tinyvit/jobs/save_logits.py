"""`tinyvit save-logits`: run the teacher once over the augmented data, store seeds + top-K.

Per epoch and rank: ``todo = store.missing(epoch)`` (so a rerun after a crash or Ctrl-C
writes exactly what is missing), whole Mixup pairs dealt to ranks by ``min(i, partner) %
world_size`` (disjoint writes, no coordination), images replayed from
``sample_seed(base_seed, epoch, i)`` by ``TeacherBatches`` (the ``ReplayPipeline`` that
DistillLoader replays the student's batches with), teacher forward (AMP on CUDA), softmax, top-K, ``store.write`` of
the missing rows only.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import torch

from ..augment.config import AugConfig
from ..data.datasets import dataset_fingerprint
from ..data.loader import TeacherBatches, teacher_order
from .distributed import Dist
from .models import TeacherOutputError
from ..store import LogitStore, StoreExistsError, check_compatible

__all__ = ["save_logits", "open_or_create_store", "check_teacher_output"]


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
            _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp, value_encoding)
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
                _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp, value_encoding)
                store.close()
    dist.barrier()
    store = LogitStore.open(path, mode="r+")
    if not dist.main:
        _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp, value_encoding)
    return store


def _check_existing(store, dataset, cfg, num_classes, topk, base_seed, ds_fp, value_encoding=None):
    check_compatible(store, dataset=dataset, aug_config=cfg, num_classes=num_classes, topk=topk,
                     base_seed=base_seed, value_encoding=value_encoding)


@torch.no_grad()
def save_logits(teacher, dataset, store: LogitStore, cfg: AugConfig, *, epochs, batch_size: int = 256,
                device="cpu", amp: bool = True, dist: Optional[Dist] = None, num_workers: int = 0,
                progress: bool = True, max_batches: Optional[int] = None, in_chans: int = 3,
                log=print, bars: Optional[bool] = None) -> dict:
    """Fill the missing records of ``epochs`` (an iterable of epoch numbers). Returns stats:
    records written, teacher accuracy on the augmented images (own label), seconds.
    ``progress``: a line per epoch; ``bars`` (default: ``progress``): a tqdm bar per epoch."""
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
        if dist.main:  # attest (or check) the pixels the teacher sees BEFORE writing records:
            # a machine with another pipeline is refused before it adds any, and no crash can
            # leave records without an attestation. new: only an epoch with records to write
            # here may get a new entry; a complete one without is refused (docs/store.md)
            from ..data.attest import record_epoch
            record_epoch(store, dataset, cfg, epoch, new=todo.size > 0)
        order, mask = teacher_order(todo, epoch, store.num_samples, base_seed, cfg.mixing,
                                    dist.rank, dist.world_size)
        tb = TeacherBatches(dataset, cfg, order, mask, epoch=epoch, base_seed=base_seed,
                            batch_size=batch_size, device=device, num_workers=num_workers)
        bar = tqdm(total=int(mask.sum()), desc=f"save-logits epoch {epoch}", unit="img",
                   disable=not ((progress if bars is None else bars) and dist.main), dynamic_ncols=True,
                   leave=True)
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
