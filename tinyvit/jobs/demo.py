"""`tinyvit demo`: the whole fast-distillation job on Fashion-MNIST, sized for 2 CPU cores.

1. train a teacher briefly (hard labels, the replayed augmentation pipeline);
2. `save-logits`: run the teacher once per epoch over the augmented data, store seeds +
   sparse top-K probabilities (a LogitStore);
3. distill a student from the store alone (no teacher, no labels: paper Eq. 1-2);
4. train the same student (same init, same augmentations) on hard labels;
5. print a comparison table: test accuracy, store bytes, median step time.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time


def demo_aug_config(img_size: int):
    """Milder than the ImageNet recipe (28 px images cannot take 8%-area crops), but every
    replayed step is on: crop, flip, RandAugment, erasing, Mixup and CutMix."""
    from ..augment.config import AugConfig

    return AugConfig(img_size=img_size, scale=(0.5, 1.0), auto_augment="rand-m6-n1-mstd0.5",
                     re_prob=0.1, mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.5,
                     mean=(0.286,) * 3, std=(0.353,) * 3)


def teacher_aug_config(img_size: int):
    """The teacher's own (brief) training recipe: light augmentation converges fastest. It is
    independent of the store's config, which only governs what the teacher labels."""
    from ..augment.config import AugConfig

    return AugConfig(img_size=img_size, scale=(0.6, 1.0), auto_augment=None, re_prob=0.0, mixup_alpha=0.0,
                     cutmix_alpha=0.0, mean=(0.286,) * 3, std=(0.353,) * 3)


def run_demo(args) -> int:
    import torch

    from ..data.datasets import open_dataset
    from ..data.loader import DistillLoader, ReplayLoader
    from .evaluate import eval_tensors
    from .models import build_model
    from .save_logits import check_teacher_output, open_or_create_store, save_logits
    from .train import train

    torch.set_num_threads(max(1, args.threads))
    t_start = time.perf_counter()
    progress = not args.no_progress
    work = args.workdir or tempfile.mkdtemp(prefix="tinyvit-demo-")
    os.makedirs(work, exist_ok=True)
    cfg = demo_aug_config(args.img_size)
    train_ds = open_dataset(args.data, "train", args.train_samples)
    val_ds = open_dataset(args.data, "test", args.val_samples)
    C = train_ds.num_classes
    val = eval_tensors(val_ds, args.img_size)
    print(f"tinyvit demo: {train_ds!r} for training, {len(val_ds)} test images, {args.img_size}px, "
          f"torch threads {torch.get_num_threads()}, workdir {work}")
    rows = []

    def new(name):
        torch.manual_seed(args.seed)
        return build_model(name, C, img_size=args.img_size)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    # 1. teacher
    t0 = time.perf_counter()
    teacher = new(args.teacher)
    teacher_ds = open_dataset(args.data, "train", max(args.teacher_samples, args.train_samples))
    loader = ReplayLoader(teacher_ds, teacher_aug_config(args.img_size), base_seed=args.seed + 1000,
                          batch_size=args.batch_size)
    res = train(teacher, loader, mode="hard", epochs=args.teacher_epochs, lr=args.lr, num_classes=C,
                eval_data=val, progress=progress)
    rows.append(dict(run=f"teacher {args.teacher} ({len(teacher_ds)} img, {args.teacher_epochs} ep)", params=count(teacher),
                     val_acc=res["val_acc"], store_bytes=None, step_ms=1e3 * res["step_time_s"],
                     seconds=time.perf_counter() - t0))
    torch.save(teacher.state_dict(), os.path.join(work, "teacher.pt"))

    # 2. save-logits (the demo calls the functions behind `tinyvit save-logits`)
    t0 = time.perf_counter()
    store_path = os.path.join(work, f"store_top{args.topk}")
    if os.path.exists(store_path):
        shutil.rmtree(store_path)
    check_teacher_output(teacher, cfg, C, "cpu")
    store = open_or_create_store(store_path, dataset=train_ds, cfg=cfg, num_classes=C, topk=args.topk,
                                 epochs=args.epochs, base_seed=args.seed, dataset_spec=args.data,
                                 teacher_desc={"model": args.teacher, "checkpoint": os.path.join(work, "teacher.pt")})
    st = save_logits(teacher, train_ds, store, cfg, epochs=range(args.epochs), batch_size=256, progress=progress)
    save_s = time.perf_counter() - t0
    store_bytes = store.nbytes
    print(f"saved {args.epochs} epochs x {len(train_ds)} records of top-{args.topk} in {save_s:.1f}s: "
          f"{store_bytes:,} bytes ({store.record_size} B/record); teacher accuracy on the augmented "
          f"training images {st['teacher_acc']:.3f}")

    # 3. student from the store
    t0 = time.perf_counter()
    student = new(args.student)
    loader = DistillLoader(train_ds, store, cfg, batch_size=args.batch_size, num_classes=C)
    res = train(student, loader, mode="distill", epochs=args.epochs, lr=args.lr, num_classes=C,
                eval_data=val, progress=progress)
    rows.append(dict(run=f"student {args.student}: stored top-{args.topk} KD", params=count(student),
                     val_acc=res["val_acc"], store_bytes=store_bytes, step_ms=1e3 * res["step_time_s"],
                     seconds=time.perf_counter() - t0))

    # 4. same student, hard labels (same init, same augmentation seeds)
    t0 = time.perf_counter()
    student = new(args.student)
    loader = ReplayLoader(train_ds, cfg, base_seed=args.seed, batch_size=args.batch_size)
    res = train(student, loader, mode="hard", epochs=args.epochs, lr=args.lr, num_classes=C, eval_data=val,
                progress=progress)
    rows.append(dict(run=f"student {args.student}: hard labels", params=count(student), val_acc=res["val_acc"],
                     store_bytes=None, step_ms=1e3 * res["step_time_s"], seconds=time.perf_counter() - t0))

    if args.online:
        t0 = time.perf_counter()
        student = new(args.student)
        loader = ReplayLoader(train_ds, cfg, base_seed=args.seed, batch_size=args.batch_size)
        res = train(student, loader, mode="online", epochs=args.epochs, lr=args.lr, num_classes=C,
                    eval_data=val, teacher=teacher, progress=progress)
        rows.append(dict(run=f"student {args.student}: online dense KD", params=count(student),
                         val_acc=res["val_acc"], store_bytes=None, step_ms=1e3 * res["step_time_s"],
                         seconds=time.perf_counter() - t0))

    total = time.perf_counter() - t_start
    print()
    print(f"{'run':<50} {'params':>8} {'test acc':>9} {'store bytes':>12} {'step ms':>8} {'wall s':>7}")
    for r in rows:
        sb = f"{r['store_bytes']:,}" if r["store_bytes"] else "-"
        print(f"{r['run']:<50} {r['params']:>8,} {r['val_acc']:>9.4f} {sb:>12} {r['step_ms']:>8.1f} "
              f"{r['seconds']:>7.1f}")
    print(f"(step ms: median per training step incl. data, batch {args.batch_size}; "
          f"save-logits took {save_s:.1f}s; total {total:.0f}s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "save_logits_s": save_s, "total_s": total, "args": vars(args)
                       | {"func": None}}, f, indent=2, default=str)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0
