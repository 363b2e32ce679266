"""TinyViT family from contraction factors (architecture only; the contraction search is a job:
tests/jobs/test_contract.py)."""
import json

import pytest
import torch

timm = pytest.importorskip("timm")

from tinyvit.models import (PAPER_PARAMS_M, PRESETS, ContractionFactors,  # noqa: E402
                            analytic_params, count_params, stage_resolutions, throughput)

TINY = dict(embed_dims=(16, 32, 32, 64), depths=(1, 1, 2, 1), window_sizes=(4, 2, 1), head_dim=16)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # builds and times small models


# ---------------------------------------------------------------- presets vs timm
@pytest.mark.parametrize("name,timm_name", [("tinyvit_5m", "tiny_vit_5m_224"),
                                            ("tinyvit_11m", "tiny_vit_11m_224"),
                                            ("tinyvit_21m", "tiny_vit_21m_224")])
def test_preset_equals_timm(name, timm_name):
    ours = PRESETS[name].build(num_classes=1000, img_size=224)
    ref = timm.create_model(timm_name, pretrained=False, num_classes=1000)
    assert type(ours) is type(ref)
    assert count_params(ours) == sum(p.numel() for p in ref.parameters())
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert a == b
    # Paper Table 4 rounds to 5.4M / 11M / 21M.
    paper = PAPER_PARAMS_M[name]
    digits = 1 if paper < 10 else 0
    assert round(count_params(ours) / 1e6, digits) == paper


def test_preset_forward_matches_timm_weights():
    # Same weights -> same function: the architecture, not only the shapes, is timm's preset.
    ours = PRESETS["tinyvit_5m"].build(num_classes=1000).eval()
    ref = timm.create_model("tiny_vit_5m_224", pretrained=False, num_classes=1000).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y, r = ours(x), ref(x)
    assert y.shape == (2, 1000)
    torch.testing.assert_close(y, r)


def test_preset_values_from_paper():
    for f in PRESETS.values():
        assert f.depths == (2, 2, 6, 2) and f.window_sizes == (7, 14, 7)
        assert (f.mbconv_ratio, f.mlp_ratio, f.head_dim) == (4, 4, 32)
    assert PRESETS["tinyvit_5m"].embed_dims == (64, 128, 160, 320)
    assert PRESETS["tinyvit_11m"].embed_dims == (64, 128, 256, 448)
    assert PRESETS["tinyvit_21m"].embed_dims == (96, 192, 384, 576)


def test_small_model_forward_and_stage_resolutions():
    f = ContractionFactors(**TINY)
    m = f.build(num_classes=10, img_size=32, in_chans=1).eval()
    sizes = []
    hooks = [s.register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1])) for s in m.stages]
    with torch.inference_mode():
        y = m(torch.randn(3, 1, 32, 32))
    for h in hooks:
        h.remove()
    assert y.shape == (3, 10)
    assert tuple(sizes) == stage_resolutions(32) == (8, 4, 2, 1)
    # odd sizes: stride-2 convs with padding 1 give ceil(n/2)
    m = ContractionFactors(**{**TINY, "window_sizes": (1, 1, 1)}).build(num_classes=4, img_size=36)
    sizes.clear()
    hooks = [s.register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1])) for s in m.stages]
    with torch.inference_mode():
        m(torch.randn(1, 3, 36, 36))
    assert tuple(sizes) == stage_resolutions(36) == (9, 5, 3, 2)


def test_heads_and_timm_kwargs():
    f = ContractionFactors(**TINY)
    kw = f.timm_kwargs()
    assert kw["num_heads"][1:] == [2, 2, 4]
    m = f.build(num_classes=10, img_size=32)
    assert m.stages[3].blocks[0].attn.num_heads == 4
    assert m.stages[1].blocks[0].attn.key_dim == 16
    assert m.stages[2].blocks[0].window_size == 2
    assert m.stages[1].blocks[0].mlp.fc1.out_features == 4 * 32
    assert m.stages[0].blocks[0].conv1.conv.out_channels == 4 * 16


def test_roundtrip_dict_json():
    for f in list(PRESETS.values()) + [ContractionFactors(**TINY)]:
        g = ContractionFactors.from_dict(json.loads(json.dumps(f.to_dict())))
        assert g == f and g.key() == f.key()


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("change,img_size,needle", [
    ({"embed_dims": (16, 32, 40, 64)}, None, "γ_D3"),
    ({"embed_dims": (15, 32, 32, 64)}, None, "γ_D1"),
    ({"embed_dims": (16, 0, 32, 64)}, None, "γ_D2"),
    ({"embed_dims": (16, 32, 32)}, None, "γ_D1..4"),
    ({"depths": (1, 0, 2, 1)}, None, "γ_N2"),
    ({"depths": (1, 1, 2.0, 1)}, None, "γ_N3"),
    ({"window_sizes": (4, 2, 0)}, None, "γ_W4"),
    ({"window_sizes": (4, 3, 1)}, 32, "γ_W3"),
    ({"window_sizes": (8, 2, 1)}, 32, "γ_W2"),
    ({"mbconv_ratio": 0}, None, "γ_R"),
    ({"mlp_ratio": True}, None, "γ_M"),
    ({"head_dim": 0}, None, "γ_E"),
    ({"head_dim": 12}, None, "γ_D2"),
])
def test_invalid_factors_name_the_factor(change, img_size, needle):
    with pytest.raises(ValueError, match=needle):
        f = ContractionFactors(**{**TINY, **change})
        f.validate(img_size)


def test_preset_windows_checked_at_image_size():
    f = PRESETS["tinyvit_21m"]
    f.validate(224)
    f.validate(448)  # maps 28/14/7 x2 still divisible
    with pytest.raises(ValueError, match=r"γ_W2.*img_size=256"):
        f.build(img_size=256)
    g = f.fit_windows(32)
    assert g.window_sizes == (4, 2, 1) and g.embed_dims == f.embed_dims
    g.validate(32)


def test_from_dict_and_build_errors():
    with pytest.raises(ValueError, match="unknown contraction factor"):
        ContractionFactors.from_dict({**ContractionFactors(**TINY).to_dict(), "gamma": 3})
    with pytest.raises(TypeError, match="embed_dims"):
        ContractionFactors(**TINY).build(embed_dims=[1, 2, 3, 4], img_size=32)


def test_analytic_params_match_built_models():
    g = torch.Generator().manual_seed(1)
    pick = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    for _ in range(6):
        e = [8, 16, 5][pick(0, 2)]
        f = ContractionFactors(embed_dims=(2 * pick(1, 20), e * pick(1, 4), e * pick(1, 4), e * pick(1, 6)),
                               depths=(pick(1, 2), pick(1, 2), pick(1, 3), pick(1, 2)),
                               window_sizes=(pick(1, 4), pick(1, 2), 1), mbconv_ratio=pick(1, 4),
                               mlp_ratio=pick(1, 4), head_dim=e)
        nc, ic = pick(1, 20), pick(1, 3)
        assert analytic_params(f, nc, ic) == count_params(f.build(num_classes=nc, in_chans=ic, img_size=None))
    for f in PRESETS.values():
        assert analytic_params(f) == count_params(f.build())


def test_throughput_and_count_params():
    m = ContractionFactors(**TINY).build(num_classes=10, img_size=32)
    assert count_params(m) == sum(p.numel() for p in m.parameters())
    assert count_params(m) == analytic_params(ContractionFactors(**TINY), 10, 3)
    ips = throughput(m, 32, 4, "cpu", warmup=1, repeats=3)
    assert ips > 0 and not m.training
    with pytest.raises(ValueError, match="repeats"):
        throughput(m, 32, 4, "cpu", repeats=0)
    with pytest.raises(ValueError, match="amp"):
        throughput(m, 32, 4, "cpu", amp=True)
