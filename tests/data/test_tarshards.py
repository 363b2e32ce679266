"""Tar shards (webdataset layout): member index vs Python's tarfile, bytes and labels per
sample, pixels equal to the same images in a folder, workers, stores, bad shards."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import tarfile

import numpy as np
import pytest
import torch

import tinyvit
from tinyvit.data.tarshards import expand_shards

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _trees import encode  # noqa: E402

CFG = tinyvit.AugConfig(img_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)


def _add(tf, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1_700_000_000
    tf.addfile(ti, io.BytesIO(data))


def make_shards(d, n_shards=3, per_shard=5, fmt=tarfile.GNU_FORMAT, label="cls", folder=None):
    """Shards shard-000..; sample keys in a long subdirectory for some (GNU / pax long
    names); a metadata-only key in between. Returns [(key, image bytes, label)]."""
    os.makedirs(d, exist_ok=True)
    samples = []
    k = 0
    for s in range(n_shards):
        with tarfile.open(os.path.join(d, f"shard-{s:03d}.tar"), "w", format=fmt) as tf:
            for j in range(per_shard):
                lab = (k * 7) % 4
                sub = ("x" * 120 + "/") if j == 1 else ""
                key = f"{sub}sample{k:04d}"
                fmt_img = ["JPEG", "PNG", "JPEG", "PPM", "BMP"][k % 5]
                ext = {"JPEG": "jpg", "PNG": "png", "PPM": "ppm", "BMP": "bmp"}[fmt_img]
                img = encode(fmt_img, (20 + k % 9, 12 + k % 5), seed=k)
                _add(tf, f"{key}.{ext}", img)
                if label == "cls":
                    _add(tf, f"{key}.cls", f"{lab}\n".encode())
                else:
                    _add(tf, f"{key}.json", json.dumps({"label": lab, "w": 1}).encode())
                if j == 2:
                    _add(tf, f"meta{k}.txt", b"not a sample")
                samples.append((key, img, lab, ext))
                if folder is not None:
                    p = os.path.join(folder, f"c{lab}", f"{k:04d}.{ext}")
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "wb") as f:
                        f.write(img)
                k += 1
    with open(os.path.join(d, "classes.txt"), "w") as f:
        f.write("\n".join(["ant", "bee", "cat", "dog"]) + "\n")
    return samples


def test_expand_shards():
    assert expand_shards("/d/s-{000..002}.tar") == ["/d/s-000.tar", "/d/s-001.tar", "/d/s-002.tar"]
    assert expand_shards("/d/s-{8..10}.tar") == ["/d/s-8.tar", "/d/s-9.tar", "/d/s-10.tar"]
    assert expand_shards("/d/s-{0..10}.tar")[:2] == ["/d/s-0.tar", "/d/s-1.tar"]
    assert expand_shards("/d/s-{09..10}.tar") == ["/d/s-09.tar", "/d/s-10.tar"]
    assert expand_shards("/{a,b}/s{0..1}.tar") == ["/a/s0.tar", "/a/s1.tar", "/b/s0.tar", "/b/s1.tar"]
    with pytest.raises(tinyvit.errors.DatasetError, match="empty range"):
        expand_shards("/d/s-{3..1}.tar")


@pytest.mark.parametrize("fmt,label", [(tarfile.GNU_FORMAT, "cls"), (tarfile.PAX_FORMAT, "json"),
                                       (tarfile.USTAR_FORMAT, "cls")])
def test_samples_bytes_labels_and_sizes(tmp_path, fmt, label):
    from PIL import Image

    samples = make_shards(tmp_path, fmt=fmt, label=label)
    ds = tinyvit.TarShards(str(tmp_path / "shard-{000..002}.tar"))
    assert len(ds) == len(samples) == 15
    assert ds.classes == ["ant", "bee", "cat", "dog"]
    assert list(ds.keys) == [s[0] for s in samples]
    for i, (key, img, lab, _) in enumerate(samples):
        assert ds[i] == img
        assert int(ds.targets[i]) == lab
        with Image.open(io.BytesIO(img)) as im:
            assert ds.source_sizes([i]).tolist() == [list(im.size)]
    assert ds.labels([3, 0]).tolist() == [samples[3][2], samples[0][2]]
    # the member offsets agree with Python's tarfile
    with tarfile.open(tmp_path / "shard-001.tar") as tf:
        m = tf.getmember(samples[5][0] + "." + samples[5][3])
        assert (int(ds._shard[5]), int(ds._offset[5]), int(ds.sizes[5])) == (1, m.offset_data, m.size)
    ds2 = tinyvit.open_dataset(str(tmp_path / "shard-{000..002}.tar"))
    assert isinstance(ds2, tinyvit.TarShards) and ds2.fingerprint() == ds.fingerprint()
    assert ds.fingerprint().startswith("ts1-")


def test_replay_from_shards_equals_folder(tmp_path):
    samples = make_shards(tmp_path / "sh", folder=str(tmp_path / "folder"))
    ds = tinyvit.TarShards(str(tmp_path / "sh" / "shard-{000..002}.tar"))
    folder = tinyvit.ImageFolder(tmp_path / "folder")
    by_name = {os.path.basename(folder[i]): i for i in range(len(folder))}
    seeds = list(range(100, 100 + len(ds)))
    a = tinyvit.replay_batch([ds[i] for i in range(len(ds))], seeds, CFG, num_threads=2)
    fi = [by_name[f"{i:04d}.{samples[i][3]}"] for i in range(len(ds))]
    b = tinyvit.replay_batch([folder[i] for i in fi], seeds, CFG, num_threads=2)
    assert torch.equal(a, b)
    np.testing.assert_array_equal(ds.source_sizes(range(len(ds))), folder.source_sizes(fi))


def test_index_cached_revalidated_and_fingerprint_follows_shards(tmp_path, monkeypatch):
    from tinyvit.data import tarshards

    make_shards(tmp_path)
    spec = str(tmp_path / "shard-{000..002}.tar")
    calls = []
    real = tarshards._build
    monkeypatch.setattr(tarshards, "_build", lambda *a: calls.append(1) or real(*a))
    fp = tinyvit.TarShards(spec).fingerprint()
    tinyvit.TarShards(spec)
    assert len(calls) == 1
    make_shards(tmp_path / "other", per_shard=5)
    with tarfile.open(tmp_path / "shard-002.tar", "a") as tf:
        _add(tf, "late.jpg", encode("JPEG", (8, 8)))
        _add(tf, "late.cls", b"1")
    ds = tinyvit.TarShards(spec)
    assert len(calls) == 2 and len(ds) == 16 and ds.fingerprint() != fp
    assert ds[15] == encode("JPEG", (8, 8))
    assert tinyvit.TarShards(str(tmp_path / "shard-{000..001}.tar")).fingerprint() != fp


def test_workers_and_pickle(tmp_path):
    make_shards(tmp_path, per_shard=8)
    ds = tinyvit.TarShards(str(tmp_path / "shard-{000..002}.tar"))
    blob = pickle.dumps(ds)
    assert len(blob) < 3000
    back = pickle.loads(blob)
    assert all(back[i] == ds[i] for i in range(len(ds))) and back.fingerprint() == ds.fingerprint()

    def batches(workers):
        ld = tinyvit.ReplayLoader(ds, CFG, batch_size=6, num_workers=workers, base_seed=3)
        ld.set_epoch(1)
        return [x.clone() for x, *_ in ld]

    a, b = batches(0), batches(2)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b))


def test_save_logits_and_distill_from_shards(tmp_path):
    from tinyvit.jobs.save_logits import open_or_create_store, save_logits

    make_shards(tmp_path / "sh", per_shard=6)
    ds = tinyvit.TarShards(str(tmp_path / "sh" / "shard-{000..002}.tar"))
    teacher = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                                  torch.nn.Linear(12, 4))
    store = open_or_create_store(str(tmp_path / "store"), dataset=ds, cfg=CFG, num_classes=4,
                                 topk=2, epochs=1, base_seed=1, teacher_desc={"m": "t"})
    save_logits(teacher, ds, store, CFG, epochs=[0], batch_size=6, progress=False)
    store.close()
    ld = tinyvit.DistillLoader(ds, str(tmp_path / "store"), CFG, batch_size=6)
    n = sum(x.shape[0] for x, _ in ld)
    assert n == len(ds)
    other = tinyvit.TarShards(str(tmp_path / "sh" / "shard-{000..001}.tar"))
    with pytest.raises(tinyvit.errors.StoreMismatchError):
        tinyvit.DistillLoader(other, str(tmp_path / "store"), CFG, batch_size=6)


def test_bad_shards_are_named(tmp_path):
    make_shards(tmp_path)
    with pytest.raises(tinyvit.errors.DatasetError, match="7 of 10 shards .*shard-003.tar"):
        tinyvit.TarShards(str(tmp_path / "shard-{000..009}.tar"))
    p = tmp_path / "shard-001.tar"
    data = p.read_bytes()
    p.write_bytes(data[:1500])
    with pytest.raises(tinyvit.errors.DatasetError, match="shard-001.tar.*(truncated|past the end)"):
        tinyvit.TarShards(str(tmp_path / "shard-{000..002}.tar"))
    p.write_bytes(b"\x01" * 2048)
    with pytest.raises(tinyvit.errors.DatasetError, match="shard-001.tar.*checksum"):
        tinyvit.TarShards(str(tmp_path / "shard-{000..002}.tar"))
    p.write_bytes(data)
    with tarfile.open(tmp_path / "shard-002.tar", "a") as tf:
        _add(tf, "odd.jpg", encode("JPEG", (8, 8)))
        _add(tf, "odd.cls", b"seven")
    with pytest.raises(tinyvit.errors.DatasetError, match="odd.cls"):
        tinyvit.TarShards(str(tmp_path / "shard-{000..002}.tar"))


def test_cli_torchrun_save_train_verify_from_shards(tmp_path):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    make_shards(tmp_path / "sh", n_shards=4, per_shard=8)
    spec = str(tmp_path / "sh" / "shard-{000..003}.tar")
    aug = ["--img-size", "16"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "tinyvit"]
    store = str(tmp_path / "store")
    r = subprocess.run(run + ["save-logits", store, "--data", spec, "--model", "test_resnet", "--random-teacher",
                              "--topk", "2", "--epochs", "1", "--batch-size", "8", "--no-progress",
                              "--device", "cpu"] + aug, env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    st = tinyvit.LogitStore.open(store)
    assert st.num_samples == 32 and st.missing(0).size == 0 and st.num_classes == 4
    assert st.manifest["dataset_fingerprint"] == tinyvit.TarShards(spec).fingerprint()
    r = subprocess.run(run + ["train", "--distill", store, "--data", spec, "--model", "test_resnet",
                              "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "tr"),
                              "--no-progress", "--device", "cpu"], env=env, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    log = [json.loads(ln) for ln in open(tmp_path / "tr" / "log.jsonl")]
    assert log[0]["mode"] == "distill" and log[0]["steps"] == 2  # 32 samples / 2 ranks / 8
    r = subprocess.run([sys.executable, "-m", "tinyvit", "verify", store, "--data", spec,
                        "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "replay: OK (1 attested epochs" in r.stdout, r.stdout + r.stderr


# ---- hostile shards (issue #22): bounded header walk, typed errors naming shard + offset ----
def _raw_header(name: bytes, size_field: bytes, typ: bytes = b"0") -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[124:136] = size_field
    h[156:157] = typ
    h[257:265] = b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _octal(n: int) -> bytes:
    return b"%011o\0" % n


def _write(p, *blocks) -> str:
    p.write_bytes(b"".join(blocks) + bytes(1024))
    return str(p)


HOSTILE = {
    # the 1.5 KB input that looped forever (GIL released, 43 MiB/s)
    "b256_negative": (lambda: [_raw_header(b"a.jpg", b"\xff" * 4 + struct.pack(">q", -1024))],
                      "bad size field.* at byte 0"),
    "b256_2_40": (lambda: [_raw_header(b"a.jpg", b"\x80\0\0\0" + struct.pack(">Q", 1 << 40))],
                  "runs past the end.* at byte 0"),
    "octal_garbage": (lambda: [_raw_header(b"a.jpg", b"0000009x000\0")], "bad size field"),
    "longname_2gib": (lambda: [_raw_header(b"././@LongLink", _octal(2 << 30), b"L")],
                      "runs past the end.* at byte 0"),
    "longname_over_64k": (lambda: [_raw_header(b"././@LongLink", _octal(70000), b"L"),
                                   b"n" * 70144], "GNU long-name record of 70000 bytes"),
    "pax_len_overflow": (lambda: [_raw_header(b"pax", _octal(32), b"x"),
                                  b"99999999999999999999 path=a.jpg\n".ljust(512, b"\0")],
                         "bad pax extended header.*not a decimal.* at byte 0"),
    "pax_len_garbage": (lambda: [_raw_header(b"pax", _octal(14), b"x"),
                                 b"1x path=a.jpg\n".ljust(512, b"\0")],
                        "bad pax extended header.* at byte 0"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_typed_and_named(tmp_path, case):
    import time

    blocks, match = HOSTILE[case]
    p = _write(tmp_path / f"{case}.tar", *blocks())
    t0 = time.perf_counter()
    with pytest.raises(tinyvit.errors.DatasetError, match=match) as ei:
        tinyvit.TarShards(p, index=False)
    assert p in str(ei.value) and "\n" not in str(ei.value)
    assert time.perf_counter() - t0 < 5  # bounded by the file: one header, no loop


def test_pax_size_record_sets_the_member_size(tmp_path):
    img = encode("JPEG", (9, 7))
    body = b" size=%d\n" % len(img)
    rec = (b"%d" % (len(body) + 2) + body)
    p = _write(tmp_path / "pax.tar", _raw_header(b"pax", _octal(len(rec)), b"x"),
               rec.ljust(512, b"\0"), _raw_header(b"a.jpg", _octal(0)),
               img + bytes(-len(img) % 512))
    ds = tinyvit.TarShards(p, index=False)
    assert len(ds) == 1 and ds[0] == img
    with tarfile.open(p) as tf:  # the independent reading agrees
        assert tf.getmembers()[0].size == len(img)


def test_failing_opens_leak_no_descriptor(tmp_path):
    from tinyvit import _C

    p = _write(tmp_path / "loop.tar", *HOSTILE["b256_negative"][0]())
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(ValueError):
            _C._tar_members(p)
        with pytest.raises(tinyvit.errors.DatasetError):
            tinyvit.TarShards(p, index=False)
    assert len(os.listdir("/proc/self/fd")) == before


def _labelled(tmp_path, labels, ext="cls"):
    d = tmp_path / "lab"
    d.mkdir(parents=True, exist_ok=True)
    p = d / "s.tar"
    with tarfile.open(p, "w", format=tarfile.GNU_FORMAT) as tf:
        for k, lab in enumerate(labels):
            _add(tf, f"k{k}.jpg", encode("JPEG", (8, 8), seed=k))
            if lab is not None:
                if not isinstance(lab, bytes):
                    lab = (json.dumps({"label": lab}) if ext == "json" else str(lab)).encode()
                _add(tf, f"k{k}.{ext}", lab)
    return str(p)


@pytest.mark.parametrize("label,ext,match", [
    (b"99999999999999999999999", "cls", "label 99999999999999999999999 is over the limit"),
    (b"1000000000000", "cls", "label 1000000000000 is over the limit of 1,000,000 classes"),
    (b'{"label": 1000000000000}', "json", "over the limit"),
    (b'{"label": 99999999999999999999}', "json", "over the limit"),
    (b"[" * 100_000, "json", "nested deeper than 32"),
    (b'{"a": ' * 50 + b"1" + b"}" * 50, "json", "nested deeper than 32"),
    (b'{"label": true}', "json", "is a boolean"),
    (b"-3", "cls", "negative label -3"),
    (b'{"label": -3}', "json", "negative label -3"),
    (b"seven", "cls", "not a decimal integer"),
    (b"+3", "cls", "not a decimal integer"),
    (b"\xd9\xa3", "cls", "not a decimal integer"),  # an Arabic-Indic digit: int() took it
])
def test_bad_labels_are_refused_naming_shard_and_member(tmp_path, label, ext, match):
    p = _labelled(tmp_path, [0, label, 1], ext)
    with pytest.raises(tinyvit.errors.DatasetError, match=match) as ei:
        tinyvit.TarShards(p, index=False)
    msg = str(ei.value)
    assert p in msg and f"k1.{ext}" in msg and "\n" not in msg


def test_label_edge_cases_that_are_accepted(tmp_path):
    # a bracket inside a string is not nesting; escaped quotes do not end the string
    deep_in_string = json.dumps({"label": 2, "s": "[" * 1000 + '\\"{' * 100}).encode()
    p = _labelled(tmp_path, [0, deep_in_string, b'{"label": "n0144", "cls": 1}'], "json")
    ds = tinyvit.TarShards(p, index=False)
    assert ds.targets.tolist() == [0, 2, 1] and ds.num_classes == 3
    p = _labelled(tmp_path / "b", [3, 999_999, 0])
    assert tinyvit.TarShards(p, index=False).num_classes == 1_000_000


def test_all_negative_or_partial_labels_are_refused(tmp_path):
    with pytest.raises(tinyvit.errors.DatasetError, match="negative label -1"):
        tinyvit.TarShards(_labelled(tmp_path / "a", [-1, -2, -3]), index=False)
    p = _labelled(tmp_path / "b", [0, None, 1])
    with pytest.raises(tinyvit.errors.DatasetError, match=r"sample 1 \('k1'\) has no .cls / .json label "
                                                   r"but 2 others do") as ei:
        tinyvit.TarShards(p, index=False)
    assert p in str(ei.value)
    ds = tinyvit.TarShards(_labelled(tmp_path / "c", [None, None]), index=False)
    assert ds.targets is None  # no labels at all: an unlabeled dataset, as before


def test_non_image_payload_names_shard_and_key(tmp_path):
    d = tmp_path / "np"
    d.mkdir()
    p = d / "s.tar"
    with tarfile.open(p, "w", format=tarfile.GNU_FORMAT) as tf:
        for k in range(4):
            data = os.urandom(5000) if k == 2 else encode("JPEG", (8, 8), seed=k)
            _add(tf, f"key{k}.jpg", data)
    ds = tinyvit.TarShards(str(p), index=False)
    assert ds.source_name(2) == f"{p}: sample 2 (key 'key2')"
    with pytest.raises(tinyvit.errors.ImageDecodeError, match=r"s\.tar: sample 2 \(key 'key2'\) "
                                                       r"\(batch item 2\)"):
        tinyvit.replay_batch(ds.sources(range(3)), [0, 1, 2], CFG,
                             names=[ds.source_name(i) for i in range(3)])
    with pytest.raises(tinyvit.errors.ImageDecodeError, match=r"s\.tar: sample 2 \(key 'key2'\)"):
        list(tinyvit.ReplayLoader(ds, CFG, batch_size=4))
    with pytest.raises(ValueError, match="3 sources but 2 names"):
        tinyvit.replay_batch(ds.sources(range(3)), [0, 1, 2], CFG, names=["a", "b"])


def test_cli_save_logits_on_a_looping_shard_ends_with_one_line(tmp_path):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = _write(tmp_path / "loop.tar", *HOSTILE["b256_negative"][0]())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)
    r = subprocess.run([sys.executable, "-m", "tinyvit", "save-logits", str(tmp_path / "store"),
                        "--data", p, "--model", "test_resnet", "--random-teacher", "--topk", "2",
                        "--epochs", "1", "--no-progress", "--device", "cpu"],
                       env=env, capture_output=True, text=True, timeout=300)
    err = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert r.returncode == 2, r  # EXIT_ERROR: a typed, expected error (1 is for findings)
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "loop.tar" in err[0] and "bad size field" in err[0] and "at byte 0" in err[0]


def test_fuzz_tar_short():
    """benchmarks/fuzz_tar.py, every mutation kind twice, each case under the bounded
    harness (2 s, 256 MiB): no hang, crash, case over time / memory, untyped or unnamed
    error, and no accepted shard that Python's tarfile reads differently."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    bench = os.path.join(root, "benchmarks")
    sys.path.insert(0, bench)  # the spawned worker imports fuzz_tar by name too
    try:
        import fuzz_tar

        n = 2 * len(fuzz_tar.KINDS)
        r = fuzz_tar.fuzz(cases=n, seconds=90, seed=3)
    finally:
        sys.path.remove(bench)
    assert r["cases"] == n, r
    assert r["failures"] == 0, r["problems"]
    assert r["per_outcome"]["ok"] > 0 and r["per_outcome"]["typed"] > 0
