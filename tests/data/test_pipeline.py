"""The one replay pipeline: ``tinyvit show``, the student loaders, the teacher pass and the
attestation's uint8 stage give the same bytes for the same (epoch, indices), and the
traversal order (PairedSampler) holds no reference to a loader while every set_epoch route
still moves the loader's and the store's epoch."""
import gc
import hashlib
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integrations"))
import helpers  # noqa: E402

import tinyvit  # noqa: E402
from tinyvit.data.loader import DistillLoader, ReplayLoader, TeacherBatches, teacher_order  # noqa: E402
from tinyvit.data.pipeline import ReplayPipeline, replay_pixels  # noqa: E402
from tinyvit.augment.seeds import mix_partners  # noqa: E402
from tinyvit.data.sampler import PairedSampler  # noqa: E402
from tinyvit.errors import EpochMissingError  # noqa: E402
from tinyvit.jobs.show import replayed_samples  # noqa: E402

N = 24
# RandomErasing on almost every sample (up to 3 boxes), Mixup and CutMix both on
CFG = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, re_prob=0.9, re_count=3,
                        mixup_alpha=0.8, cutmix_alpha=1.0)
BASE_SEED = 7

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ds():
    return helpers.synthetic(N)


@pytest.fixture(scope="module")
def store(ds, tmp_path_factory):
    p = tmp_path_factory.mktemp("pipeline") / "store"
    return helpers.make_store(p, ds, epochs=3, cfg=CFG, base_seed=BASE_SEED)


def _loader_rows(dl):
    """{dataset index: float32 [3, H, W]} of one pass (each index once per pass here)."""
    rows = {}
    order = iter(dl.sampler.indices().tolist())
    for x, _ in dl:
        for k in range(x.shape[0]):
            rows.setdefault(next(order), x[k])
    return rows


def _denormalize(x, cfg):
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    return ((x * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("epoch", [0, 2])
def test_show_pixels_are_the_distill_loader_pixels(ds, store, epoch):
    """Byte-identical, with Mixup/CutMix and RandomErasing on, for a request that includes
    samples whose partner was NOT requested (show adds the partner to its batch, the loader
    has it elsewhere in its own batch order)."""
    dl = DistillLoader(ds, store, CFG, batch_size=8, epoch=epoch)
    rows = _loader_rows(dl)
    assert len(rows) == N
    partners = mix_partners(epoch, np.arange(N), N, BASE_SEED)
    # requested: a sample and its partner (both asked), and two samples whose partners are not
    a = 0
    lone = [i for i in range(1, N) if i != partners[a] and partners[i] not in (a, partners[a], i)]
    want = [a, int(partners[a])] + lone[:1]
    want.append(next(i for i in lone[1:] if partners[i] not in want and i != partners[want[2]]))
    assert not set(int(partners[i]) for i in want[2:]) & set(want)  # partners not requested
    samples = replayed_samples(store, ds, CFG, epoch, want)
    assert [s["index"] for s in samples] == want
    for s in samples:
        got, ref = s["normalized"], rows[s["index"]]
        assert got.dtype == ref.dtype == torch.float32
        assert got.numpy().tobytes() == ref.numpy().tobytes(), s["index"]
        np.testing.assert_array_equal(s["image"], _denormalize(ref, CFG))
        assert s["partner"] == int(partners[s["index"]])  # mixed, and named after its partner
        assert s["lam"] < 1.0
    # not trivial: the requested samples were erased and both mix kinds occur in the epoch
    params = ReplayPipeline(ds, CFG, BASE_SEED, store=store).cpu_batch(epoch, np.arange(N))["params"]
    assert (params["erase_count"].numpy()[want] > 0).any()
    assert set(params["mix"].numpy().tolist()) == {1, 2}


def test_show_makes_one_plan_per_sample(ds, store, monkeypatch):
    """show no longer plans a second time (plan_device_params) nor reads source sizes."""
    def refuse(*a, **k):
        raise AssertionError("second plan in show")

    import tinyvit.augment.plan as plan
    import tinyvit.data.sources as sources

    monkeypatch.setattr(plan, "plan_device_params", refuse)
    monkeypatch.setattr(sources, "source_sizes", refuse)
    assert len(replayed_samples(store, ds, CFG, 1, [3, 5])) == 2


def test_teacher_batches_and_replay_loader_give_the_same_images(ds, store):
    """The teacher pass (sample_seed seeds, its own batch order) and ReplayLoader (no store)
    produce the DistillLoader's images: one pipeline, whoever drives it."""
    epoch = 1
    rows = _loader_rows(DistillLoader(ds, store, CFG, batch_size=8, epoch=epoch))
    order, mask = teacher_order(np.arange(N), epoch, N, BASE_SEED, True)
    tb = TeacherBatches(ds, CFG, order, mask, epoch=epoch, base_seed=BASE_SEED, batch_size=6)
    seen = 0
    for x, idx, _, _, _ in tb:
        for k, i in enumerate(idx.tolist()):
            assert torch.equal(x[k], rows[i]), i
            seen += 1
    assert seen == N
    rl = ReplayLoader(ds, CFG, base_seed=BASE_SEED, batch_size=8, epoch=epoch)
    order = iter(rl.sampler.indices().tolist())
    for x, _, _, _ in rl:
        for k in range(x.shape[0]):
            assert torch.equal(x[k], rows[next(order)])


def test_replay_pixels_is_the_loaders_uint8_stage_and_the_attested_digest(ds, store):
    """The uint8 entry (for the attestation) gives the CPU stage's bytes and the digests the
    attestation records today."""
    from tinyvit.data.attest import replay_digests

    idx = np.array([0, 7, 23, 11])
    pipe = ReplayPipeline(ds, CFG, BASE_SEED, store=store)
    cpu = pipe.cpu_batch(2, idx)
    u8 = replay_pixels(ds, CFG, idx, cpu["seeds"].tolist())
    assert u8.dtype == torch.uint8 and torch.equal(u8, cpu["images"])
    assert torch.equal(pipe.pixels(idx, cpu["seeds"].tolist()), u8)
    assert [hashlib.sha256(u8[k].numpy().tobytes()).hexdigest() for k in range(len(idx))] == \
        replay_digests(ds, CFG, idx, cpu["seeds"].tolist())


def test_pipeline_and_its_epoch_batches_pickle(ds, store):
    import pickle

    pipe = ReplayPipeline(ds, CFG, BASE_SEED, store=store)
    twin = pickle.loads(pickle.dumps(pipe))
    a, b = pipe.cpu_batch(0, [4, 9]), twin.cpu_batch(0, [4, 9])
    assert all(torch.equal(a[k], b[k]) for k in ("images", "seeds", "topk_indices", "topk_probs"))


# ----------------------------------------------------------------- traversal, no back-pointer
def _reaches_a_loader(root, limit=200_000):
    """Whether a loader instance is reachable from ``root`` through instance references.
    Types, modules and a function's module globals are not followed: they are shared by
    everything (following ``__globals__`` walks the whole interpreter once many libraries are
    imported, as in a full test run); a function's closure cells and defaults are followed, so
    a back-pointer hidden in a callback (a lambda over the loader) is still found."""
    import types

    seen, todo = set(), [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (DistillLoader, ReplayLoader)):
            return True
        if isinstance(obj, types.FunctionType):
            todo.extend(c.cell_contents for c in obj.__closure__ or () if c.cell_contents is not None)
            todo.extend(obj.__defaults__ or ())
            todo.extend((obj.__kwdefaults__ or {}).values())
            continue
        todo.extend(gc.get_referents(obj))
    assert len(seen) < limit, "reference walk did not finish"
    return False


def test_sampler_holds_no_reference_to_its_loader(ds, store):
    for dl in (DistillLoader(ds, store, CFG, batch_size=8),
               ReplayLoader(ds, CFG, base_seed=BASE_SEED, batch_size=8)):
        assert isinstance(dl.sampler, PairedSampler)
        assert not hasattr(dl.sampler, "_owner")
        assert not _reaches_a_loader(dl.sampler)
        assert not _reaches_a_loader(dl.batch_sampler)
        # the walk finds a back-pointer when there is one (what `sampler._owner` was), also
        # one hidden in a callback's closure
        dl.sampler.back_pointer = dl
        assert _reaches_a_loader(dl.sampler)
        dl.sampler.back_pointer = lambda: dl.epoch
        assert _reaches_a_loader(dl.sampler)
        del dl.sampler.back_pointer


def test_paired_sampler_is_plumbing_of_data_sampler_only():
    import tinyvit.augment.seeds as seeds

    with pytest.warns(DeprecationWarning, match="tinyvit.data.sampler"):
        assert tinyvit.PairedSampler is PairedSampler
    assert not hasattr(seeds, "PairedSampler")  # augment does not import data: no alias


@pytest.mark.parametrize("route", ["sampler", "batch_sampler", "batch_sampler.sampler"])
def test_sampler_routes_move_the_store_epoch_with_reuse_and_refuse_at_once(ds, store, route):
    dl = DistillLoader(ds, helpers.open_recording(store.path), CFG, batch_size=8,
                       reuse_epochs=True)
    target = {"sampler": dl.sampler, "batch_sampler": dl.batch_sampler,
              "batch_sampler.sampler": dl.batch_sampler.sampler}[route]
    target.set_epoch(4)
    assert (dl.epoch, dl.data_epoch, dl.sampler.epoch) == (4, 1, 1)  # order of stored epoch 1
    next(iter(dl))
    assert dl.store.reads[0][0] == 1
    strict = DistillLoader(ds, store, CFG, batch_size=8, epochs=3)
    with pytest.raises(EpochMissingError, match="built for epochs=3"):
        {"sampler": strict.sampler, "batch_sampler": strict.batch_sampler,
         "batch_sampler.sampler": strict.batch_sampler.sampler}[route].set_epoch(3)
    assert strict.epoch == 0 and strict.sampler.epoch == 0  # refused before anything moved


def test_replay_loader_sampler_route(ds):
    dl = ReplayLoader(ds, CFG, base_seed=BASE_SEED, batch_size=8)
    dl.sampler.set_epoch(3)
    assert dl.epoch == dl.data_epoch == dl.sampler.epoch == 3
    got = [x for x, _, _, _ in dl]
    want = [x for x, _, _, _ in ReplayLoader(ds, CFG, base_seed=BASE_SEED, batch_size=8, epoch=3)]
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and len(got) == N // 8


def test_loaders_compose_and_do_not_inherit():
    assert not issubclass(DistillLoader, ReplayLoader) and not issubclass(ReplayLoader, DistillLoader)
    assert DistillLoader.__mro__ == (DistillLoader, object)
    assert ReplayLoader.__mro__ == (ReplayLoader, object)
