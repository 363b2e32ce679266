"""`tinyvit show`: replay stored samples and draw them with the teacher's stored top-k.

The pixels come from the exact path the student trains on (``replay_batch`` from the stored
seed -> ``plan_device_params`` -> ``DeviceAugment``: normalize, erasing, Mixup/CutMix), so
the picture is what the teacher saw when it wrote the record. A mixed sample is drawn as the
mix, titled with both source samples and the partner's share ("+ 22% of #1836").
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch

__all__ = ["replayed_samples", "draw_samples", "show_store"]


def replayed_samples(store, dataset, cfg, epoch: int, indices) -> List[dict]:
    """One dict per sample: ``image`` (uint8 HxWx3, de-normalised for display), ``index``,
    ``label`` (or None), ``partner`` and ``lam`` (1.0 = not mixed), ``topk`` [(class, prob)]."""
    from ..augment.device import DeviceAugment, batch_partners
    from ..augment.plan import plan_device_params
    from ..augment.replay import replay_batch
    from ..augment.seeds import mix_partners
    from ..data.sources import source_sizes
    from ..store.compat import stored_base_seed

    base_seed = int(stored_base_seed(store))
    want = [int(i) for i in indices]
    # the mix partners must be in the batch: add them, draw only the requested samples
    idx = list(dict.fromkeys(want + (mix_partners(epoch, np.asarray(want, np.int64), len(dataset), base_seed)
                                     .tolist() if cfg.mixing else [])))
    idx_np = np.asarray(idx, np.int64)
    seeds, ti, tp = store.read(epoch, idx_np)
    seeds_np = seeds.numpy().astype(np.int64)
    u8 = replay_batch([dataset[i] for i in idx], seeds_np.tolist(), cfg)
    params = plan_device_params(seeds_np.astype(np.uint32), source_sizes(dataset, idx_np), cfg)
    partner = batch_partners(idx_np, epoch, len(dataset), base_seed) if cfg.mixing else None
    x, lam = DeviceAugment(cfg)(torch.from_numpy(np.ascontiguousarray(u8)), params, partner)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    pix = ((x * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    targets = getattr(dataset, "targets", None)
    out = []
    for pos, i in enumerate(idx[:len(want)]):
        p = int(partner[pos]) if partner is not None else pos
        out.append({"index": i, "image": pix[pos], "lam": float(lam[pos]),
                    "partner": idx[p] if float(lam[pos]) < 1.0 else None,
                    "label": int(targets[i]) if targets is not None else None,
                    "topk": [(int(c), float(v)) for c, v in zip(ti[pos].tolist(), tp[pos].tolist())]})
    return out


def _name(classes, c) -> str:
    return str(classes[c]) if classes and 0 <= c < len(classes) else f"class {c}"


def draw_samples(fig, spec, samples, classes=(), k: int = 3, cols: Optional[int] = None, title=None):
    """Draw samples into a gridspec cell ``spec`` of ``fig`` (one image + caption each)."""
    n = len(samples)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sub = spec.subgridspec(rows, cols, hspace=0.9, wspace=0.15)
    for j, s in enumerate(samples):
        ax = fig.add_subplot(sub[j // cols, j % cols])
        ax.imshow(s["image"], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        head = f"#{s['index']}"
        if s["label"] is not None:
            head += f" ({_name(classes, s['label'])})"
        if s["partner"] is not None:
            head += f"\n+ {1 - s['lam']:.0%} of #{s['partner']}"
        lines = [f"{_name(classes, c)} {v:.2f}" for c, v in s["topk"][:k]]
        ax.set_title(head, fontsize=6.5, pad=2)
        ax.set_xlabel("\n".join(lines), fontsize=6.5, labelpad=2)
    if title:
        fig.text(spec.get_position(fig).x0, spec.get_position(fig).y1 + 0.01, title, fontsize=9,
                 ha="left", va="bottom")


def show_store(store, dataset, cfg, *, epoch: int, indices, out: str, k: int = 3, classes=()) -> List[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = replayed_samples(store, dataset, cfg, epoch, indices)
    cols = int(np.ceil(np.sqrt(len(samples))))
    rows = int(np.ceil(len(samples) / cols))
    fig = plt.figure(figsize=(1.7 * cols, 1.9 * rows + 0.6))
    h = 1.9 * rows + 0.6
    gs = fig.add_gridspec(1, 1, top=1 - 0.6 / h, bottom=0.55 / h, left=0.02, right=0.98)
    draw_samples(fig, gs[0], samples, classes, k=k, cols=cols)
    fig.suptitle(f"{store.path}: epoch {epoch}, replayed from the stored seeds, with the stored top-{k}",
                 fontsize=9)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return samples
