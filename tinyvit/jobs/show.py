"""`tinyvit show`: replay stored samples and draw them with the teacher's stored top-k.

The pixels come from the student's exact path, the one ``ReplayPipeline`` (seeds from the
stored records -> one plan per sample -> pixels + device params -> ``DeviceAugment``:
normalize, erasing, Mixup/CutMix), so the picture is what the teacher saw when it wrote the
record (byte-identical to DistillLoader's batch, tested). A mixed sample is drawn as the mix,
titled with both source samples and the partner's share ("+ 22% of #1836").
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch

__all__ = ["replayed_samples", "draw_samples", "show_store"]


def replayed_samples(store, dataset, cfg, epoch: int, indices) -> List[dict]:
    """One dict per requested sample (repeats drawn once): ``image`` (uint8 HxWx3,
    de-normalised for display), ``normalized`` (the float32 [3, H, W] tensor the student
    trains on, before that de-normalisation), ``index``, ``label`` (or None), ``partner``
    and ``lam`` (1.0 = not mixed), ``topk`` [(class, prob)]."""
    from ..augment.seeds import mix_partners
    from ..data.pipeline import ReplayPipeline
    from ..store.compat import stored_base_seed

    pipe = ReplayPipeline(dataset, cfg, int(stored_base_seed(store)), store=store)
    want = list(dict.fromkeys(int(i) for i in indices))
    # the mix partners must be in the batch: add them, draw only the requested samples
    partners = (mix_partners(epoch, np.asarray(want, np.int64), len(dataset), pipe.base_seed).tolist()
                if cfg.mixing else [])
    idx = list(dict.fromkeys(want + partners))
    cpu = pipe.cpu_batch(epoch, idx)
    b = pipe.device_batch(cpu, epoch, "cpu")
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    pix = ((b.images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    ti, tp = cpu["topk_indices"], cpu["topk_probs"]
    targets = getattr(dataset, "targets", None)
    out = []
    for pos, i in enumerate(want):
        mixed = float(b.lam[pos]) < 1.0
        out.append({"index": i, "image": pix[pos], "normalized": b.images[pos],
                    "lam": float(b.lam[pos]), "partner": idx[int(b.partner[pos])] if mixed else None,
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
