"""The store's size limits: one definition (csrc/core/store/store_format.h), read by Python.

Every entry point refuses one past each limit and accepts the limit itself, with the
messages the store has always printed: LogitStore.create (ValueError), a manifest read
(ManifestError naming the file and field) and the C++ layout / epoch file (OverflowError,
ValueError). The limits are part of the store format (docs/store.md), so their values are
pinned here too: changing one is a format change, not a refactor.
"""
import json
import os
import re

import pytest

from tinyvit import LogitStore, _C
from tinyvit.store import manifest as mf
from tinyvit.store.errors import ManifestError

FORMAT_LIMITS = {"max_samples": 2 ** 48, "max_classes": 2 ** 31 - 1, "max_topk": 65535,
                 "max_u16_classes": 65535, "max_epochs": 2 ** 20, "max_manifest_bytes": 2 ** 24}


def _value_of(text):
    """'2^48' -> 2**48, '2^31 - 1' -> 2**31 - 1, '65535' -> 65535 (how messages print limits)."""
    m = re.fullmatch(r"(\d+)(?:\^(\d+))?(?: - (\d+))?", text)
    assert m, text
    base, exp, minus = int(m[1]), m[2], m[3]
    return (base ** int(exp) if exp else base) - (int(minus) if minus else 0)


def test_limits_come_from_the_core_and_are_the_format_values():
    lim = _C._store_limits()
    assert {k: v for k, v in lim.items() if k != "text"} == FORMAT_LIMITS
    assert mf.LIMITS == lim
    assert mf._MAX_MANIFEST_BYTES == lim["max_manifest_bytes"]
    for key, text in lim["text"].items():  # the printed form names the same number
        assert _value_of(text) == lim[key], (key, text)


def test_index_dtype_switches_at_the_u16_limit():
    top = FORMAT_LIMITS["max_u16_classes"]
    assert [mf.index_dtype(c) for c in (1, top, top + 1)] == ["uint16", "uint16", "int32"]
    assert _C._store_layout("fp16", 1, top)["index_bytes"] == 2
    assert _C._store_layout("fp16", 1, top + 1)["index_bytes"] == 4


# (num_samples, num_classes, topk, epochs) one past a limit -> the message's tail
OVER = [
    ((2 ** 48 + 1, 10, 5, 1), "num_samples", "[1, 2^48]", 2 ** 48 + 1),
    ((0, 10, 5, 1), "num_samples", "[1, 2^48]", 0),
    ((10, 2 ** 31, 5, 1), "num_classes", "[1, 2^31 - 1]", 2 ** 31),
    ((10, 0, 5, 1), "num_classes", "[1, 2^31 - 1]", 0),
    ((10, 100000, 65536, 1), "topk", "[1, min(num_classes, 65535)]", 65536),
    ((10, 10, 11, 1), "topk", "[1, min(num_classes, 65535)]", 11),
    ((10, 10, 0, 1), "topk", "[1, min(num_classes, 65535)]", 0),
    ((10, 10, 5, 2 ** 20 + 1), "epochs", "[0, 2^20]", 2 ** 20 + 1),
    ((10, 10, 5, -1), "epochs", "[0, 2^20]", -1),
]


def test_limit_violation_accepts_every_limit_itself():
    assert mf.limit_violation(2 ** 48, 2 ** 31 - 1, 65535, 2 ** 20) is None
    assert mf.limit_violation(1, 1, 1, 0) is None


@pytest.mark.parametrize("counts,field,rng,value", OVER)
def test_create_refuses_one_past_each_limit(tmp_path, counts, field, rng, value):
    n, c, k, e = counts
    with pytest.raises(ValueError) as ei:
        LogitStore.create(str(tmp_path / "s"), num_samples=n, num_classes=c, topk=k, epochs=e,
                          aug_fingerprint=None)
    assert str(ei.value) == f"{field} must be in {rng}, got {value}"
    assert not os.path.exists(tmp_path / "s")  # refused before anything is written


@pytest.mark.parametrize("counts,field,rng,value", OVER)
def test_manifest_read_refuses_one_past_each_limit(tmp_path, counts, field, rng, value):
    path = str(tmp_path / "s")
    LogitStore.create(path, num_samples=10, num_classes=10, topk=5, epochs=1,
                      aug_fingerprint=None).close()
    mpath = os.path.join(path, "manifest.json")
    with open(mpath) as f:
        m = json.load(f)
    m.update(zip(("num_samples", "num_classes", "topk", "epochs"), counts))
    with open(mpath, "w") as f:
        json.dump(m, f)
    with pytest.raises(ManifestError) as ei:
        LogitStore.open(path)
    assert str(ei.value) == f"{mpath}: field {field!r} = {value} outside {rng}"


def test_core_layout_and_epoch_file_use_the_same_limits(tmp_path):
    with pytest.raises(OverflowError, match=r"^topk must be <= 65535, got 65536$"):
        _C._store_layout("fp16", 65536, 100000)
    with pytest.raises(OverflowError, match=r"^num_classes must be <= 2147483647, got 2147483648$"):
        _C._store_layout("fp16", 1, 2 ** 31)
    with pytest.raises(ValueError, match=r"^topk must be in \[1, min\(num_classes, 65535\)\], got 11$"):
        _C._store_layout("fp16", 11, 10)
    assert _C._store_layout("compact", 65535, 2 ** 31 - 1)["record_size"] > 0
    path = str(tmp_path / "e.bin")
    with pytest.raises(OverflowError, match=r"^num_samples must be <= 281474976710656, got"):
        _C._StoreEpoch(path, "fp16", 5, 10, 0, 2 ** 48 + 1, 0, True, True)
    assert not os.path.exists(path)


def test_manifest_size_limit(tmp_path):
    path = str(tmp_path / "s")
    LogitStore.create(path, num_samples=4, num_classes=10, topk=5,
                      aug_fingerprint=None).close()
    mpath = os.path.join(path, "manifest.json")
    with open(mpath, "rb") as f:
        raw = f.read()
    limit = FORMAT_LIMITS["max_manifest_bytes"]
    with open(mpath, "wb") as f:  # valid JSON, one byte over: refused by size, not parsed
        f.write(raw.rstrip()[:-1] + b', "pad": "' + b"x" * (limit - len(raw) + 8) + b'"}')
    size = os.path.getsize(mpath)
    assert size > limit
    with pytest.raises(ManifestError, match=re.escape(f"manifest is {size} bytes (more than {limit})")):
        LogitStore.open(path)
