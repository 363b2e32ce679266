"""What timm's train.py relies on, against timm itself: its epoch hook's attribute access
(``loader.sampler.set_epoch`` / ``batch_sampler`` / ``mixup_enabled``), its MultiEpochs
repeat sampler's ``sampler.epoch`` protocol, ``ClassificationTask`` with our criterion, a
bf16 model fed the loader's bf16 output, and ``create_transform`` from ``eval_config``."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402

import tinyvit  # noqa: E402

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def ds():
    return helpers.synthetic(16)


@pytest.fixture(scope="module")
def store_path(ds, tmp_path_factory):
    p = tmp_path_factory.mktemp("timm") / "store"
    helpers.make_store(p, ds, epochs=3)
    return p


def timm_style_epoch_hook(loader, dataset, epoch, distributed):
    # the attribute access of timm's train.py epoch hook (names only; see docs/trainers.md)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    elif distributed and hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader, "batch_sampler") and hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)


def test_timm_epoch_hook_and_patch_drive_the_store_epoch(ds, store_path):
    store = helpers.open_recording(store_path)
    loader = tinyvit.DistillLoader(ds, store, helpers.CFG, batch_size=4, epochs=3)
    for epoch in range(1, 3):  # a resumed run (start_epoch=1): the hook must move the store
        timm_style_epoch_hook(loader, ds, epoch, distributed=False)
        for _ in loader:
            pass
    assert helpers.epochs_read(store.reads) == [1, 2]


def test_timm_repeat_sampler_protocol(ds, store_path):
    from timm.data.loader import _RepeatSampler

    loader = tinyvit.DistillLoader(ds, store_path, helpers.CFG, batch_size=4)
    rep = iter(_RepeatSampler(loader.batch_sampler))  # reads batch_sampler.sampler.epoch
    first = [next(rep) for _ in range(len(loader))]
    second = [next(rep) for _ in range(len(loader))]
    assert loader.epoch == 1 and loader.sampler.epoch == 1  # advanced through set_epoch
    assert first != second


def test_mixup_off_epoch_refused_under_stored_targets(ds, store_path):
    loader = tinyvit.DistillLoader(ds, store_path, helpers.CFG, batch_size=4)
    with pytest.raises(ValueError, match="teacher saw the mixed image"):
        if loader.mixup_enabled:  # timm: if args.prefetcher and loader_train.mixup_enabled
            loader.mixup_enabled = False


def test_classification_task_with_bf16_model_and_bf16_loader(ds, store_path):
    from timm.task import ClassificationTask

    model = timm.create_model("test_vit", num_classes=10, img_size=16, patch_size=4).to(torch.bfloat16)
    loader = tinyvit.DistillLoader(ds, store_path, helpers.CFG, batch_size=4, dtype=torch.bfloat16)
    task = ClassificationTask(model, criterion=tinyvit.SparseSoftCrossEntropy(), verbose=False)
    x, targets = next(iter(loader))
    assert x.dtype == torch.bfloat16
    out = task(x, targets)
    out["loss"].backward()
    torch.testing.assert_close(out["loss"], tinyvit.sparse_soft_cross_entropy(out["output"], *targets))


def test_timm_create_transform_from_eval_config(store_path):
    from timm.data import resolve_data_config

    cfg = tinyvit.eval_config(store_path)
    # timm accepts it as a data config (the keys train.py's --input-size/--mean/--std set)
    resolved = resolve_data_config(cfg)
    assert tuple(resolved["input_size"]) == cfg["input_size"]
    assert tuple(resolved["mean"]) == cfg["mean"] and tuple(resolved["std"]) == cfg["std"]
    assert resolved["interpolation"] == cfg["interpolation"] and resolved["crop_pct"] == cfg["crop_pct"]
