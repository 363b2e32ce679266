"""DistillLoader as trainers drive it: one epoch through every set_epoch route, no silent
replay on a second pass, epoch-count checks, the DataLoader-shaped surface, output dtype /
memory format, and the matching eval transform. Store reads are recorded (RecordingStore)."""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integrations"))
import helpers  # noqa: E402

import tinyvit  # noqa: E402
from tinyvit.errors import EpochMissingError, RecordMissingError  # noqa: E402

N = 24


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ds():
    return helpers.synthetic(N)


@pytest.fixture(scope="module")
def store_path(ds, tmp_path_factory):
    p = tmp_path_factory.mktemp("loader") / "store"
    helpers.make_store(p, ds, epochs=3)
    return p


@pytest.fixture(scope="module")
def nomix_path(ds, tmp_path_factory):
    p = tmp_path_factory.mktemp("loader") / "nomix"
    helpers.make_store(p, ds, epochs=2, cfg=helpers.CFG_NOMIX)
    return p


def loader(ds, path, cfg=helpers.CFG, **kw):
    return tinyvit.DistillLoader(ds, helpers.open_recording(path), cfg, batch_size=8, **kw)


def one_pass(dl):
    xs, ts = [], []
    for x, t in dl:
        xs.append(x)
        ts.append(t)
    return torch.cat(xs), torch.cat([t.indices for t in ts]), torch.cat([t.probs for t in ts])


@pytest.mark.parametrize("route", ["loader", "sampler", "batch_sampler", "batch_sampler.sampler"])
def test_every_set_epoch_route_drives_the_store_epoch(ds, store_path, route):
    dl = loader(ds, store_path)
    target = {"loader": dl, "sampler": dl.sampler, "batch_sampler": dl.batch_sampler,
              "batch_sampler.sampler": dl.batch_sampler.sampler}[route]
    target.set_epoch(2)
    assert dl.epoch == dl.data_epoch == 2
    x, ti, tp = one_pass(dl)
    assert helpers.epochs_read(dl.store.reads) == [2]
    order = dl.sampler.indices()
    _, si, sp = dl.store.read(2, order)
    assert torch.equal(ti, si) and torch.equal(tp, sp)
    # and the images are epoch 2's: a fresh loader at epoch=2 gives the same bits
    x2, _, _ = one_pass(loader(ds, store_path, epoch=2))
    assert torch.equal(x, x2)


def test_a_pass_without_set_epoch_advances_never_replays(ds, store_path):
    dl = loader(ds, store_path)
    for _ in range(3):
        one_pass(dl)
    assert helpers.epochs_read(dl.store.reads) == [0, 1, 2]
    with pytest.raises(EpochMissingError, match="epoch 3 not in the store"):
        next(iter(dl))


def test_set_epoch_each_epoch_and_explicit_replay(ds, store_path):
    dl = loader(ds, store_path)
    for e in (0, 1, 1, 2):  # set_epoch(same) replays on purpose
        dl.set_epoch(e)
        one_pass(dl)
    assert [e for e, _ in dl.store.reads][::3] == [0, 1, 1, 2]


def test_iterator_created_before_set_epoch_uses_the_new_epoch(ds, store_path):
    # Lightning creates the iterator, then calls sampler.set_epoch, then next()
    dl = loader(ds, store_path)
    it = iter(dl)
    dl.sampler.set_epoch(1)
    next(it)
    assert dl.store.reads[0][0] == 1


def test_auto_advance_off_raises_instead(ds, store_path):
    dl = loader(ds, store_path, auto_advance=False)
    one_pass(dl)
    with pytest.raises(tinyvit.errors.EpochError, match="second pass over epoch 0"):
        next(iter(dl))
    dl.set_epoch(1)
    one_pass(dl)
    assert helpers.epochs_read(dl.store.reads) == [0, 1]


def test_foreign_sampler_epoch_is_followed(ds, nomix_path):
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(N), num_replicas=1, rank=0, shuffle=True, seed=1)
    dl = loader(ds, nomix_path, cfg=helpers.CFG_NOMIX, sampler=sampler)
    sampler.set_epoch(1)  # what Lightning / timm call; the loader never saw it
    one_pass(dl)
    assert helpers.epochs_read(dl.store.reads) == [1]
    assert sorted(i for _, idx in dl.store.reads for i in idx) == list(range(N))


def test_too_many_epochs_refused_before_the_first_step(ds, store_path):
    with pytest.raises(EpochMissingError, match="asks for 4 epochs but the store holds 3"):
        loader(ds, store_path, epochs=4)
    dl = loader(ds, store_path, epochs=2)
    with pytest.raises(EpochMissingError, match="epochs=2"):
        dl.set_epoch(2)
    with pytest.raises(ValueError):
        loader(ds, store_path, epochs=0)


def test_incomplete_epoch_refused_at_construction(ds, tmp_path):
    p = tmp_path / "partial"
    helpers.make_store(p, ds, epochs=3, fill=[0, 1])
    loader(ds, p, epochs=2)
    with pytest.raises(RecordMissingError, match="epoch 2 is incomplete"):
        loader(ds, p, epochs=3)


def test_reuse_epochs_replays_stored_epoch_modulo(ds, store_path):
    dl = loader(ds, store_path, epochs=5, reuse_epochs=True)
    got = {}
    for e in range(5):
        dl.set_epoch(e)
        assert dl.data_epoch == e % 3
        got[e] = one_pass(dl)
    assert helpers.epochs_read(dl.store.reads) == [0, 1, 2, 0, 1]
    for e in (3, 4):  # bit-identical to the stored epoch it reuses (pairs stay valid)
        assert all(torch.equal(a, b) for a, b in zip(got[e], got[e - 3]))


def test_dataloader_shaped_surface(ds, store_path):
    dl = loader(ds, store_path, drop_last=True)
    assert dl.dataset is ds and dl.batch_size == 8 and dl.drop_last is True
    assert dl.batch_sampler.sampler is dl.sampler and dl.batch_sampler.batch_size == 8
    assert len(dl) == len(dl.batch_sampler) == N // 8
    order = dl.sampler.indices()
    assert [list(b) for b in dl.batch_sampler] == [list(order[i:i + 8]) for i in range(0, N, 8)]
    assert dl.input_size == (3, 16, 16)
    assert dl.mean == (0.5,) * 3 and dl.std == (0.25,) * 3 and dl.interpolation == "bicubic"


def test_mixup_enabled_under_stored_targets(ds, store_path, nomix_path):
    dl = loader(ds, store_path)
    assert dl.mixup_enabled is True
    dl.mixup_enabled = True  # same value: fine
    with pytest.raises(ValueError, match="teacher saw the mixed image"):
        dl.mixup_enabled = False  # timm --mixup-off-epoch
    plain = loader(ds, nomix_path, cfg=helpers.CFG_NOMIX)
    assert plain.mixup_enabled is False
    with pytest.raises(ValueError):
        plain.mixup_enabled = True


def test_replay_loader_mixup_off_stops_mixing_only(ds):
    on = tinyvit.ReplayLoader(ds, helpers.CFG, base_seed=3, batch_size=8)
    off = tinyvit.ReplayLoader(ds, helpers.CFG, base_seed=3, batch_size=8)
    off.mixup_enabled = False
    plain = tinyvit.ReplayLoader(ds, helpers.CFG, base_seed=3, batch_size=8)
    (xa, _, lam_a, _), (xb, _, lam_b, pb) = next(iter(on)), next(iter(off))
    assert torch.all(lam_b == 1) and torch.equal(pb, torch.arange(8)) and (lam_a < 1).any()
    # unmixed = same pixels/erasing as the mixed pass where nothing was mixed
    unmixed = lam_a == 1
    assert torch.equal(xa[unmixed], xb[unmixed]) and not torch.equal(xa, xb)
    assert plain.mixup_enabled


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_output_is_the_cast_of_the_float32_pipeline(ds, store_path, dtype):
    ref, ti, tp = one_pass(loader(ds, store_path))
    x, ti2, tp2 = one_pass(loader(ds, store_path, dtype=dtype))
    assert x.dtype == dtype and torch.equal(x, ref.to(dtype))
    assert torch.equal(ti, ti2) and torch.equal(tp, tp2)


def test_channels_last_output(ds, store_path):
    ref, _, _ = one_pass(loader(ds, store_path))
    dl = loader(ds, store_path, memory_format=torch.channels_last)
    x, _ = next(iter(dl))
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, ref[:8])
    with pytest.raises(TypeError):
        loader(ds, store_path, dtype=torch.int8)


def test_skip_first_batches(ds, store_path):
    full = list(loader(ds, store_path, epoch=1))
    dl = loader(ds, store_path, epoch=1)
    rest = list(dl.skip_first_batches(2))
    assert len(rest) == len(full) - 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1].probs, b[1].probs)
               for a, b in zip(rest, full[2:]))
    assert helpers.epochs_read(dl.store.reads) == [1] and len(dl.store.reads) == 1
    with pytest.raises(ValueError):
        dl.skip_first_batches(-1)


def test_eval_config_and_transform_match_the_store(ds, store_path):
    from PIL import Image

    cfg = tinyvit.eval_config(store_path)
    assert cfg == {"input_size": (3, 16, 16), "interpolation": "bicubic", "mean": (0.5,) * 3,
                   "std": (0.25,) * 3, "crop_pct": 0.875, "crop_mode": "center"}
    assert tinyvit.eval_config(loader(ds, store_path)) == cfg
    tf = tinyvit.eval_transform(store_path)
    img = Image.fromarray(np.full((40, 30, 3), 191, np.uint8))
    x = tf(img)
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x, torch.full((3, 16, 16), (191 / 255 - 0.5) / 0.25))
    with pytest.raises(TypeError):
        tinyvit.eval_config(42)


def test_sampler_shared_by_two_loaders_is_refused(ds, store_path):
    dl = loader(ds, store_path)
    with pytest.raises(ValueError, match="another loader"):
        loader(ds, store_path, sampler=dl.sampler)
