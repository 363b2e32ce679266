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

__all__ = ["run_demo", "demo_aug_config", "teacher_aug_config", "check_demo_args"]


def demo_aug_config(img_size: int):
    """Milder than the ImageNet recipe (28 px images cannot take 8%-area crops), but every
    replayed step is on: crop, flip, RandAugment, erasing, Mixup and CutMix."""
    from ..augment.config import AugConfig

    return AugConfig(img_size=img_size, scale=(0.5, 1.0), auto_augment="rand-m6-n1-mstd0.5",
                     re_prob=0.1, mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.5,
                     mean=(0.286,) * 3, std=(0.353,) * 3)


def teacher_aug_config(img_size: int):
    """The teacher's own training recipe: light augmentation converges fastest. It is
    independent of the store's config, which only governs what the teacher labels."""
    from ..augment.config import AugConfig

    return AugConfig(img_size=img_size, scale=(0.6, 1.0), auto_augment=None, re_prob=0.0, mixup_alpha=0.0,
                     cutmix_alpha=0.0, mean=(0.286,) * 3, std=(0.353,) * 3)


def check_demo_args(args):
    """Everything that can be wrong with the options, before any work. Returns the datasets."""
    from ..cli import CLIError
    from ..data.datasets import open_dataset
    from .models import build_model

    if args.train_samples % 2:
        raise CLIError(f"--train-samples {args.train_samples}: must be even (Mixup/CutMix pairs)")
    demo_aug_config(args.img_size)
    train_ds = open_dataset(args.data, "train", args.train_samples)
    teacher_ds = open_dataset(args.data, "train", max(args.teacher_samples, args.train_samples))
    val_ds = open_dataset(args.data, "test", args.val_samples)
    C = train_ds.num_classes
    if not 1 <= args.topk < C:
        raise CLIError(f"--topk must be in [1, num_classes = {C}), got {args.topk}")
    for name in (args.teacher, args.student):
        build_model(name, C, img_size=args.img_size)  # ModelError names it
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out!r} exists and is not a directory")
    return train_ds, teacher_ds, val_ds


def _mean_std(v):
    return (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)


def run_demo(args) -> int:
    import torch

    from ..data.loader import DistillLoader, ReplayLoader
    from .evaluate import eval_tensors
    from .models import build_model
    from .save_logits import check_teacher_output, open_or_create_store, save_logits
    from .train import train

    train_ds, teacher_ds, val_ds = check_demo_args(args)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    bars = not args.no_progress
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    cfg = demo_aug_config(args.img_size)
    C = train_ds.num_classes
    val = eval_tensors(val_ds, args.img_size)
    seeds = list(range(args.seed, args.seed + args.seeds))
    methods = ["stored top-%d KD" % args.topk, "hard labels"] + ([] if args.no_online else ["online dense KD"])
    print(f"tinyvit demo -> {out}\n  students: {train_ds!r}; teacher: first {len(teacher_ds)} images; "
          f"{len(val_ds)} test images; {args.img_size} px; seeds {seeds}; torch threads {torch.get_num_threads()}")

    def phase(name):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {name}", flush=True)

    def new(name, seed):
        torch.manual_seed(seed)
        return build_model(name, C, img_size=args.img_size)

    # 1. teacher (reused when a previous run with the same settings left it)
    tkey = {k: getattr(args, k) for k in ("data", "teacher", "teacher_samples", "train_samples", "img_size",
                                          "teacher_epochs", "batch_size", "lr", "seed")}
    tpath, tjson = os.path.join(out, "teacher.pt"), os.path.join(out, "teacher.json")
    store_path = os.path.join(out, f"store_top{args.topk}")
    teacher = new(args.teacher, args.seed)
    reuse = os.path.exists(tpath) and os.path.exists(tjson) and json.load(open(tjson)).get("key") == tkey
    t0 = time.perf_counter()
    if reuse:
        phase(f"teacher: reusing {tpath}")
        teacher.load_state_dict(torch.load(tpath, map_location="cpu", weights_only=True))
        teacher_res = json.load(open(tjson))["result"]
    else:
        phase(f"teacher {args.teacher}: training on hard labels, {len(teacher_ds)} images, "
              f"{args.teacher_epochs} epochs")
        loader = ReplayLoader(teacher_ds, teacher_aug_config(args.img_size), base_seed=args.seed + 1000,
                              batch_size=args.batch_size)
        res = train(teacher, loader, mode="hard", epochs=args.teacher_epochs, lr=args.lr, num_classes=C,
                    eval_data=val, progress=True, bars=bars, log=lambda s: print("  teacher " + s))
        teacher_res = {"val_acc": res["val_acc"], "seconds": time.perf_counter() - t0}
        torch.save(teacher.state_dict(), tpath)
        with open(tjson, "w") as f:
            json.dump({"key": tkey, "result": teacher_res}, f)
        if os.path.exists(store_path):  # labelled by another teacher
            shutil.rmtree(store_path)
    teacher.eval()

    # 2. save-logits (the functions behind `tinyvit save-logits`; resumable, so a rerun is free)
    phase(f"save-logits: teacher top-{args.topk} for {args.epochs} epochs x {len(train_ds)} augmented images")
    t0 = time.perf_counter()
    check_teacher_output(teacher, cfg, C, "cpu")
    store = open_or_create_store(store_path, dataset=train_ds, cfg=cfg, num_classes=C, topk=args.topk,
                                 epochs=args.epochs, base_seed=args.seed, dataset_spec=args.data,
                                 teacher_desc={"model": args.teacher, "checkpoint": tpath})
    st = save_logits(teacher, train_ds, store, cfg, epochs=range(args.epochs), batch_size=256, progress=True,
                     bars=bars, log=lambda s: print("  save-logits " + s))
    save_s = time.perf_counter() - t0

    # 3. students: same init per seed, same augmentations (the store's seeds) for every method
    runs = {m: [] for m in methods}
    for seed in seeds:
        for m in methods:
            phase(f"student {args.student} seed {seed}: {m}")
            t0 = time.perf_counter()
            student = new(args.student, seed)
            if m.startswith("stored"):
                loader = DistillLoader(train_ds, store, cfg, batch_size=args.batch_size, num_classes=C)
                kw = dict(mode="distill")
            else:
                loader = ReplayLoader(train_ds, cfg, base_seed=args.seed, batch_size=args.batch_size)
                kw = dict(mode="online", teacher=teacher) if m.startswith("online") else dict(mode="hard")
            res = train(student, loader, epochs=args.epochs, lr=args.lr, num_classes=C, eval_data=val,
                        progress=False, bars=bars, **kw)
            runs[m].append({"seed": seed, "val_acc": res["val_acc"], "step_ms": 1e3 * res["step_time_s"],
                            "seconds": time.perf_counter() - t0})
            print(f"  test acc {res['val_acc']:.4f} ({runs[m][-1]['seconds']:.1f}s)")

    total = time.perf_counter() - t_start
    summary = {}
    for m in methods:
        mu, sd = _mean_std([r["val_acc"] for r in runs[m]])
        summary[m] = {"mean": mu, "std": sd, "step_ms": statistics.median(r["step_ms"] for r in runs[m])}
    gain = [a["val_acc"] - b["val_acc"] for a, b in zip(runs[methods[0]], runs["hard labels"])]
    print()
    print(f"{'run':<44} {'test acc (mean +- std)':>24} {'step ms':>8}")
    print(f"{'teacher ' + args.teacher + f' ({len(teacher_ds)} img, hard labels)':<44} "
          f"{teacher_res['val_acc']:>15.4f}{'':>9} {'-':>8}")
    for m in methods:
        s = summary[m]
        print(f"{'student ' + args.student + ': ' + m:<44} {s['mean']:>15.4f} +- {s['std']:.4f} "
              f"{s['step_ms']:>8.1f}")
    print(f"stored KD - hard labels, paired by seed: {statistics.fmean(gain):+.4f} "
          f"(per seed {', '.join(f'{g:+.4f}' for g in gain)}); store {store.nbytes:,} bytes "
          f"({store.record_size} B/record), save-logits {save_s:.1f}s; total {total:.0f}s")
    result = {"teacher": {"model": args.teacher, "samples": len(teacher_ds), **teacher_res},
              "student": args.student, "train_samples": len(train_ds), "seeds": seeds, "runs": runs,
              "summary": summary, "kd_minus_hard": gain, "store": {"path": store_path, "bytes": store.nbytes,
                                                                   "record_size": store.record_size,
                                                                   "teacher_acc_augmented": st.get("teacher_acc")},
              "save_logits_s": save_s, "total_s": total,
              "args": {k: v for k, v in vars(args).items() if k != "func"}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    png = os.path.join(out, "demo.png")
    _plot(png, result, store, train_ds, cfg, args)
    print(f"wrote {os.path.join(out, 'results.json')} and {png}")
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
