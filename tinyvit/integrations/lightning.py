"""A LightningDataModule serving a DistillLoader: ``trainer.fit(model, datamodule=...)``
needs no hooks from the user.

Why a DataModule rather than handing the loader to ``fit``: the loader is built in
``setup()``, after Lightning has started the process group, and the epoch count is checked
against the store there, before the first step. (Handing a DistillLoader straight to
``trainer.fit(train_dataloaders=loader)`` also works: world size is read when each pass
starts, and Lightning's ``sampler.set_epoch`` drives the store epoch.)

Lightning leaves a non-DataLoader iterable's sampler alone (no DistributedSampler is
swapped in); the loader's PairedSampler shards by the process group itself.
"""
from __future__ import annotations

from typing import Optional

try:
    import lightning.pytorch as pl
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("tinyvit.integrations.lightning needs the 'lightning' package "
                      "(pip install lightning)") from e

from ..augment.config import AugConfig
from ..data.loader import DistillLoader

__all__ = ["DistillDataModule"]


class DistillDataModule(pl.LightningDataModule):
    """``train_dataloader()`` is a DistillLoader over ``dataset`` and ``store``.

    ``loader_kwargs`` go to DistillLoader (batch_size, num_workers, dtype, reuse_epochs, ...).
    ``epochs`` defaults to the trainer's ``max_epochs``: a run longer than the store is
    refused in ``setup`` (EpochMissingError) unless ``reuse_epochs=True``. ``val_dataset``:
    an optional map-style dataset for ``val_dataloader`` (a plain DataLoader); build it with
    ``tinyvit.eval_transform(store)`` so validation matches training (``self.eval_config``).
    """

    def __init__(self, dataset, store, aug_config: AugConfig, *, epochs: Optional[int] = None,
                 val_dataset=None, val_batch_size: int = 256, **loader_kwargs):
        super().__init__()
        self.dataset, self.store, self.aug_config = dataset, store, aug_config
        self.epochs, self.val_dataset, self.val_batch_size = epochs, val_dataset, val_batch_size
        self.loader_kwargs = loader_kwargs
        self.loader: Optional[DistillLoader] = None

    def _epochs(self) -> Optional[int]:
        if self.epochs is not None:
            return self.epochs
        trainer = getattr(self, "trainer", None)
        max_epochs = getattr(trainer, "max_epochs", None)
        return max_epochs if isinstance(max_epochs, int) and max_epochs > 0 else None

    def setup(self, stage: Optional[str] = None) -> None:
        if stage in (None, "fit") and self.loader is None:
            self.loader = DistillLoader(self.dataset, self.store, self.aug_config,
                                        epochs=self._epochs(), **self.loader_kwargs)

    def train_dataloader(self) -> DistillLoader:
        if self.loader is None:
            self.setup("fit")
        return self.loader

    def val_dataloader(self):
        if self.val_dataset is None:
            return []
        from torch.utils.data import DataLoader

        return DataLoader(self.val_dataset, batch_size=self.val_batch_size)

    @property
    def eval_config(self) -> dict:
        """``aug_config.eval_config()``: what ``tinyvit.eval_transform(store)`` builds."""
        return self.aug_config.eval_config()
