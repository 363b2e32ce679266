#!/usr/bin/env python
"""Fashion-MNIST check of the paper's fast-distillation claims (Sec. 3.1, 5.2) at toy scale.

One teacher (trained on hard labels), then per seed (student init + augmentation seeds):
  scratch    student on hard labels (Mixup/CutMix-mixed, smoothed)
  online     online dense KD: teacher forward every step, soft CE to its softmax
  stored K   stored sparse KD from a LogitStore with top-K, K in --ks (K = C-1 is exactly dense:
             Eq. 2 gives the one unstored class the remaining mass)
Every student run sees the same augmented images (same seeds). Reports test accuracy
mean +- std over seeds, store bytes per K, and per-step time of hard / online / stored
training measured interleaved (step = next batch from the loader + forward + loss +
backward + AdamW step), medians of repeats.

  python benchmarks/experiment_fmnist.py            # full (about 30-40 min on 2 busy cores)
  python benchmarks/experiment_fmnist.py --quick    # a few minutes
Writes benchmarks/results/experiment_fmnist.json and .png.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tinyvit  # noqa: E402
from tinyvit.jobs.recipes import demo_aug_config, teacher_aug_config  # noqa: E402
from tinyvit.jobs.models import build_model
from tinyvit.jobs.evaluate import eval_tensors  # noqa: E402
from tinyvit.jobs.save_logits import open_or_create_store, save_logits  # noqa: E402
from tinyvit.jobs.train import batch_loss, train  # noqa: E402
from _common import (RESULTS, finish_facts, interleaved, machine_facts, median, pyplot,  # noqa: E402
                     save_png, write_json)


def machine():
    return machine_facts("cuda" if torch.cuda.is_available() else "cpu",
                         torch_threads=torch.get_num_threads())


def truncated_store(src, path, k, ds, cfg):
    """A real store with top-k records = the first k of src's (sorted) top-K records (what
    save-logits with --topk k writes: same teacher, same seeds, same fp16 values)."""
    dst = open_or_create_store(path, dataset=ds, cfg=cfg, num_classes=src.num_classes, topk=k,
                               epochs=src.epochs, base_seed=src.manifest["meta"]["base_seed"],
                               teacher_desc=src.manifest["teacher"])
    idx = np.arange(src.num_samples)
    for e in range(src.epochs):
        seeds, ti, tp = src.read(e, idx)
        order = tp.argsort(dim=1, descending=True)
        ti, tp = ti.gather(1, order)[:, :k], tp.gather(1, order)[:, :k]
        dst.write(e, idx, seeds, ti, tp)
    dst.flush()
    return dst


def step_timing(student_name, teacher, loaders, C, img_size, repeats, lr):
    """Interleaved per-step times (s) for each mode: loader batch + fwd + loss + bwd + step
    (the loss is train()'s own batch_loss; steps are timed one at a time, so not through train())."""
    models, opts, iters = {}, {}, {}
    for mode in loaders:
        torch.manual_seed(0)
        models[mode] = build_model(student_name, C, img_size=img_size)
        opts[mode] = torch.optim.AdamW(models[mode].parameters(), lr=lr)
        iters[mode] = iter(loaders[mode])

    def one(mode):
        try:
            batch = next(iters[mode])
        except StopIteration:  # timing only: replay the same epoch (a bare re-iter would advance it)
            loaders[mode].set_epoch(loaders[mode].epoch)
            iters[mode] = iter(loaders[mode])
            batch = next(iters[mode])
        m, opt = models[mode], opts[mode]
        kind = "distill" if mode.startswith("stored") else mode
        loss = batch_loss(m, batch, kind, num_classes=C, teacher=teacher if kind == "online" else None)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # one warm-up round, then the modes take turns step by step
    t = interleaved({mode: (lambda mode=mode: one(mode)) for mode in loaders}, repeats, warmup=1)
    return {mode: t[mode]["wall"] for mode in loaders}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-samples", type=int, default=5000)
    ap.add_argument("--val-samples", type=int, default=2000)
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--teacher", default="test_resnet")
    ap.add_argument("--student", default="test_efficientnet")
    ap.add_argument("--teacher-epochs", type=int, default=4)
    ap.add_argument("--teacher-samples", type=int, default=20000,
                    help="the teacher trains on the first N (a teacher clearly stronger than the student)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 9])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--timing-repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "experiment_fmnist"))
    args = ap.parse_args(argv)
    if args.quick:
        args.train_samples, args.val_samples, args.teacher_epochs, args.teacher_samples = 1000, 1000, 2, 5000
        args.epochs, args.seeds, args.timing_repeats = 2, 2, 10
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.set_num_threads(max(1, args.threads))
    t_all = time.perf_counter()
    cfg = demo_aug_config(args.img_size)
    ds = tinyvit.FashionMNIST(subset=args.train_samples)
    val_ds = tinyvit.FashionMNIST(split="test", subset=args.val_samples)
    val = eval_tensors(val_ds, args.img_size)
    C = ds.num_classes
    work = tempfile.mkdtemp(prefix="tinyvit-exp-")

    print(f"teacher {args.teacher}: {args.teacher_epochs} epochs on {args.teacher_samples} images", flush=True)
    torch.manual_seed(1234)
    teacher = build_model(args.teacher, C, img_size=args.img_size)
    tds = tinyvit.FashionMNIST(subset=args.teacher_samples)
    r = train(teacher, tinyvit.ReplayLoader(tds, teacher_aug_config(args.img_size), base_seed=999, batch_size=args.batch_size),
              mode="hard", epochs=args.teacher_epochs, lr=args.lr, num_classes=C, eval_data=val, progress=False)
    teacher.eval()
    result = {"machine": machine(), "args": vars(args), "teacher": {"model": args.teacher, "val_acc": r["val_acc"]},
              "runs": [], "stores": {}}
    print(f"  teacher test acc {r['val_acc']:.4f}", flush=True)

    kmax = max(args.ks)
    for seed in range(args.seeds):
        base = open_or_create_store(os.path.join(work, f"s{seed}_k{kmax}"), dataset=ds, cfg=cfg, num_classes=C,
                                    topk=kmax, epochs=args.epochs, base_seed=seed, teacher_desc={"model": args.teacher})
        t0 = time.perf_counter()
        save_logits(teacher, ds, base, cfg, epochs=range(args.epochs), batch_size=256, progress=False)
        save_s = time.perf_counter() - t0
        stores = {kmax: base}
        for k in args.ks:
            if k != kmax:
                stores[k] = truncated_store(base, os.path.join(work, f"s{seed}_k{k}"), k, ds, cfg)
        for k, s in stores.items():
            result["stores"][str(k)] = {"bytes": s.nbytes, "record_size": s.record_size,
                                        "records": s.epochs * s.num_samples}
        runs = [("scratch", None), ("online", None)] + [(f"stored_k{k}", k) for k in args.ks]
        for name, k in runs:
            torch.manual_seed(seed)
            student = build_model(args.student, C, img_size=args.img_size)
            if k is None:
                loader = tinyvit.ReplayLoader(ds, cfg, base_seed=seed, batch_size=args.batch_size)
                mode = "hard" if name == "scratch" else "online"
            else:
                loader = tinyvit.DistillLoader(ds, stores[k], cfg, batch_size=args.batch_size)
                mode = "distill"
            t0 = time.perf_counter()
            res = train(student, loader, mode=mode, epochs=args.epochs, lr=args.lr, num_classes=C, eval_data=val,
                        teacher=teacher if mode == "online" else None, progress=False)
            rec = {"seed": seed, "run": name, "k": k, "val_acc": res["val_acc"], "seconds": time.perf_counter() - t0,
                   "save_logits_s": save_s if k is not None else None}
            result["runs"].append(rec)
            print(f"  seed {seed} {name:10s} acc {res['val_acc']:.4f} ({rec['seconds']:.0f}s)", flush=True)
        write_json(args.out + ".json", result)

    # interleaved step timing on seed 0's stores
    loaders = {"hard": tinyvit.ReplayLoader(ds, cfg, base_seed=0, batch_size=args.batch_size),
               "online": tinyvit.ReplayLoader(ds, cfg, base_seed=0, batch_size=args.batch_size),
               f"stored_k{kmax}": tinyvit.DistillLoader(
                   ds, tinyvit.LogitStore.open(os.path.join(work, f"s0_k{kmax}")), cfg, batch_size=args.batch_size)}
    times = step_timing(args.student, teacher, loaders, C, args.img_size, args.timing_repeats, args.lr)
    med = {m: median(v) for m, v in times.items()}
    result["step_time_s"] = {m: {"median": med[m], "all": v} for m, v in times.items()}
    result["step_time_ratio_vs_hard"] = {m: med[m] / med["hard"] for m in med}

    # summary
    summary = {}
    for name in ["scratch", "online"] + [f"stored_k{k}" for k in args.ks]:
        accs = [r["val_acc"] for r in result["runs"] if r["run"] == name]
        summary[name] = {"mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                         "n": len(accs)}
    result["summary"] = summary
    result["total_s"] = time.perf_counter() - t_all
    finish_facts(result["machine"])
    write_json(args.out + ".json", result)

    print(f"\nteacher {args.teacher}: test acc {result['teacher']['val_acc']:.4f}")
    print(f"{'run':<12} {'test acc (mean +- std, n)':>28} {'store bytes':>12}")
    for name, s in summary.items():
        k = name.split("_k")[1] if name.startswith("stored") else None
        sb = f"{result['stores'][k]['bytes']:,}" if k else "-"
        print(f"{name:<12} {s['mean']:>14.4f} +- {s['std']:.4f} (n={s['n']}) {sb:>12}")
    print("step time (median, s):", {m: round(v, 4) for m, v in med.items()},
          "ratio vs hard:", {m: round(v, 3) for m, v in result["step_time_ratio_vs_hard"].items()})

    plt = pyplot()
    if plt is not None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        ks = args.ks
        m = [summary[f"stored_k{k}"]["mean"] for k in ks]
        sd = [summary[f"stored_k{k}"]["std"] for k in ks]
        a1.errorbar(ks, m, yerr=sd, marker="o", label="stored sparse KD")
        for name, style in (("scratch", "--"), ("online", ":")):
            a1.axhline(summary[name]["mean"], ls=style, color="k" if name == "scratch" else "r", label=name)
        a1.set_xlabel("K (stored classes)")
        a1.set_ylabel("test accuracy")
        a1.set_title(f"{args.student} on Fashion-MNIST ({args.seeds} seeds)")
        a1.legend()
        a2.plot(ks, [result["stores"][str(k)]["bytes"] / 1e6 for k in ks], marker="o")
        a2.set_xlabel("K")
        a2.set_ylabel("store MB")
        a2.set_title("storage grows linearly in K")
        fig.tight_layout()
        save_png(fig, args.out + ".png", result["machine"])
    print(f"wrote {args.out}.json ({result['total_s']:.0f}s)")


if __name__ == "__main__":
    main()
