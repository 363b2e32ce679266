"""Lightning worker (strategy="ddp", 2 CPU ranks, started by torchrun so the test controls
the processes): fit 1 hands a DistillLoader built BEFORE the process group exists straight
to ``trainer.fit``; fit 2 uses ``DistillDataModule`` (loader built in setup). Every store
read is logged to OUT/{direct,datamodule}.RANK.jsonl.

    torchrun --nproc_per_node 2 lightning_worker.py STORE OUT
"""
import os
import sys

import lightning.pytorch as pl
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402

import tinyvit  # noqa: E402
from tinyvit.integrations.lightning import DistillDataModule  # noqa: E402


class Student(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3 * 16 * 16, 10)
        self.crit = tinyvit.SparseSoftCrossEntropy()

    def training_step(self, batch, _):
        x, targets = batch
        return self.crit(self.net(x.flatten(1)), targets)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer():
    return pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=3, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)


def main():
    helpers.env_threads()
    store_path, out = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    ds = helpers.synthetic(32)
    assert not torch.distributed.is_initialized()
    direct = tinyvit.DistillLoader(
        ds, helpers.open_recording(store_path, os.path.join(out, f"direct.{rank}.jsonl")),
        helpers.CFG, batch_size=4)
    trainer().fit(Student(), train_dataloaders=direct)
    dm = DistillDataModule(
        ds, helpers.open_recording(store_path, os.path.join(out, f"datamodule.{rank}.jsonl")),
        helpers.CFG, batch_size=4)
    trainer().fit(Student(), datamodule=dm)


if __name__ == "__main__":
    main()
