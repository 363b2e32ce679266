"""tinyvit: fast pretraining distillation (TinyViT, ECCV 2022).

Data path: record (store) -> plan (seed -> augmentation parameters, C++) -> pixels
-> uint8 batch -> device ops -> sparse soft cross-entropy.
"""
from ._ext import _C, build_info
from .loss import SparseSoftCrossEntropy, dense_soft_cross_entropy, sparse_soft_cross_entropy
from .rng import PCG32, pcg32_u32

__version__ = "0.1.0"

__all__ = [
    "PCG32",
    "SparseSoftCrossEntropy",
    "build_info",
    "dense_soft_cross_entropy",
    "pcg32_u32",
    "sparse_soft_cross_entropy",
    "__version__",
]
