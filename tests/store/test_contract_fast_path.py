"""The record contract through the fused decode filter (csrc/core/store/store_kernels.inc):
records with VALID checks over content write() refuses -- NaN / inf / negative / > 1
probabilities, a sum one fp16 step over the tolerance, repeated classes at the first, middle and
last positions -- are refused by read() naming field and sample, listed by missing(), counted by
audit(); their valid neighbours (-0.0, a sum exactly at the last step under the tolerance, 1.0)
are accepted. Per value encoding, for K on both sides of the register duplicate check (16), C
on both sides of its sentinel bound (65519), and under the portable and the AVX2 ISA."""
import struct

import numpy as np
import pytest

from tinyvit import LogitStore, _C
from tinyvit import store as st

FAST = _C._store_isa()
ISAS = ["portable"] + ([FAST] if FAST != "portable" else [])
N = 6  # records per store; the forged one is sample 3
SAMPLE = 3


@pytest.fixture(params=ISAS)
def isa(request):
    _C._store_set_isa(request.param)
    yield request.param
    _C._store_set_isa("auto")


def make_store(path, C, K, encoding):
    s = LogitStore.create(path, N, C, K, aug_fingerprint="a", value_encoding=encoding)
    idx = np.stack([(np.arange(K) * 7 + i) % C for i in range(N)])
    probs = np.tile((0.8 * 0.5 ** np.arange(1.0, K + 1)).astype(np.float32), (N, 1))
    s.write(0, np.arange(N), np.arange(N) + 1, idx, probs)
    return s


def forge(s, sample, idx, halves=None, scale=None, levels=None):
    """Overwrite `sample` with a record whose check is VALID over exactly this content."""
    L = _C._store_layout(s.value_encoding, s.topk, s.num_classes)
    K, C, w = s.topk, s.num_classes, L["index_bytes"]
    rec = bytearray(L["record_size"])
    rec[0:4] = struct.pack("<I", 9)
    for k, c in enumerate(idx):
        rec[L["off_indices"] + w * k:L["off_indices"] + w * (k + 1)] = int(c).to_bytes(w, "little")
    if halves is not None:
        rec[L["off_values"]:L["off_values"] + 2 * K] = np.asarray(halves, "<u2").tobytes()
    else:
        rec[L["off_scale"]:L["off_scale"] + 4] = struct.pack("<f", scale)
        for j, lv in enumerate(levels):
            pos = lv + j
            rec[L["off_values"] + pos // 8] |= 1 << (pos % 8)
    enc = 1 if s.value_encoding == "fp16" else 2
    prefix = b"TVLS" + bytes([1, enc, w, 0]) + struct.pack("<IIQ", K, C, int(s.manifest["store_id"], 16))
    body = bytes(rec[:L["off_check"]])
    c = _C._store_crc32c(struct.pack("<QQ", 0, sample) + body, _C._store_crc32c(prefix, 0xFFFFFFFF))
    rec[L["off_check"]:] = struct.pack("<I", (~c) & 0xFFFFFFFF or 1)
    with open(s.epoch_path(0), "r+b") as f:
        f.seek(sample * L["record_size"])
        f.write(bytes(rec))


def half(x):
    return int(np.float16(x).view(np.uint16))


def halves_summing_to(K, m):
    """fp16 values summing exactly to 1 + m * 2^-24 (0.5 + 0.5 + a normal + a subnormal)."""
    h = [0] * K
    h[0] = h[1] = half(0.5)
    h[2] = half(np.ldexp(np.float32(m // 32), -19))
    h[3] = m % 32
    return h


def check(tmp_path, C, K, encoding, field, **content):
    s = make_store(tmp_path / "s", C, K, encoding)
    forge(s, SAMPLE, **content)
    s.close()
    s = LogitStore.open(tmp_path / "s")
    others = [i for i in range(N) if i != SAMPLE]
    assert s.read(0, others)[0].tolist() == [i + 1 for i in others]
    if field is None:  # valid: accepted everywhere
        s.read(0, list(range(N)))
        assert s.missing(0).tolist() == [] and s.audit(0)["ok"] == N
        return
    with pytest.raises(st.CorruptRecordError) as ei:
        s.read(0, list(range(N)))
    msg = str(ei.value)
    assert f"sample {SAMPLE} (batch position {SAMPLE})" in msg and field in msg, msg
    assert s.missing(0).tolist() == [SAMPLE]
    a = s.audit(0)
    assert a["ok"] == N - 1 and a["first_bad_sample"] == SAMPLE, a


CONFIGS = [(21841, 10), (21841, 100), (65535, 10), (70000, 17)]


def distinct(C, K):
    return [(k * 131 + 5) % C for k in range(K)]


@pytest.mark.parametrize("C,K", CONFIGS)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("value,field", [
    (float("nan"), "= nan not in [0, 1]"),
    (float("inf"), "= inf not in [0, 1]"),
    (-0.0999755859375, "= -0.0999755859 not in [0, 1]"),
    (1.0009765625, "= 1.00097656 not in [0, 1]"),  # one fp16 step over 1
    (-0.0, None),
    (1.0, None),
])
def test_fp16_value_range(tmp_path, isa, C, K, where, value, field):
    k = {"first": 0, "middle": K // 2, "last": K - 1}[where]
    h = [half(0.0)] * K
    h[k] = half(value)
    check(tmp_path, C, K, "fp16", field and f"topk_probs[{k}] {field}", idx=distinct(C, K),
          halves=h)


@pytest.mark.parametrize("C,K", CONFIGS)
@pytest.mark.parametrize("m,field", [(33554, None), (33555, "topk_probs sum 1.00200003 > 1 + 0.002")])
def test_fp16_sum_at_the_tolerance(tmp_path, isa, C, K, m, field):
    """1 + 33554 * 2^-24 is the largest fp16 total <= 1 + 2e-3: accepted; one step more: not."""
    h = halves_summing_to(K, m)
    h = h[2:] + h[:2]  # the large values last: the vector tail carries them
    check(tmp_path, C, K, "fp16", field, idx=distinct(C, K), halves=h)


@pytest.mark.parametrize("encoding", ["fp16", "compact"])
@pytest.mark.parametrize("C,K", CONFIGS)
@pytest.mark.parametrize("pair", ["first", "middle", "last", "ends"])
def test_repeated_class(tmp_path, isa, encoding, C, K, pair):
    i, j = {"first": (0, 1), "middle": (K // 2 - 1, K // 2), "last": (K - 2, K - 1),
            "ends": (0, K - 1)}[pair]
    idx = distinct(C, K)
    idx[j] = idx[i] = C - 1 - i  # near the top of [0, C) too
    content = (dict(halves=[half(0.5 / K)] * K) if encoding == "fp16"
               else dict(scale=1.0, levels=[12 + 12 * int(np.log2(K))] * K))
    check(tmp_path, C, K, encoding, f"topk_indices: class {C - 1 - i} repeated", idx=idx, **content)


@pytest.mark.parametrize("C,K", CONFIGS)
@pytest.mark.parametrize("scale,field", [(1.0, None), (1.001, "topk_probs[0] = 1.00100005 not in [0, 1]")])
def test_compact_top_value_over_one(tmp_path, isa, C, K, scale, field):
    """Level 0 at scale 1.001 and every other value 0: the sum is within tolerance, the range
    is not."""
    check(tmp_path, C, K, "compact", field, idx=distinct(C, K), scale=scale,
          levels=[0] + [255] * (K - 1))


@pytest.mark.parametrize("C,K", CONFIGS)
@pytest.mark.parametrize("over", [False, True])
def test_compact_sum_at_the_tolerance(tmp_path, isa, C, K, over):
    """Two level-12 values (0.5 each) and K - 2 at 2^-9: the scale puts the decoded total just
    under / over 1 + 2e-3."""
    levels = [12, 12] + [108] * (K - 2)
    t = 2 * 0.5 + (K - 2) * 2.0 ** -9
    scale = np.float32((1.002 / t) * (1 + 1e-6 if over else 1 - 1e-6))
    check(tmp_path, C, K, "compact", "topk_probs sum" if over else None, idx=distinct(C, K),
          scale=float(scale), levels=levels)
