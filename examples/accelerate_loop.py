"""Hugging Face Accelerate over DistillLoader.

    accelerate launch --cpu --num_processes 2 examples/accelerate_loop.py
    python examples/accelerate_loop.py

``accelerator.prepare`` passes a DistillLoader through unchanged (it only wraps DataLoaders),
and it needs no wrapping: it shards by the process group Accelerate starts, even when built
before ``Accelerator()``. Accelerate calls no set_epoch, so the loop does (a loop that does
not still gets epochs 0, 1, 2 in order: each pass advances; resuming needs the call).
To resume mid-epoch use ``loader.skip_first_batches(n)``, not ``accelerate.skip_first_batches``
(that rebuilds a plain DataLoader over the raw dataset).
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tiny  # noqa: E402

import tinyvit  # noqa: E402


def main(epochs=3):
    from accelerate import Accelerator

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    ds = _tiny.dataset()
    path = os.path.join(tempfile.gettempdir(), "tinyvit_example_store")
    if accelerator.is_main_process:
        _tiny.store(path, ds)
    accelerator.wait_for_everyone()

    loader = tinyvit.DistillLoader(ds, path, _tiny.CFG, batch_size=32, epochs=epochs,
                                   device=accelerator.device)
    criterion = tinyvit.SparseSoftCrossEntropy()
    model = _tiny.student()
    model, opt = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    loader = accelerator.prepare(loader)  # harmless: returned unchanged
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, targets in loader:
            loss = criterion(model(x), targets)
            opt.zero_grad()
            accelerator.backward(loss)
            opt.step()
        print(f"process {accelerator.process_index} epoch {epoch} (store epoch "
              f"{loader.data_epoch}): {len(loader)} steps, last loss {loss.item():.4f}", flush=True)


if __name__ == "__main__":
    main()
