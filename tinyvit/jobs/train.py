"""`tinyvit train`: train a timm student three ways, same data pipeline for all three.

- ``--distill STORE``: label-free, targets = the stored top-K (paper Eq. 1-2), loss
  ``sparse_soft_cross_entropy``; images replayed from the stored seeds by DistillLoader.
- ``--hard-labels``: labels mixed with Mixup/CutMix (``mix_targets``, label smoothing).
- ``--online-teacher MODEL``: the teacher runs on every batch, dense soft CE against its
  softmax (the costly baseline the store replaces).

AdamW + cosine (per step, linear warm-up), AMP on CUDA, eval every epoch, checkpoint
(``last.pt``), JSON-lines log (``log.jsonl``), tqdm progress bar; DDP under torchrun.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Optional

import torch
import torch.nn.functional as F

from ..augment.config import AugConfig
from .distributed import Dist
from .evaluate import evaluate

__all__ = ["train", "soft_cross_entropy"]


def soft_cross_entropy(logits, target):
    """Dense soft-target CE (hard labels with smoothing/mixing, online KD)."""
    return torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()


def train(model, loader, *, mode: str, epochs: int, lr: float = 1e-3, weight_decay: float = 0.05,
          warmup_epochs: float = 0.0, smoothing: float = 0.1, teacher=None, num_classes: int,
          device="cpu", amp: bool = True, dist: Optional[Dist] = None, eval_data=None,
          out_dir: Optional[str] = None, progress: bool = True, in_chans: int = 3, log=print,
          max_steps: Optional[int] = None, start_epoch: int = 0) -> dict:
    """The training loop behind ``tinyvit train`` (also used by the demo and tests).

    loader: DistillLoader (mode 'distill') or ReplayLoader ('hard' / 'online'). Returns
    {'history': [per-epoch dicts], 'val_acc', 'step_time_s' (median compute+data time per
    step, all epochs), 'data_time_s'}."""
    from tqdm import tqdm

    from ..augment.device import mix_targets
    from ..loss import sparse_soft_cross_entropy

    dist = dist or Dist()
    device = torch.device(device)
    model = model.to(device)
    ddp = model
    if dist.enabled:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if teacher is not None:
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = max(1, len(loader))
    total = steps_per_epoch * epochs
    warm = int(warmup_epochs * steps_per_epoch)

    def lr_at(step):
        if step < warm:
            return lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    cfg: AugConfig = loader.cfg
    history, step_times, data_times = [], [], []
    step = start_epoch * steps_per_epoch
    logf = open(os.path.join(out_dir, "log.jsonl"), "a") if (out_dir and dist.main) else None
    try:
        for epoch in range(start_epoch, epochs):
            loader.set_epoch(epoch)
            ddp.train()
            bar = tqdm(total=steps_per_epoch, desc=f"train[{mode}] epoch {epoch}", unit="step",
                       disable=not (progress and dist.main), dynamic_ncols=True)
            loss_sum, n_steps = 0.0, 0
            t_epoch = time.perf_counter()
            t_data0 = time.perf_counter()
            for batch in loader:
                t_data = time.perf_counter() - t_data0
                t0 = time.perf_counter()
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                if mode == "distill":
                    x, targets = batch
                else:
                    x, labels, lam, partner = batch
                if in_chans == 1:
                    x = x.mean(1, keepdim=True)
                with torch.autocast(device.type, enabled=use_amp):
                    if mode == "online":
                        with torch.no_grad():
                            t_probs = teacher(x).float().softmax(-1)
                    logits = ddp(x)
                if mode == "distill":
                    loss = sparse_soft_cross_entropy(logits.float(), targets.indices, targets.probs)
                elif mode == "hard":
                    loss = soft_cross_entropy(logits, mix_targets(labels, lam, partner, num_classes, smoothing))
                else:
                    loss = soft_cross_entropy(logits, t_probs)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"epoch {epoch} step {n_steps}: loss is {lv}")
                step_times.append(time.perf_counter() - t0 + t_data)
                data_times.append(t_data)
                loss_sum += lv
                n_steps += 1
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / n_steps:.4f}", lr=f"{lr_at(step):.2e}")
                if max_steps is not None and n_steps >= max_steps:
                    break
                t_data0 = time.perf_counter()
            bar.close()
            rec = {"epoch": epoch, "mode": mode, "train_loss": loss_sum / max(1, n_steps), "steps": n_steps,
                   "epoch_s": time.perf_counter() - t_epoch, "lr": lr_at(step)}
            if eval_data is not None:
                rec["val_acc"] = evaluate(model, eval_data[0], eval_data[1], cfg, device, amp=amp, dist=dist,
                                          in_chans=in_chans)
            history.append(rec)
            if dist.main:
                if logf:
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                                "mode": mode}, os.path.join(out_dir, "last.pt.tmp"))
                    os.replace(os.path.join(out_dir, "last.pt.tmp"), os.path.join(out_dir, "last.pt"))
                if progress:
                    log(f"epoch {epoch}: loss {rec['train_loss']:.4f}"
                        + (f", val acc {rec['val_acc']:.4f}" if "val_acc" in rec else "")
                        + f", {rec['epoch_s']:.1f}s")
    finally:
        if logf:
            logf.close()
    st = sorted(step_times)
    dt = sorted(data_times)
    return {"history": history, "val_acc": history[-1].get("val_acc") if history else None,
            "step_time_s": st[len(st) // 2] if st else None, "data_time_s": dt[len(dt) // 2] if dt else None}
