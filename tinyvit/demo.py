"""`tinyvit demo`: the main job on the embedded default.

Until the end-to-end distillation lands, this exercises what exists: the build, and the
seed -> random stream decoding that every replayed augmentation starts from.
"""
from __future__ import annotations

import time


def add_demo_arguments(p) -> None:
    p.add_argument("--seed", type=int, default=42, help="base seed (default: 42)")


def run_demo(args) -> int:
    from . import PCG32, build_info, pcg32_u32

    info = build_info()
    print("tinyvit build:", ", ".join(f"{k}={info[k]}" for k in
                                      ("cuda", "cuda_archs", "jpeg", "libjpeg_turbo_version",
                                       "torch_runtime")))
    g = PCG32(args.seed, 54)
    print(f"PCG32({args.seed}, 54) first outputs:", " ".join(f"0x{g.next_u32():08x}" for _ in range(6)))
    t = time.perf_counter()
    n = 10_000_000
    pcg32_u32(args.seed, 54, n)
    dt = time.perf_counter() - t
    print(f"decoded {n:,} random numbers in C++ in {dt * 1e3:.1f} ms ({n / dt / 1e6:.0f} M/s)")
    return 0
