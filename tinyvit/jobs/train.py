"""`tinyvit train`: train a timm student three ways, same data pipeline for all three.

- ``--distill STORE``: label-free, targets = the stored top-K (paper Eq. 1-2), loss
  ``sparse_soft_cross_entropy``; images replayed from the stored seeds by DistillLoader.
- ``--hard-labels``: labels mixed with Mixup/CutMix (``mix_targets``, label smoothing).
- ``--online-teacher MODEL``: the teacher runs on every batch, dense soft CE against its
  softmax (the costly baseline the store replaces).

AdamW + cosine (per step, linear warm-up), AMP on CUDA, eval every epoch, checkpoint
(``last.pt``), JSON-lines log (``log.jsonl``), tqdm progress bar; DDP under torchrun.

Resume (``resume=True`` with ``out_dir``): ``last.pt`` holds everything the next epoch
depends on -- model, optimizer, GradScaler, the global step (the cosine schedule is a
function of it), the epoch, the RNG states (torch CPU/CUDA, numpy, random) and the run's
``run_config``. A resumed run continues at the next epoch and is bit-identical to an
uninterrupted one on CPU (the loaders are functions of (base_seed, epoch), not of state);
``log.jsonl`` is cut back to the checkpoint's epoch first, so no epoch row is duplicated.
A checkpoint of a different run (another ``run_config``) is refused, naming the field.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from typing import Optional

import torch

from ..augment.config import AugConfig
from ..loss import soft_cross_entropy  # the one dense soft CE (float32 targets: float32 math)
from .distributed import Dist
from .evaluate import evaluate

__all__ = ["train", "batch_loss", "soft_cross_entropy", "ResumeError", "load_checkpoint"]

CHECKPOINT_FORMAT = "tinyvit-train-checkpoint/1"


from ..errors import ResumeError  # noqa: E402  (defined with every error in tinyvit.errors)


def load_checkpoint(out_dir: str, run_config: Optional[dict] = None) -> Optional[dict]:
    """The checkpoint in ``out_dir/last.pt`` (None when there is none), checked against
    ``run_config``: every field it needs present and of the right type, the run's options
    and its data (``run_config['data']``: store id, dataset fingerprints, classes) equal.
    Anything else is a one-line ResumeError naming the file and the field."""
    path = os.path.join(out_dir, "last.pt")
    if not os.path.exists(path):
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn or foreign file: say which, never continue from it
        msg = " ".join(str(exc).split())[:300]
        raise ResumeError(f"{path}: cannot load the checkpoint to resume from ({type(exc).__name__}: "
                          f"{msg}); delete it or pass --restart") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(f"{path}: not a resumable tinyvit checkpoint (format "
                          f"{ck.get('format') if isinstance(ck, dict) else type(ck).__name__!r}); "
                          f"delete it or pass --restart")
    _check_fields(ck, path)
    if run_config is not None:
        old = ck.get("run_config")
        if not isinstance(old, dict):
            raise ResumeError(f"{path}: run_config is {type(old).__name__}, not the options of a run; "
                              "delete it or pass --restart")
        _check_same_data(path, old.get("data"), run_config.get("data"))
        for key in sorted(set(old) | set(run_config)):
            if old.get(key) != run_config.get(key):
                raise ResumeError(f"{path} is from another run: {key} = {old.get(key)!r} there, "
                                  f"{run_config.get(key)!r} now; use another --out or pass --restart")
    return ck


def _check_fields(ck: dict, path: str) -> None:
    """What ``_restore`` reads, by type, before anything is loaded."""
    def bad(field, what):
        raise ResumeError(f"{path}: field {field!r} {what}; not a checkpoint this tinyvit wrote "
                          "(delete it or pass --restart)")

    for field in ("epoch", "step"):
        v = ck.get(field)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            bad(field, f"is {v!r}, not an integer >= 0")
    model = ck.get("model")
    if not isinstance(model, dict) or not model or \
            not all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in model.items()):
        bad("model", "is not a state dict (names -> tensors)")
    opt = ck.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or \
            not isinstance(opt.get("param_groups"), list):
        bad("optimizer", "is not an optimizer state dict")
    if not isinstance(ck.get("scaler"), dict):
        bad("scaler", "is not a GradScaler state dict")
    rng = ck.get("rng")
    ok = isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor) and \
        isinstance(rng.get("numpy"), list) and len(rng["numpy"]) == 4 and \
        isinstance(rng["numpy"][0], torch.Tensor) and isinstance(rng.get("python"), list) and \
        len(rng["python"]) == 3 and isinstance(rng["python"][1], torch.Tensor)
    if not ok:
        bad("rng", "is not the RNG states (torch, numpy, python)")


def _check_same_data(path: str, old, new) -> None:
    """The data a run trains on is part of its identity: another store (store_id), other
    files (dataset fingerprints) or another number of classes refuse the resume."""
    if new is None:
        return
    if not isinstance(old, dict):
        raise ResumeError(f"{path} records no data identity (written by an older tinyvit): cannot "
                          "tell whether the store / dataset changed; pass --restart (or another --out)")
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ResumeError(f"{path}: the data changed since the checkpoint: {key} = {old.get(key)!r} "
                              f"there, {new.get(key)!r} now (another store or other files); resuming "
                              "would continue on different data: use another --out or pass --restart")


def _restore(ck: dict, path: str, model, opt, scaler) -> None:
    """Load a checked checkpoint into the run's objects; a state dict of another model /
    optimizer (names, shapes, groups) is a ResumeError, not a traceback."""
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split())[:300]
        raise ResumeError(f"{path}: the checkpoint's model does not fit this model ({msg}); "
                          "another --model / --num-classes? use another --out or pass --restart") from None
    for field, fn in (("optimizer", opt.load_state_dict), ("scaler", scaler.load_state_dict),
                      ("rng", _set_rng_state)):
        try:
            fn(ck[field])
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            msg = " ".join(str(exc).split())[:300]
            raise ResumeError(f"{path}: field {field!r} cannot be restored ({type(exc).__name__}: "
                              f"{msg}); delete it or pass --restart") from None


def _rng_state() -> dict:
    """All RNG states as tensors and ints, so ``torch.load(weights_only=True)`` reads them."""
    import numpy as np

    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, pstate, gauss = random.getstate()
    st = {"torch": torch.get_rng_state(), "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                    int(has_gauss), float(cached)],
          "python": [int(version), torch.tensor(pstate, dtype=torch.int64), gauss]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    import numpy as np

    torch.set_rng_state(st["torch"])
    keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, pstate, gauss = st["python"]
    random.setstate((version, tuple(int(v) for v in pstate.tolist()), gauss))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _cut_log(path: str, last_epoch: int, mode: Optional[str] = None) -> list:
    """Keep one row per epoch 0..last_epoch (a kill between the log row and the checkpoint
    leaves one row too many), of this run's ``mode``; rows of another shape (a foreign or
    negative epoch), torn or not UTF-8 are dropped, never fatal. Rewritten atomically.
    Returns the kept rows, in epoch order."""
    if not os.path.exists(path):
        return []
    rows = {}
    with open(path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):  # torn by a kill, or foreign
                continue
            e = r.get("epoch") if isinstance(r, dict) else None
            if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e <= last_epoch:
                continue
            if mode is not None and r.get("mode") != mode:
                continue
            rows[e] = r  # the last row written for an epoch is the one its checkpoint followed
    kept = [rows[e] for e in sorted(rows)]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, path)
    return kept


MODES = ("distill", "hard", "online")


def batch_loss(model, batch, mode: str, *, num_classes: int, smoothing: float = 0.1, teacher=None,
               in_chans: int = 3, amp: bool = False) -> torch.Tensor:
    """The loss of one loader batch, the one definition of a training step's forward: 'distill'
    (a DistillLoader batch ``(x, SparseTargets)``: sparse soft CE, paper Eq. 2), 'hard' (a
    ReplayLoader batch ``(x, labels, lam, partner)``: soft CE to the mixed, smoothed labels),
    'online' (a ReplayLoader batch: soft CE to ``teacher``'s softmax on the same images).
    ``amp``: autocast the forward passes (the loss itself is float32)."""
    from ..augment.device import mix_targets
    from ..loss import sparse_soft_cross_entropy

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "distill":
        x, targets = batch
    else:
        x, labels, lam, partner = batch
    if in_chans == 1:
        x = x.mean(1, keepdim=True)
    with torch.autocast(x.device.type, enabled=amp):
        if mode == "online":
            with torch.no_grad():
                t_probs = teacher(x).float().softmax(-1)
        logits = model(x)
    if mode == "distill":
        return sparse_soft_cross_entropy(logits.float(), targets.indices, targets.probs)
    if mode == "hard":
        return soft_cross_entropy(logits, mix_targets(labels, lam, partner, num_classes, smoothing))
    return soft_cross_entropy(logits, t_probs)


def _optimizer(model, lr: float, weight_decay: float):
    """AdamW; no weight decay on biases and norm weights (1-d parameters)."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _lr_schedule(lr: float, warm: int, total: int):
    """Per-step learning rate: linear warm-up over ``warm`` steps, then cosine to 0 at ``total``."""
    def lr_at(step):
        if step < warm:
            return lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return lr_at


def _place(model, teacher, device, dist: Dist):
    """Model (DDP-wrapped when distributed: the module to call) and the frozen teacher, on ``device``."""
    model = model.to(device)
    ddp = model
    if dist.enabled:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if teacher is not None:
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    return model, ddp, teacher


def _run_epoch(ddp, loader, opt, scaler, lr_at, step: int, *, epoch: int, mode: str, num_classes: int,
               smoothing: float, teacher, in_chans: int, use_amp: bool, device, max_steps, bar,
               step_times: list, data_times: list):
    """One pass over ``loader``: a step per batch at the schedule's lr; appends each step's
    compute + data time. Returns (sum of the losses, steps, global step after the pass)."""
    loss_sum, n_steps = 0.0, 0
    t_data0 = time.perf_counter()
    for batch in loader:
        t_data = time.perf_counter() - t_data0
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = batch_loss(ddp, batch, mode, num_classes=num_classes, smoothing=smoothing,
                          teacher=teacher, in_chans=in_chans, amp=use_amp)
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
    return loss_sum, n_steps, step


def train(model, loader, *, mode: str, epochs: int, lr: float = 1e-3, weight_decay: float = 0.05,
          warmup_epochs: float = 0.0, smoothing: float = 0.1, teacher=None, num_classes: int,
          device="cpu", amp: bool = True, dist: Optional[Dist] = None, eval_data=None,
          out_dir: Optional[str] = None, progress: bool = True, in_chans: int = 3, log=print,
          max_steps: Optional[int] = None, start_epoch: int = 0, resume: bool = False,
          run_config: Optional[dict] = None, bars: Optional[bool] = None) -> dict:
    """The training loop behind ``tinyvit train`` (also used by the demo and tests).

    loader: DistillLoader (mode 'distill') or ReplayLoader ('hard' / 'online'). Returns
    {'history': [per-epoch dicts], 'val_acc', 'step_time_s' (median compute+data time per
    step, this process's epochs), 'data_time_s', 'resumed_from' (epoch or None)}.
    ``resume``: continue from ``out_dir/last.pt`` when there is one (see the module doc);
    without it an existing log is replaced. ``progress``: a line per epoch; ``bars`` (default:
    ``progress``): a tqdm bar per epoch."""
    from tqdm import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if (mode == "online") != (teacher is not None):
        raise ValueError(f"mode {mode!r} " + ("needs a teacher" if mode == "online" else "takes no teacher"))
    dist = dist or Dist()
    device = torch.device(device)
    model, ddp, teacher = _place(model, teacher, device, dist)
    opt = _optimizer(model, lr, weight_decay)
    steps_per_epoch = max(1, len(loader))
    lr_at = _lr_schedule(lr, int(warmup_epochs * steps_per_epoch), steps_per_epoch * epochs)
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    cfg: AugConfig = loader.cfg
    history, step_times, data_times = [], [], []
    step = start_epoch * steps_per_epoch
    resumed_from = None
    log_path = os.path.join(out_dir, "log.jsonl") if out_dir else None
    ck = load_checkpoint(out_dir, run_config) if (resume and out_dir) else None
    if ck is not None:
        # every rank loads the same file (rank 0 wrote it), so DDP replicas stay identical
        _restore(ck, os.path.join(out_dir, "last.pt"), model, opt, scaler)  # ResumeError if it does not fit
        start_epoch, step, resumed_from = ck["epoch"] + 1, ck["step"], ck["epoch"]
        if dist.main:
            history = _cut_log(log_path, ck["epoch"], ck.get("mode"))
            log(f"resuming from {os.path.join(out_dir, 'last.pt')}: epoch {ck['epoch']} done, "
                f"continuing at epoch {start_epoch} of {epochs}")
    elif log_path and dist.main and os.path.exists(log_path):
        os.remove(log_path)  # a fresh run: no rows of an earlier one
    dist.barrier()
    logf = open(log_path, "a") if (log_path and dist.main) else None
    try:
        for epoch in range(start_epoch, epochs):
            loader.set_epoch(epoch)
            ddp.train()
            bar = tqdm(total=steps_per_epoch, desc=f"train[{mode}] epoch {epoch}", unit="step",
                       disable=not ((progress if bars is None else bars) and dist.main),
                       dynamic_ncols=True)
            t_epoch = time.perf_counter()
            loss_sum, n_steps, step = _run_epoch(
                ddp, loader, opt, scaler, lr_at, step, epoch=epoch, mode=mode, num_classes=num_classes,
                smoothing=smoothing, teacher=teacher, in_chans=in_chans, use_amp=use_amp, device=device,
                max_steps=max_steps, bar=bar, step_times=step_times, data_times=data_times)
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
                    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(),
                                "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                                "step": step, "mode": mode, "rng": _rng_state(), "run_config": run_config},
                               os.path.join(out_dir, "last.pt.tmp"))
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
            "step_time_s": st[len(st) // 2] if st else None, "data_time_s": dt[len(dt) // 2] if dt else None,
            "resumed_from": resumed_from}
