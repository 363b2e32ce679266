"""Device ops (normalize, RandomErasing, Mixup/CutMix), pairing and PairedSampler, against
independent references."""
import math

import numpy as np
import pytest
import torch

import tinyvit
import tinyvit.augment.rng
import tinyvit.augment.plan
from tinyvit import AugConfig, DeviceAugment
from tinyvit.data.sampler import PairedSampler
from tinyvit.augment.device import batch_partners, mix, mix_targets, normalize, random_erase

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _params(n, **fields):
    p = dict(erase_boxes=np.zeros((n, 0, 4), np.int32), erase_seeds=np.zeros((n, 0), np.int64),
             erase_count=np.zeros(n, np.int32), mix=np.zeros(n, np.int8),
             lam=np.ones(n, np.float32), cut_box=np.zeros((n, 4), np.int32))
    p.update(fields)
    return p


# ---------------------------------------------------------------- normalize
def test_normalize_equals_torchvision_to_tensor_normalize():
    tv = pytest.importorskip("torchvision.transforms")
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (4, 20, 30, 3), dtype=torch.uint8, generator=g)
    ref = torch.stack([tv.Normalize(MEAN, STD)(tv.ToTensor()(im.numpy())) for im in imgs])
    out = normalize(imgs, MEAN, STD)
    assert out.shape == (4, 3, 20, 30) and out.is_contiguous()
    assert torch.equal(out, ref)
    assert torch.equal(normalize(imgs.permute(0, 3, 1, 2).contiguous(), MEAN, STD), ref)
    assert torch.equal(normalize(imgs.permute(0, 3, 1, 2), MEAN, STD, layout="nchw"), ref)
    with pytest.raises(TypeError, match="uint8"):
        normalize(imgs.float(), MEAN, STD)
    with pytest.raises(ValueError, match="layout"):
        normalize(imgs, MEAN, STD, layout="hwc")


# ---------------------------------------------------------------- random erasing
def _pcg_normals(seed, n):
    """Independent reimplementation: polar method on tinyvit.augment.rng.PCG32 with Python's math.log."""
    g = tinyvit.augment.rng.PCG32(seed, tinyvit._C.PCG32_STREAMS["erase_noise"])
    out = []
    while len(out) < n:
        u, v = 2 * g.random() - 1, 2 * g.random() - 1
        s = u * u + v * v
        if 0 < s < 1:
            f = math.sqrt(-2 * math.log(s) / s)
            out += [u * f, v * f]
    return np.array(out[:n], np.float32)


def test_erase_noise_is_pcg32_polar_normals():
    noise = tinyvit._C.erase_noise(12345, 1001)
    np.testing.assert_allclose(noise, _pcg_normals(12345, 1001), rtol=1e-6, atol=1e-6)
    big = tinyvit._C.erase_noise(7, 200000)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    cat = tinyvit._C.erase_noise_batch(np.array([5, 6]), np.array([10, 3]))
    assert np.array_equal(cat, np.concatenate([tinyvit._C.erase_noise(5, 10),
                                               tinyvit._C.erase_noise(6, 3)]))


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_random_erase_replaces_only_the_boxes(mode):
    n, c, h, w = 3, 3, 16, 20
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    boxes = np.zeros((n, 2, 4), np.int32)
    boxes[0, 0] = (2, 3, 5, 4)
    boxes[0, 1] = (10, 0, 10, 16)
    boxes[2, 0] = (0, 0, 1, 1)
    seeds = np.array([[11, 12], [0, 0], [13, 0]], np.int64)
    params = _params(n, erase_boxes=boxes, erase_seeds=seeds,
                     erase_count=np.array([2, 0, 1], np.int32))
    random_erase(x, params, mode)
    expect = before.clone()
    for i, k in [(0, 0), (0, 1), (2, 0)]:
        bx, by, bw, bh = boxes[i, k]
        if mode == "const":
            val = torch.zeros(c, 1, 1)
        elif mode == "rand":
            val = torch.from_numpy(_pcg_normals(int(seeds[i, k]), c)).view(c, 1, 1)
        else:
            val = torch.from_numpy(_pcg_normals(int(seeds[i, k]), c * bh * bw)).view(c, bh, bw)
        expect[i, :, by:by + bh, bx:bx + bw] = val
    torch.testing.assert_close(x, expect, rtol=1e-6, atol=1e-6)
    assert torch.equal(x[1], before[1])
    bad = _params(1, erase_boxes=np.array([[[15, 0, 10, 2]]], np.int32),
                  erase_seeds=np.zeros((1, 1), np.int64), erase_count=np.ones(1, np.int32))
    with pytest.raises(ValueError, match="sample 0"):
        random_erase(torch.zeros(1, 3, 16, 20), bad, mode)


# ---------------------------------------------------------------- mixing
def test_mixup_and_cutmix_against_manual_formulas():
    n, c, h, w = 4, 3, 10, 12
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(2))
    orig = x.clone()
    partner = torch.tensor([1, 0, 3, 2])
    params = _params(n, mix=np.array([1, 2, 0, 2], np.int8),
                     lam=np.array([0.3, 0.75, 1.0, 0.9], np.float32),
                     cut_box=np.array([[0, 0, 0, 0], [2, 1, 7, 5], [0, 0, 0, 0], [0, 0, 12, 1]],
                                      np.int32))
    out, lam = mix(x, params, partner)
    assert out is x
    expect0 = orig[0] * torch.tensor(0.3) + orig[1] * (1 - torch.tensor(0.3))
    assert torch.equal(out[0], expect0)  # bit-exact: same rounded ops, partner's PRE-mix image
    e1 = orig[1].clone()
    e1[:, 1:5, 2:7] = orig[0][:, 1:5, 2:7]
    assert torch.equal(out[1], e1)
    assert torch.equal(out[2], orig[2])
    e3 = orig[3].clone()
    e3[:, 0:1, :] = orig[2][:, 0:1, :]
    assert torch.equal(out[3], e3)
    assert torch.equal(lam, torch.tensor([0.3, 0.75, 1.0, 0.9]))


def test_mix_targets_matches_timm_mixup_target():
    timm_mix = pytest.importorskip("timm.data.mixup")
    y = torch.tensor([3, 1, 4, 0, 2, 2])
    lam = torch.full((6,), 0.7)
    partner = torch.arange(5, -1, -1)  # timm mixes with the flipped batch
    ref = timm_mix.mixup_target(y, 5, lam=0.7, smoothing=0.1)
    torch.testing.assert_close(mix_targets(y, lam, partner, num_classes=5, smoothing=0.1), ref)
    soft = torch.rand(6, 5)
    lam = torch.rand(6)
    exp = soft * lam[:, None] + soft[partner] * (1 - lam[:, None])
    torch.testing.assert_close(mix_targets(soft, lam, partner), exp)


def test_device_augment_end_to_end_with_sampler():
    n_data, bs, base = 50, 8, 17
    cfg = AugConfig(re_prob=0.5, re_count=2, mixup_alpha=0.8, cutmix_alpha=1.0)
    sampler = PairedSampler(n_data, base, batch_size=bs)
    sampler.set_epoch(3)
    idx = list(sampler)[:bs]
    seeds = tinyvit.augment.seeds.sample_seeds(base, 3, idx)
    params = tinyvit.augment.plan.plan_device_params(seeds, [(320, 240)] * bs, cfg)
    partner = batch_partners(idx, 3, n_data, base)
    imgs = torch.randint(0, 256, (bs, 224, 224, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))
    x, lam = DeviceAugment(cfg)(imgs, params, partner)
    # reference: same steps spelled out per sample
    ref = normalize(imgs, cfg.mean, cfg.std)
    random_erase(ref, params, cfg.re_mode)
    pre = ref.clone()
    for i in range(bs):
        j = int(partner[i])
        plan = tinyvit.augment.plan.make_plan(int(seeds[i]), (320, 240), cfg)
        assert plan["lam"] == pytest.approx(float(lam[i]))
        if plan["mix"] == "mixup":
            exp = pre[i] * torch.tensor(plan["lam"]) + pre[j] * (1 - torch.tensor(plan["lam"]))
        else:
            exp = pre[i].clone()
            x0, y0, x1, y1 = plan["cut_box"]
            exp[:, y0:y1, x0:x1] = pre[j][:, y0:y1, x0:x1]
        assert torch.equal(x[i], exp), i
    x2, lam2 = DeviceAugment(cfg)(imgs, params, partner)
    assert torch.equal(x, x2) and torch.equal(lam, lam2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_ops_bit_identical_on_cuda():
    cfg = AugConfig(re_prob=1.0, re_count=3, re_mode="pixel")
    idx = list(range(16))
    seeds = tinyvit.augment.seeds.sample_seeds(1, 0, idx)
    params = tinyvit.augment.plan.plan_device_params(seeds, [(500, 375)] * 16, cfg)
    partner = torch.tensor([i ^ 1 for i in idx])
    imgs = torch.randint(0, 256, (16, 224, 224, 3), dtype=torch.uint8)
    cpu = DeviceAugment(cfg)(imgs, params, partner)
    gpu = DeviceAugment(cfg)(imgs.cuda(), params, partner)
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())


# ---------------------------------------------------------------- pairing and sampler
@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_pairing_is_an_involution_over_a_permutation(n):
    perm = tinyvit.augment.seeds.pair_permutation(4, n, 99)
    assert sorted(perm.tolist()) == list(range(n))
    partners = tinyvit.augment.seeds.mix_partners(4, np.arange(n), n, 99)
    assert np.array_equal(partners[partners], np.arange(n))
    assert (partners == np.arange(n)).sum() == n % 2  # only an odd N's last sample self-pairs
    for k in range(0, n - 1, 2):  # positions (2k, 2k+1) are partners
        assert partners[perm[k]] == perm[k + 1]
    assert tinyvit.augment.seeds.mix_partner(4, int(perm[0]), n, 99) == partners[perm[0]]


def test_pairing_looks_random_and_changes_with_epoch_and_seed():
    n = 20000
    p0 = tinyvit.augment.seeds.mix_partners(0, np.arange(n), n, 5)
    dist = np.abs(p0 - np.arange(n))
    # uniformly random partners: P(|i - j| < n/10) = 2/10 - 1/100
    assert abs(np.mean(dist < n // 10) - 0.19) < 0.02
    assert np.mean(p0 == tinyvit.augment.seeds.mix_partners(1, np.arange(n), n, 5)) < 0.01
    assert np.mean(p0 == tinyvit.augment.seeds.mix_partners(0, np.arange(n), n, 6)) < 0.01
    with pytest.raises(IndexError, match="indices"):
        tinyvit.augment.seeds.mix_partners(0, [n], n, 5)


@pytest.mark.parametrize("n", [37, 64, 101])
def test_sampler_partners_are_world_size_independent(n):
    base, epoch, bs = 11, 2, 6
    for world in (1, 2, 3, 8):
        seen = []
        for rank in range(world):
            s = PairedSampler(n, base, batch_size=bs, num_replicas=world, rank=rank)
            s.set_epoch(epoch)
            idx = list(s)
            assert len(idx) == len(s) and len(idx) % 2 == 0
            assert len(s) == 2 * math.ceil(math.ceil(n / 2) / world)
            # consecutive pairs are partners, so every even batch holds whole pairs
            for a, b in zip(idx[0::2], idx[1::2]):
                assert tinyvit.augment.seeds.mix_partner(epoch, a, n, base) == b
                assert tinyvit.augment.seeds.mix_partner(epoch, b, n, base) == a
            for start in range(0, len(idx), bs):
                batch = idx[start:start + bs]
                pos = batch_partners(batch, epoch, n, base)
                assert [batch[p] for p in pos.tolist()] == [
                    tinyvit.augment.seeds.mix_partner(epoch, i, n, base) for i in batch]
            seen += idx
        assert set(seen) == set(range(n))  # every sample covered (padding may repeat some)
        assert len(seen) <= 2 * (math.ceil(n / 2) + world)


def test_sampler_epoch_drop_last_and_errors():
    s = PairedSampler(100, 3, batch_size=10)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    assert sorted(a) == sorted(b) == list(range(100)) and a != b
    d = PairedSampler(101, 3, num_replicas=4, rank=3, drop_last=True)
    assert len(d) == 2 * (51 // 4) == len(list(d))
    with pytest.raises(ValueError, match="batch_size"):
        PairedSampler(100, 3, batch_size=7)
    with pytest.raises(ValueError, match="rank"):
        PairedSampler(100, 3, num_replicas=2, rank=2)
    p = tinyvit.augment.seeds.mix_partner(0, 0, 1000, 3)
    batch = [0] + [k for k in (1, 2, 3) if k != p][:2]
    with pytest.raises(ValueError, match="sample 0 "):
        batch_partners(batch, 0, 1000, 3)


def test_sampler_in_dataloader_keeps_pairs_in_batches():
    ds = torch.utils.data.TensorDataset(torch.arange(60))
    s = PairedSampler(60, 8, batch_size=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=s)
    for (batch,) in loader:
        ids = set(batch.tolist())
        assert all(tinyvit.augment.seeds.mix_partner(0, i, 60, 8) in ids for i in ids)
