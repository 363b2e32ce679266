"""A store's AugConfig: LogitStore.aug_config (plain data, the store does not import augment) and
tinyvit.data.store_config.store_aug_config (the AugConfig, one typed error for a missing or
garbled config), and the one-line CLI errors that come from them."""
import json
import os

import pytest

from tinyvit import AugConfig, LogitStore
from tinyvit.data.store_config import store_aug_config
from tinyvit.store import ManifestError

CFG = AugConfig(img_size=16, scale=(0.5, 1.0), auto_augment="rand-m6-n1-mstd0.5", re_prob=0.1,
                mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.5, mean=(0.3,) * 3, std=(0.35,) * 3)


def _store(tmp_path, name, meta):
    s = LogitStore.create(tmp_path / name, 8, 10, 2, aug_fingerprint=CFG.fingerprint(), meta=meta)
    s.close()
    return str(tmp_path / name)


def test_recorded_config_round_trips_and_is_a_copy(tmp_path):
    s = LogitStore.open(_store(tmp_path, "s", {"aug_config": CFG.to_dict()}))
    got = store_aug_config(s)
    assert got == CFG and got.fingerprint() == s.aug_fingerprint
    d = s.aug_config
    assert d == json.loads(json.dumps(CFG.to_dict()))
    d["img_size"] = 99  # the caller's copy: the store's own is untouched
    assert s.aug_config["img_size"] == [16, 16] and store_aug_config(s) == CFG


def test_missing_config_is_none_or_one_typed_error(tmp_path):
    s = LogitStore.open(_store(tmp_path, "s", {"note": 1}))
    assert s.aug_config is None
    assert store_aug_config(s, required=False) is None
    with pytest.raises(ManifestError, match=r"manifest\.json: field 'meta\.aug_config' is missing"):
        store_aug_config(s)


@pytest.mark.parametrize("stored, needle", [
    (5, "is not a JSON object: int"),
    (["img_size", 16], "is not a JSON object: list"),
    ({"img_size": 16, "no_such_field": 1}, "is not a valid AugConfig: .*no_such_field"),
    ({"hflip": 2.0}, "is not a valid AugConfig: .*hflip"),
])
def test_garbled_config_is_the_same_typed_error_naming_the_file(tmp_path, stored, needle):
    path = _store(tmp_path, "s", {"aug_config": stored})
    s = LogitStore.open(path)
    with pytest.raises(ManifestError, match=needle) as ei:
        store_aug_config(s, required=False)  # present but garbled: refused even when optional
    assert os.path.join(path, "manifest.json") in str(ei.value) and "meta.aug_config" in str(ei.value)


def test_cli_show_and_train_refuse_a_missing_or_garbled_config_in_one_line(run_cli, tmp_path):
    missing = _store(tmp_path, "m", {})
    garbled = _store(tmp_path, "g", {"aug_config": {"img_size": "x"}})
    for argv, needle in (
            (["show", missing, "--data", "fashion-mnist", "--out", str(tmp_path / "a.png")], "is missing"),
            (["show", garbled, "--data", "fashion-mnist", "--out", str(tmp_path / "a.png")], "not a valid"),
            (["train", "--distill", garbled, "--data", "fashion-mnist", "--model", "test_resnet"],
             "not a valid")):
        code, out, err = run_cli(*argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (code, err)
        assert lines[0].startswith(f"tinyvit {argv[0]}: error: ") and needle in lines[0], lines[0]
        assert "meta.aug_config" in lines[0] and "Traceback" not in err
    assert not os.path.exists(tmp_path / "a.png")
