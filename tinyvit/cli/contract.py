"""`tinyvit contract`: progressive model contraction search on a small dataset (CLI)."""
from __future__ import annotations

import argparse
import json
import os
import re

from .options import positive_int

DESCRIPTION = """\
Progressive model contraction (TinyViT paper Sec. 3.2): starting from a seed set of
contraction factors, each step generates one smaller neighbour per contraction move
(D1-..D4-: one head-dim step narrower; N1-..N4-: one block fewer; W2-..W4-: next smaller
window dividing the feature map; R-/M-: MBConv / MLP ratio - 1; E/2: half the head dim),
applying a move repeatedly until the candidate fits the step's parameter budget
(max(--max-params, --step-ratio x current params)). Candidates slower than
min(--min-throughput, current) x (1 - --tput-tolerance) are rejected; the rest are scored
by a short proxy training and the best-validating one becomes the current model, until it
meets --max-params and --min-throughput.

Proxy: each candidate is trained by the loop behind `tinyvit train` (AdamW, warm-up + cosine)
for --epochs epochs and scored by top-1 on held-out images. "distill" (the default with
--store): the DistillLoader replays each training image from the store's seed and trains on
the teacher's sparse top-K (tinyvit.sparse_soft_cross_entropy); "labels": the same augmented
images with Mixup/CutMix-mixed, smoothed hard labels. Augmentation: the demo's small-image
recipe (crop, flip, RandAugment, erasing, Mixup/CutMix). Data: Fashion-MNIST (Debian
dataset-fashion-mnist): the first --train-samples training images train the proxy, the next
--val-samples validate it; grayscale models (in_chans=1) at --img-size. --make-store trains
--teacher the same way and saves its top-K for --epochs augmented epochs (tinyvit save-logits).
Throughput is measured on --tput-device at --img-size, batch --tput-batch.

Every candidate (factors, params, throughput, proxy accuracy, accepted/rejected + reason)
is appended to --log as JSON lines. Rerunning with the same --log resumes: logged
measurements and scores are reused, only new candidates are measured/scored. A PNG of the
explored points (params vs throughput, colour = proxy accuracy) with the chosen path is
written next to the log (or --png). Exit status 0 when the targets are met, 3 otherwise.
"""

EPILOG = """\
example:
  tinyvit contract --from tinyvit_5m --img-size 32 --max-params 1.5M --min-throughput 200 \\
      --store /tmp/fm_store --make-store --log /tmp/contract.jsonl
"""


def _count(s: str) -> float:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?)\s*", s)
    if not m:
        raise argparse.ArgumentTypeError(f"not a number (optionally with k/M/G suffix): {s!r}")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]


def load_factors(spec: str):
    """A preset name, a JSON file path, or an inline JSON object -> ContractionFactors."""
    from ..models.contraction import PRESETS, ContractionFactors

    if spec in PRESETS:
        return PRESETS[spec]
    if spec.lstrip().startswith("{"):
        return ContractionFactors.from_dict(json.loads(spec))
    if os.path.exists(spec):
        with open(spec, encoding="utf-8") as fh:
            return ContractionFactors.from_dict(json.load(fh))
    raise ValueError(f"--from/--teacher {spec!r}: not a preset ({sorted(PRESETS)}), "
                     f"a JSON file or an inline JSON object")


def add_contract_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search")
    g.add_argument("--from", dest="start", metavar="FACTORS", default="tinyvit_5m",
                   help="the model to contract: preset name, JSON file or inline JSON of contraction "
                   "factors (default tinyvit_5m)")
    g.add_argument("--max-params", type=_count, default=None,
                   help="target: at most this many parameters (e.g. 1.5M)")
    g.add_argument("--min-throughput", type=_count, default=None,
                   help="target: at least this many images/s (measured as below)")
    g.add_argument("--step-ratio", type=float, default=0.9,
                   help="per-step parameter budget as a fraction of the current model (default 0.9)")
    g.add_argument("--tput-tolerance", type=float, default=0.05,
                   help="allowed throughput loss per step for timing noise (default 0.05)")
    g.add_argument("--max-steps", type=int, default=20, help="stop after this many steps (default 20)")
    g.add_argument("--moves", default=None,
                   help="comma-separated subset of moves "
                   "(default all: D1-..D4-,N1-..N4-,W2-..W4-,R-,M-,E/2)")
    g.add_argument("--no-fit-windows", action="store_true",
                   help="do not shrink the --from model's windows to divisors of the feature maps at --img-size")
    g.add_argument("--log", required=True, help="JSON-lines log (appended; rerun to resume)")
    g.add_argument("--png", default=None, help="plot path (default: log path with .png)")
    g.add_argument("--quiet", action="store_true", help="no per-step output")
    g = p.add_argument_group("proxy")
    g.add_argument("--proxy", choices=("distill", "labels"), default=None,
                   help="proxy score (default: distill with --store, labels without)")
    g.add_argument("--store", default=None, help="LogitStore with the teacher's top-K for the training subset")
    g.add_argument("--make-store", action="store_true",
                   help="if --store does not exist, train --teacher on the labels and save its top-K for --epochs "
                   "augmented epochs there")
    g.add_argument("--teacher", default=None, help="teacher factors for --make-store (default: the --from model)")
    g.add_argument("--teacher-epochs", type=positive_int, default=4, help="teacher training epochs (default 4)")
    g.add_argument("--topk", type=positive_int, default=5, help="top-K saved by --make-store (default 5)")
    g.add_argument("--epochs", type=positive_int, default=3, help="proxy training epochs (default 3)")
    g.add_argument("--batch-size", type=positive_int, default=32, help="proxy batch size (default 32)")
    g.add_argument("--lr", type=float, default=3e-3, help="proxy AdamW peak lr, 20%% warm-up then cosine (default 3e-3)")
    g.add_argument("--seed", type=int, default=0, help="seed of the init, the augmentations and the order (default 0)")
    g.add_argument("--threads", type=positive_int, default=1,
                   help="torch intra-op threads for the teacher and proxy training (default 1: these "
                   "small models gain little from more, and OpenMP threads slow down by 10-50x when "
                   "the cores are shared with other work)")
    g = p.add_argument_group("data and measurement")
    g.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist[:DIR] (idx .gz files in DIR, /usr/share/datasets/fashion-mnist when "
                   "omitted); the search supports only Fashion-MNIST (default fashion-mnist)")
    g.add_argument("--train-samples", type=positive_int, default=512, help="proxy training images (default 512)")
    g.add_argument("--val-samples", type=positive_int, default=256, help="proxy validation images (default 256)")
    g.add_argument("--img-size", type=int, default=32, help="input side in px (default 32)")
    g.add_argument("--tput-batch", type=int, default=32, help="throughput batch (default 32)")
    g.add_argument("--tput-repeats", type=int, default=5, help="timed repeats, median (default 5)")
    g.add_argument("--tput-warmup", type=int, default=2, help="untimed warm-up passes (default 2)")
    g.add_argument("--tput-device", default="cpu", help="throughput device (default cpu)")
    g.add_argument("--tput-threads", type=int, default=1,
                   help="CPU intra-op threads while timing (default 1: stable on shared CPUs; "
                        "0 = the --threads setting)")
    g.add_argument("--amp", action="store_true", help="autocast fp16 throughput (CUDA only)")


def run_contract(args) -> int:
    import torch

    from ..data.datasets import DatasetError
    from ..jobs.contract import (MOVES, DistillProxy, LabelsProxy, Measurer, contract_search,
                                 make_teacher_store, plot_log, proxy_datasets)
    from . import CLIError

    if args.max_params is None and args.min_throughput is None:
        raise CLIError("give --max-params and/or --min-throughput")
    if not (args.data == "fashion-mnist" or args.data.startswith("fashion-mnist:")):
        raise CLIError(f"--data {args.data!r}: contract supports only fashion-mnist[:DIR]")
    torch.set_num_threads(args.threads)
    seed = load_factors(args.start)
    if not args.no_fit_windows:
        seed = seed.fit_windows(args.img_size)
    n_tr, n_va = args.train_samples, args.val_samples
    try:
        train_ds, val_ds = proxy_datasets(args.data, n_tr, n_va)
    except DatasetError as e:
        raise CLIError(f"--train-samples/--val-samples: {e}") from None
    num_classes = 10
    data_id = f"{args.data}:train[0:{n_tr}]+[{n_tr}:{n_tr + n_va}]@{args.img_size}px"
    kw = dict(num_classes=num_classes, img_size=args.img_size, epochs=args.epochs,
              batch=args.batch_size, lr=args.lr, seed=args.seed, data_id=data_id)
    proxy = args.proxy or ("distill" if args.store else "labels")
    if proxy == "distill":
        if not args.store:
            raise CLIError("--proxy distill needs --store")
        from ..store import LogitStore

        if os.path.exists(os.path.join(args.store, "manifest.json")):
            store = LogitStore.open(args.store, "r")
        elif args.make_store:
            teacher = load_factors(args.teacher).fit_windows(args.img_size) if args.teacher else seed
            print(f"training teacher {teacher.key()} for {args.teacher_epochs} epochs on {n_tr} images, "
                  f"then saving its top-{args.topk} for {args.epochs} augmented epochs -> {args.store}")
            make_teacher_store(args.store, teacher, train_ds, num_classes=num_classes,
                               img_size=args.img_size, epochs=args.epochs, topk=args.topk,
                               teacher_epochs=args.teacher_epochs, seed=args.seed, data_id=data_id,
                               progress=not args.quiet).close()
            store = LogitStore.open(args.store, "r")
        else:
            raise CLIError(f"--store {args.store!r}: no store there (add --make-store)")
        scorer = DistillProxy(store, train_ds, val_ds, **kw)
    else:
        scorer = LabelsProxy(train_ds, val_ds, **kw)
    measure = Measurer(num_classes, 1, args.img_size, batch=args.tput_batch,
                       device=args.tput_device, warmup=args.tput_warmup,
                       repeats=args.tput_repeats, amp=args.amp, threads=args.tput_threads or None)
    moves = tuple(m.strip() for m in args.moves.split(",")) if args.moves else MOVES
    summary = contract_search(
        seed, scorer, args.log, img_size=args.img_size, max_params=args.max_params,
        min_throughput=args.min_throughput, measure=measure, step_ratio=args.step_ratio,
        tput_tolerance=args.tput_tolerance, max_steps=args.max_steps, moves=moves,
        config={"proxy": scorer.config(), "measure": measure.config()}, verbose=not args.quiet)
    png = args.png or os.path.splitext(args.log)[0] + ".png"
    plot_log(args.log, png)
    print(json.dumps({k: summary[k] for k in ("status", "steps", "final_key", "params",
                                              "throughput", "proxy_acc", "new_measurements",
                                              "new_scores")}))
    print(f"log: {args.log}\nplot: {png}")
    return 0 if summary["status"] == "target_met" else 3


def add_contract_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("contract", help="progressive model contraction search (paper Sec. 3.2)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_contract_arguments(p)
    p.set_defaults(func=run_contract)
    return p
