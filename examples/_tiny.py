"""Shared by the examples: a small dataset (a Fashion-MNIST subset when installed, else
synthetic images) and a 3-epoch logit store saved by a tiny linear teacher (seconds on a CPU).
A real run saves the store once with ``tinyvit save-logits`` and only opens it."""
import os

import numpy as np
import torch

import tinyvit
from tinyvit.data.datasets import FASHION_MNIST_DIR
from tinyvit.jobs.save_logits import open_or_create_store, save_logits

CFG = tinyvit.AugConfig(img_size=32, mean=(0.286,) * 3, std=(0.353,) * 3)
NUM_CLASSES = 10


def dataset(n=256):
    if os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")):
        return tinyvit.FashionMNIST(split="train", subset=n)
    rng = np.random.default_rng(0)
    return tinyvit.ArrayDataset(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                                rng.integers(0, NUM_CLASSES, n), name="synthetic")


class _Teacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3 * 32 * 32, NUM_CLASSES)

    def forward(self, x):
        return self.net(x.flatten(1))


def store(path, ds, epochs=3):
    """Open the example store at ``path``, saving it first if needed (rank 0 under torchrun)."""
    torch.manual_seed(0)
    s = open_or_create_store(path, dataset=ds, cfg=CFG, num_classes=NUM_CLASSES, topk=5,
                             epochs=epochs, base_seed=0, teacher_desc={"model": "linear"})
    if any(s.missing(e).size for e in range(epochs)) and int(os.environ.get("RANK", 0)) == 0:
        save_logits(_Teacher(), ds, s, CFG, epochs=range(epochs), batch_size=64,
                    progress=False, log=lambda *a, **k: None)
    return path


def student():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 64),
                               torch.nn.GELU(), torch.nn.Linear(64, NUM_CLASSES))
