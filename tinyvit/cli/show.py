"""`tinyvit show STORE --data ... --out grid.png`: replayed samples with their stored top-k."""
from __future__ import annotations

from .options import HelpFormatter, nonneg_int, positive_int


def add_show_parser(sub) -> None:
    p = sub.add_parser(
        "show", help="draw replayed samples of a store with the teacher's stored top-k (a PNG)",
        description="Replay samples of a logit store from their stored seeds -- the same pixels the "
        "teacher labelled and the student trains on, Mixup/CutMix included -- and draw them with "
        "the stored top-k classes and probabilities (class names where the dataset has them). A "
        "mixed sample is titled with both of its sources and the partner's share.",
        formatter_class=HelpFormatter)
    p.add_argument("store", help="store directory (holding manifest.json)")
    p.add_argument("--data", required=True,
                   help="the dataset the store was written from (ImageFolder directory or fashion-mnist[:DIR]); "
                   "checked against the store's fingerprint")
    p.add_argument("--subset", type=positive_int, default=None,
                   help="first N training samples, as given to save-logits (default: the store's N)")
    p.add_argument("--epoch", type=nonneg_int, default=0, help="which epoch's augmentation")
    p.add_argument("--samples", type=positive_int, default=16, help="how many samples to draw")
    p.add_argument("--first", type=nonneg_int, default=0, help="first sample index drawn")
    p.add_argument("--topk", type=positive_int, default=3, help="stored classes shown per sample")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=run_show)


def run_show(args) -> int:
    from ..data.datasets import open_dataset
    from ..data.store_config import store_aug_config
    from ..jobs.show import show_store
    from ..store import LogitStore, check_compatible
    from . import CLIError

    store = LogitStore.open(args.store)
    cfg = store_aug_config(store)  # ManifestError: missing or garbled
    if args.epoch >= store.epochs:
        raise CLIError(f"--epoch {args.epoch}: the store has epochs 0..{store.epochs - 1}")
    if args.first + args.samples > store.num_samples:
        raise CLIError(f"--first {args.first} + --samples {args.samples} > the store's {store.num_samples} samples")
    dataset = open_dataset(args.data, "train", args.subset if args.subset else store.num_samples
                           if args.data.startswith("fashion-mnist") else None)
    check_compatible(store, dataset=dataset, aug_config=cfg)
    classes = list(getattr(dataset, "classes", ()) or (store.manifest["meta"].get("classes") or ()))
    samples = show_store(store, dataset, cfg, epoch=args.epoch,
                         indices=range(args.first, args.first + args.samples), out=args.out,
                         k=min(args.topk, store.topk), classes=classes)
    mixed = sum(s["partner"] is not None for s in samples)
    print(f"wrote {args.out}: {len(samples)} samples of epoch {args.epoch} ({mixed} mixed)")
    return 0
