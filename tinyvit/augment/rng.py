"""PCG32, the one random number generator behind every replayable augmentation.

Implemented in C++ (csrc/core/rng/pcg32.h); see that header for the exact number of
draws each call consumes, which the augmentation plan format depends on.
"""
from .._ext import _C

PCG32 = _C.PCG32
pcg32_u32 = _C.pcg32_u32

__all__ = ["PCG32", "pcg32_u32"]
