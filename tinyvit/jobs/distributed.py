"""torch.distributed set-up for torchrun (WORLD_SIZE/RANK/LOCAL_RANK): one ``Dist`` record."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch

__all__ = ['Dist', 'init_distributed']


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            torch.distributed.barrier()


def init_distributed(device: Optional[str] = None) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: init nccl (CUDA) or gloo (CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank, world, local, dev)
