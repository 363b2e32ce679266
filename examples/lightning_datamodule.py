"""PyTorch Lightning with tinyvit's DistillDataModule: no hooks to write.

    python examples/lightning_datamodule.py               # 1 CPU process
    python examples/lightning_datamodule.py --ddp         # strategy="ddp", 2 CPU processes

The DataModule builds the DistillLoader in setup() (after the process group exists) and
refuses a max_epochs longer than the store there; Lightning's sampler.set_epoch drives the
store epoch.
"""
import os
import sys
import tempfile

import lightning.pytorch as pl
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tiny  # noqa: E402

import tinyvit  # noqa: E402
from tinyvit.integrations.lightning import DistillDataModule  # noqa: E402


class Student(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = _tiny.student()
        self.criterion = tinyvit.SparseSoftCrossEntropy()

    def training_step(self, batch, _):
        x, targets = batch
        loss = self.criterion(self.net(x), targets)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main():
    torch.set_num_threads(1)
    ddp = "--ddp" in sys.argv
    ds = _tiny.dataset()
    path = os.path.join(tempfile.gettempdir(), "tinyvit_example_store")
    if "LOCAL_RANK" not in os.environ:  # Lightning's ddp children re-run this script
        _tiny.store(path, ds)
    dm = DistillDataModule(ds, path, _tiny.CFG, batch_size=32)
    trainer = pl.Trainer(accelerator="cpu", devices=2 if ddp else 1,
                         strategy="ddp" if ddp else "auto", max_epochs=3, logger=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(Student(), datamodule=dm)
    print(f"done: trained {trainer.current_epoch} epochs; store epoch of the last pass: "
          f"{dm.loader.data_epoch}")


if __name__ == "__main__":
    main()
