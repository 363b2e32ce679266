"""The plan and pixel side of the data path: seed -> plan -> pixels -> device ops.

- ``config.py``: ``AugConfig`` (the recipe; its fingerprint binds a store to it)
- ``rng.py``: PCG32 (bit-exact with csrc/core/rng/pcg32.h)
- ``seeds.py``: per-(epoch, sample) seeds and Mixup/CutMix pairing (pure functions; the
  ``PairedSampler`` order lives in ``tinyvit.data.sampler``)
- ``plan.py``: ``make_plan``: a seed decoded into every augmentation parameter (C++)
- ``replay.py``: ``replay`` / ``replay_batch``: a plan applied to a source -> uint8 pixels
- ``pil.py``: the Pillow backend of the same plan (reference / non-JPEG fallback)
- ``device.py``: the batch ops on the training device: normalize, RandomErasing, Mixup/CutMix
"""
