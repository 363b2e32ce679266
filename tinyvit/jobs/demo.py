"""`tinyvit demo`: the whole fast-distillation job on Fashion-MNIST, sized for 2 CPU cores.

1. train a teacher (hard labels) on many images (--teacher-samples);
2. `save-logits`: run the teacher once per epoch over the students' augmented images and store
   seeds + sparse top-K probabilities (a LogitStore);
3. for each of --seeds init seeds, train the same student three ways on few images
   (--train-samples), all with the same augmentations: from the store alone (no teacher, no
   labels: paper Eq. 1-2), on hard labels, and with the teacher run online (dense KD);
4. print mean +- std test accuracy per method, write results.json and demo.png (the
   comparison and a grid of replayed training samples with the teacher's stored top-3) into
   --out, which is kept.

Every option is checked before any work. All pixels are Pillow-free at the default 28 px: the
training images are replayed from arrays in C++ and the test images need no resize, so the
result is the same under Pillow and pillow-simd (tests/jobs/test_demo.py checks the bytes).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import time

from .recipes import demo_aug_config, teacher_loader

__all__ = ["run_demo", "check_demo_args", "DemoError"]


from ..errors import DemoError  # noqa: E402  (defined with every error in tinyvit.errors)


def check_demo_args(args):
    """Everything that can be wrong with the options, before any work. Returns the datasets."""
    from ..data.datasets import open_dataset
    from .models import build_model

    if args.train_samples % 2:
        raise DemoError(f"--train-samples {args.train_samples}: must be even (Mixup/CutMix pairs)")
    demo_aug_config(args.img_size)
    train_ds = open_dataset(args.data, "train", args.train_samples)
    teacher_ds = open_dataset(args.data, "train", max(args.teacher_samples, args.train_samples))
    val_ds = open_dataset(args.data, "test", args.val_samples)
    C = train_ds.num_classes
    if not 1 <= args.topk < C:
        raise DemoError(f"--topk must be in [1, num_classes = {C}), got {args.topk}")
    for name in (args.teacher, args.student):
        build_model(name, C, img_size=args.img_size)  # ModelError names it
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise DemoError(f"--out {args.out!r} exists and is not a directory")
    return train_ds, teacher_ds, val_ds


def _mean_std(v):
    return (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)


class _Run:
    """The demo's shared state: options, datasets, output paths, the phase clock."""

    def __init__(self, args, train_ds, teacher_ds, val_ds):
        from .evaluate import eval_tensors

        self.args, self.train_ds, self.teacher_ds, self.val_ds = args, train_ds, teacher_ds, val_ds
        self.t_start = time.perf_counter()
        self.bars = not args.no_progress
        self.out = os.path.abspath(args.out)
        self.cfg = demo_aug_config(args.img_size)
        self.C = train_ds.num_classes
        self.val = eval_tensors(val_ds, args.img_size)
        self.seeds = list(range(args.seed, args.seed + args.seeds))
        self.methods = ["stored top-%d KD" % args.topk, "hard labels"] + (
            [] if args.no_online else ["online dense KD"])
        self.store_path = os.path.join(self.out, f"store_top{args.topk}")

    def phase(self, name):
        print(f"[{time.perf_counter() - self.t_start:6.1f}s] {name}", flush=True)

    def new(self, name, seed):
        import torch

        from .models import build_model

        torch.manual_seed(seed)
        return build_model(name, self.C, img_size=self.args.img_size)


def _teacher(run: _Run):
    """1. The teacher, reused when a previous run with the same settings left it."""
    import torch

    from .train import train

    args = run.args
    tkey = {k: getattr(args, k) for k in ("data", "teacher", "teacher_samples", "train_samples", "img_size",
                                          "teacher_epochs", "batch_size", "lr", "seed")}
    tpath, tjson = os.path.join(run.out, "teacher.pt"), os.path.join(run.out, "teacher.json")
    teacher = run.new(args.teacher, args.seed)
    reuse = os.path.exists(tpath) and os.path.exists(tjson) and json.load(open(tjson)).get("key") == tkey
    t0 = time.perf_counter()
    if reuse:
        run.phase(f"teacher: reusing {tpath}")
        teacher.load_state_dict(torch.load(tpath, map_location="cpu", weights_only=True))
        teacher_res = json.load(open(tjson))["result"]
    else:
        run.phase(f"teacher {args.teacher}: training on hard labels, {len(run.teacher_ds)} images, "
                  f"{args.teacher_epochs} epochs")
        loader = teacher_loader(run.teacher_ds, args.img_size, args.seed, args.batch_size)
        res = train(teacher, loader, mode="hard", epochs=args.teacher_epochs, lr=args.lr, num_classes=run.C,
                    eval_data=run.val, progress=True, bars=run.bars, log=lambda s: print("  teacher " + s))
        teacher_res = {"val_acc": res["val_acc"], "seconds": time.perf_counter() - t0}
        torch.save(teacher.state_dict(), tpath)
        with open(tjson, "w") as f:
            json.dump({"key": tkey, "result": teacher_res}, f)
        if os.path.exists(run.store_path):  # labelled by another teacher
            shutil.rmtree(run.store_path)
    teacher.eval()
    return teacher, teacher_res, tpath


def _store(run: _Run, teacher, tpath):
    """2. save-logits (the functions behind `tinyvit save-logits`; resumable, so a rerun is free)."""
    from .save_logits import check_teacher_output, open_or_create_store, save_logits

    args = run.args
    run.phase(f"save-logits: teacher top-{args.topk} for {args.epochs} epochs x {len(run.train_ds)} "
              f"augmented images")
    t0 = time.perf_counter()
    check_teacher_output(teacher, run.cfg, run.C, "cpu")
    store = open_or_create_store(run.store_path, dataset=run.train_ds, cfg=run.cfg, num_classes=run.C,
                                 topk=args.topk, epochs=args.epochs, base_seed=args.seed,
                                 dataset_spec=args.data, teacher_desc={"model": args.teacher, "checkpoint": tpath})
    st = save_logits(teacher, run.train_ds, store, run.cfg, epochs=range(args.epochs), batch_size=256,
                     progress=True, bars=run.bars, log=lambda s: print("  save-logits " + s))
    return store, st, time.perf_counter() - t0


def _students(run: _Run, store, teacher) -> dict:
    """3. Students: same init per seed, same augmentations (the store's seeds) for every method."""
    from ..data.loader import DistillLoader, ReplayLoader
    from .train import train

    args = run.args
    runs = {m: [] for m in run.methods}
    for seed in run.seeds:
        for m in run.methods:
            run.phase(f"student {args.student} seed {seed}: {m}")
            t0 = time.perf_counter()
            student = run.new(args.student, seed)
            if m.startswith("stored"):
                loader = DistillLoader(run.train_ds, store, run.cfg, batch_size=args.batch_size,
                                       num_classes=run.C)
                kw = dict(mode="distill")
            else:
                loader = ReplayLoader(run.train_ds, run.cfg, base_seed=args.seed, batch_size=args.batch_size)
                kw = dict(mode="online", teacher=teacher) if m.startswith("online") else dict(mode="hard")
            res = train(student, loader, epochs=args.epochs, lr=args.lr, num_classes=run.C, eval_data=run.val,
                        progress=False, bars=run.bars, **kw)
            runs[m].append({"seed": seed, "val_acc": res["val_acc"], "step_ms": 1e3 * res["step_time_s"],
                            "seconds": time.perf_counter() - t0})
            print(f"  test acc {res['val_acc']:.4f} ({runs[m][-1]['seconds']:.1f}s)")
    return runs


def _report(run: _Run, runs, teacher_res, store, save_s) -> tuple:
    """4. The table on stdout; returns (summary per method, paired KD - hard-label gains)."""
    args, methods = run.args, run.methods
    total = time.perf_counter() - run.t_start
    summary = {}
    for m in methods:
        mu, sd = _mean_std([r["val_acc"] for r in runs[m]])
        summary[m] = {"mean": mu, "std": sd, "step_ms": statistics.median(r["step_ms"] for r in runs[m])}
    gain = [a["val_acc"] - b["val_acc"] for a, b in zip(runs[methods[0]], runs["hard labels"])]
    print()
    print(f"{'run':<44} {'test acc (mean +- std)':>24} {'step ms':>8}")
    print(f"{'teacher ' + args.teacher + f' ({len(run.teacher_ds)} img, hard labels)':<44} "
          f"{teacher_res['val_acc']:>15.4f}{'':>9} {'-':>8}")
    for m in methods:
        s = summary[m]
        print(f"{'student ' + args.student + ': ' + m:<44} {s['mean']:>15.4f} +- {s['std']:.4f} "
              f"{s['step_ms']:>8.1f}")
    print(f"stored KD - hard labels, paired by seed: {statistics.fmean(gain):+.4f} "
          f"(per seed {', '.join(f'{g:+.4f}' for g in gain)}); store {store.nbytes:,} bytes "
          f"({store.record_size} B/record), save-logits {save_s:.1f}s; total {total:.0f}s")
    return summary, gain, total


def run_demo(args) -> int:
    import torch

    train_ds, teacher_ds, val_ds = check_demo_args(args)
    torch.set_num_threads(args.threads)
    run = _Run(args, train_ds, teacher_ds, val_ds)
    os.makedirs(run.out, exist_ok=True)
    print(f"tinyvit demo -> {run.out}\n  students: {train_ds!r}; teacher: first {len(teacher_ds)} images; "
          f"{len(val_ds)} test images; {args.img_size} px; seeds {run.seeds}; torch threads "
          f"{torch.get_num_threads()}")
    teacher, teacher_res, tpath = _teacher(run)
    store, st, save_s = _store(run, teacher, tpath)
    runs = _students(run, store, teacher)
    summary, gain, total = _report(run, runs, teacher_res, store, save_s)
    result = {"teacher": {"model": args.teacher, "samples": len(teacher_ds), **teacher_res},
              "student": args.student, "train_samples": len(train_ds), "seeds": run.seeds, "runs": runs,
              "summary": summary, "kd_minus_hard": gain, "store": {"path": run.store_path, "bytes": store.nbytes,
                                                                   "record_size": store.record_size,
                                                                   "teacher_acc_augmented": st.get("teacher_acc")},
              "save_logits_s": save_s, "total_s": total,
              "args": {k: v for k, v in vars(args).items() if k != "func"}}
    with open(os.path.join(run.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    png = os.path.join(run.out, "demo.png")
    _plot(png, result, store, train_ds, run.cfg, args)
    print(f"wrote {os.path.join(run.out, 'results.json')} and {png}")
    store.close()
    return 0


def _plot(path, result, store, train_ds, cfg, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .show import draw_samples, replayed_samples

    fig = plt.figure(figsize=(13, 6.2))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.45], left=0.07, right=0.99, top=0.86, bottom=0.13,
                          wspace=0.12)
    ax = fig.add_subplot(gs[0])
    names = [f"teacher\n(hard labels,\n{result['teacher']['samples']} img)"]
    means, stds, colours = [result["teacher"]["val_acc"]], [0.0], ["#888888"]
    pal = {"stored": "#2a7ab9", "hard": "#d9822b", "online": "#3c9d5d"}
    for m, s in result["summary"].items():
        names.append("student\n" + m.replace(" KD", "\nKD").replace(" labels", "\nlabels"))
        means.append(s["mean"])
        stds.append(s["std"])
        colours.append(pal[m.split()[0]])
    ax.bar(range(len(names)), means, yerr=stds, capsize=5, color=colours)
    for j, s in enumerate(result["summary"].values(), start=1):
        accs = [r["val_acc"] for r in result["runs"][list(result["summary"])[j - 1]]]
        ax.scatter([j] * len(accs), accs, color="k", s=10, zorder=3)
        ax.text(j, s["mean"] + s["std"] + 0.004, f"{s['mean']:.3f}\n±{s['std']:.3f}", ha="center", fontsize=8)
    ax.text(0, means[0] + 0.004, f"{means[0]:.3f}", ha="center", fontsize=8)
    lo = min(m - s for m, s in zip(means, stds))
    ax.set_ylim(max(0.0, lo - 0.05), min(1.0, max(means) + 0.04))
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{args.student} on {result['train_samples']} images, {args.epochs} epochs, "
                 f"{len(result['seeds'])} seeds (dots)", fontsize=9)
    samples = replayed_samples(store, train_ds, cfg, 0, range(12))
    draw_samples(fig, gs[1], samples, list(getattr(train_ds, "classes", ()) or ()), k=3, cols=6)
    fig.suptitle("tinyvit demo: a student distilled from the stored top-%d vs the same student on hard labels; "
                 "right: epoch-0 training samples replayed from the stored seeds, with the teacher's top-3"
                 % args.topk, fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
