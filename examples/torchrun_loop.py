"""A plain DDP loop over DistillLoader.

    torchrun --nproc_per_node 2 examples/torchrun_loop.py     # gloo on CPU
    python examples/torchrun_loop.py                          # one process

The tinyvit lines: the loader (built before or after init_process_group: it shards by the
process group when each epoch starts), ``loader.set_epoch(epoch)``, the loss.
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tiny  # noqa: E402

import tinyvit  # noqa: E402


def main(epochs=3):
    torch.set_num_threads(1)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        torch.distributed.init_process_group("gloo")
    ds = _tiny.dataset()
    path = os.path.join(tempfile.gettempdir(), "tinyvit_example_store")
    if not distributed or torch.distributed.get_rank() == 0:
        _tiny.store(path, ds)
    if distributed:
        torch.distributed.barrier()

    loader = tinyvit.DistillLoader(ds, path, _tiny.CFG, batch_size=32, epochs=epochs)
    criterion = tinyvit.SparseSoftCrossEntropy()
    model = _tiny.student()
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        loader.set_epoch(epoch)  # also what resuming at start_epoch needs
        for x, targets in loader:
            loss = criterion(model(x), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rank = torch.distributed.get_rank() if distributed else 0
        print(f"rank {rank} epoch {epoch} (store epoch {loader.data_epoch}): "
              f"{len(loader)} steps, last loss {loss.item():.4f}", flush=True)
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
