"""The one enum <-> name table (csrc/core/plan/names.h) as Python sees it: _C's tuples
agree with timm's op sets, AugConfig validates against them, and every name survives the
C++ round trip (config -> C++ enum -> name)."""
import pytest

import tinyvit
import tinyvit.augment.plan
from tinyvit import AugConfig
from tinyvit._ext import _C
from tinyvit.augment import config as config_mod

auto_augment = pytest.importorskip("timm.data.auto_augment")


def test_rand_op_sets_are_timms():
    assert _C.RAND_TRANSFORMS == tuple(auto_augment._RAND_TRANSFORMS)
    assert _C.RAND_INCREASING_TRANSFORMS == tuple(auto_augment._RAND_INCREASING_TRANSFORMS)
    assert set(_C.RAND_TRANSFORMS) | set(_C.RAND_INCREASING_TRANSFORMS) == set(_C.RA_OPS)


def test_python_reads_the_c_tables():
    assert config_mod.RAND_TRANSFORMS == _C.RAND_TRANSFORMS
    assert config_mod.RAND_INCREASING_TRANSFORMS == _C.RAND_INCREASING_TRANSFORMS
    assert config_mod._INTERPOLATIONS == _C.INTERPOLATIONS == ("nearest", "bilinear", "bicubic", "random")
    assert config_mod._ERASE_MODES == _C.ERASE_MODES == ("const", "rand", "pixel")
    assert _C.MIX_MODES == ("none", "mixup", "cutmix")


@pytest.mark.parametrize("name", _C.INTERPOLATIONS)
def test_every_interpolation_round_trips_through_cpp(name):
    cfg = AugConfig(interpolation=name, auto_augment="rand-m9-n2")
    plan = tinyvit.augment.plan.make_plan(3, (64, 48), cfg)
    # the plan's resize filter is the configured one, or a resolved draw for "random"
    assert plan["interpolation"] == name if name != "random" else plan["interpolation"] in ("bilinear", "bicubic")


@pytest.mark.parametrize("mode", _C.ERASE_MODES)
def test_every_erase_mode_is_accepted(mode):
    AugConfig(re_prob=0.5, re_mode=mode).fingerprint()


def test_unknown_names_are_refused_naming_the_choices():
    with pytest.raises(ValueError, match="interpolation"):
        AugConfig(interpolation="lanczos")
    with pytest.raises(ValueError, match="re_mode"):
        AugConfig(re_mode="noise")
