"""replay_batch: one plan per sample (pixels and device params from the same plan), and every
item failure a typed error naming the file and "(batch item i)", never a process abort."""
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import tinyvit
import tinyvit.augment.plan
from tinyvit import _C

JPEG_OK = _C._jpeg_supported()
needs_jpeg = pytest.mark.skipif(not JPEG_OK, reason="built without libjpeg")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG = tinyvit.AugConfig(img_size=40, re_prob=0.9, re_count=3, mixup_alpha=0.8, cutmix_alpha=1.0,
                        color_jitter=0.3)


def _photo(w, h, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BILINEAR)


def _enc(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def _mixed_sources(tmp_path):
    """Every source kind, with its true (width, height)."""
    from PIL import Image

    srcs, sizes = [], []

    def add(s, wh):
        srcs.append(s)
        sizes.append(wh)

    for k, (w, h) in enumerate([(97, 61), (64, 130), (33, 33)]):
        ph = _photo(w, h, k)
        add(_enc(ph, "JPEG", quality=88), (w, h))
        p = tmp_path / f"j{k}.jpg"
        p.write_bytes(_enc(ph, "JPEG", quality=75, progressive=True))
        add(str(p), (w, h))
        add(_enc(ph, "PNG"), (w, h))
        p = tmp_path / f"p{k}.jpg"  # a PNG named .jpg: the pool reads it, Pillow decodes it
        p.write_bytes(_enc(ph.convert("P", palette=Image.ADAPTIVE), "PNG"))
        add(p, (w, h))
        add(ph.convert("LA"), (w, h))
        add(np.asarray(ph), (w, h))
        add((np.asarray(ph.convert("L"), np.uint16) * 257), (w, h))
    return srcs, sizes


@pytest.mark.parametrize("threads", [1, 3])
def test_params_come_from_the_replayed_plans(tmp_path, threads):
    """return_params: the device arrays equal plan_device_params for the true sizes (an
    independent path: make_plan again from (seed, size)), and the images are unchanged."""
    srcs, sizes = _mixed_sources(tmp_path)
    seeds = list(range(5000, 5000 + len(srcs)))
    got = tinyvit.replay_batch(srcs, seeds, CFG, num_threads=threads, return_params=True)
    assert isinstance(got, tinyvit.augment.replay.ReplayedBatch)
    images, params = got
    want = tinyvit.augment.plan.plan_device_params(seeds, sizes, CFG)
    assert params.keys() == want.keys()
    for k in want:
        assert params[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(params[k], want[k], err_msg=k)
    assert want["erase_count"].max() > 1 and set(want["mix"].tolist()) == {1, 2}  # not trivial
    plain = tinyvit.replay_batch(srcs, seeds, CFG, num_threads=threads)
    assert torch.equal(images, plain)
    for i, (s, seed) in enumerate(zip(srcs, seeds)):
        assert np.array_equal(images[i].numpy(), tinyvit.replay(s, seed, CFG)), i


def _jpeg_folder(root, n):
    os.makedirs(root / "c0")
    os.makedirs(root / "c1")
    for i in range(n):
        (root / f"c{i % 2}" / f"{i:03d}.jpg").write_bytes(_enc(_photo(50 + i, 40 + 2 * i, i), "JPEG"))


@needs_jpeg
def test_loader_batches_make_one_plan_and_read_no_header(tmp_path, monkeypatch):
    """The loader's CPU step on JPEG files: no Pillow open (no header read for the size), no
    second plan (plan_device_params), and the params equal the plans' (checked by an
    independent plan_device_params with the true sizes afterwards)."""
    from PIL import Image

    from tinyvit.data import pipeline as pipeline_mod

    _jpeg_folder(tmp_path, 12)
    ds = tinyvit.ImageFolder(str(tmp_path))
    sizes = [Image.open(ds[i]).size for i in range(len(ds))]
    seeds = tinyvit.augment.seeds.sample_seeds(3, 1, np.arange(len(ds))).astype(np.int64)

    def refuse(*a, **k):
        raise AssertionError("second plan / header read on the JPEG path")

    with monkeypatch.context() as m:
        m.setattr(Image, "open", refuse)
        m.setattr(tinyvit.augment.plan, "plan_device_params", refuse)
        m.setattr(pipeline_mod, "plan_device_params", refuse, raising=False)
        m.setattr(tinyvit.data.sources, "source_size", refuse)
        m.setattr(tinyvit.data.sources, "source_sizes", refuse)
        m.setattr(pipeline_mod, "source_sizes", refuse, raising=False)
        batch = pipeline_mod.ReplayPipeline(ds, CFG, 3).cpu_batch(1, list(range(len(ds))),
                                                                  num_threads=2)
    want = tinyvit.augment.plan.plan_device_params(seeds, sizes, CFG)
    for k in want:
        np.testing.assert_array_equal(batch["params"][k].numpy(), want[k], err_msg=k)
    assert torch.equal(batch["images"], tinyvit.replay_batch([ds[i] for i in range(len(ds))],
                                                             seeds.tolist(), CFG))


# --------------------------------------------------------------- failures of one item
_CHILD = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, {root!r})
    import tinyvit
    good = open({good!r}, "rb").read()
    cfg = tinyvit.AugConfig(img_size=32)
    res = []
    for threads in (1, 2):
        for pos in (0, 2):
            srcs = [good, good, good]
            srcs[pos] = {bad!r}
            try:
                tinyvit.replay_batch(srcs, [1, 2, 3], cfg, num_threads=threads)
                res.append(["ok", ""])
            except BaseException as exc:
                res.append([type(exc).__name__, str(exc), pos])
    try:
        tinyvit.replay({bad!r}, 1, cfg)
        res.append(["ok", ""])
    except BaseException as exc:
        res.append([type(exc).__name__, str(exc), None])
    print(json.dumps(res))
""")


def _bad_files(tmp_path):
    """name -> (path, the exception type replay_batch must raise)."""
    d = tmp_path / "bad"
    d.mkdir()
    cases = {}
    p = d / "x.jpg"
    p.mkdir()
    cases["directory"] = (p, "IsADirectoryError")
    p = d / "huge.jpg"
    with open(p, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(1 << 40)  # sparse: 1 TiB declared, nothing on disk
    cases["sparse_1tib"] = (p, "ImageDecodeError")
    p = d / "fifo.jpg"
    os.mkfifo(p)
    cases["fifo"] = (p, "OSError")
    cases["missing"] = (d / "none.jpg", "FileNotFoundError")
    p = d / "trunc.png"
    p.write_bytes(_enc(_photo(40, 30, 1), "PNG")[:60])
    cases["truncated_png"] = (p, "ImageDecodeError")
    p = d / "bomb.png"
    p.write_bytes(_png_bomb(30000, 30000))
    cases["png_bomb"] = (p, "ImageDecodeError")
    p = d / "garbage.jpg"
    p.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 3)
    cases["garbage_jpeg"] = (p, "ImageDecodeError")
    if os.geteuid() != 0:  # root reads mode-000 files
        p = d / "noperm.jpg"
        p.write_bytes(_enc(_photo(40, 30, 1), "JPEG"))
        p.chmod(0)
        cases["unreadable"] = (p, "PermissionError")
    return cases


def _png_bomb(w, h):
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", bytes(range(48))) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@needs_jpeg
def test_every_bad_file_is_a_typed_error_naming_file_and_item(tmp_path):
    """Directory named .jpg, 1 TiB sparse file, FIFO, missing, unreadable, truncated PNG,
    decompression-bomb PNG, garbage JPEG: at batch positions 0 and 2, 1 and 2 threads, each
    raises its typed error naming the file and "(batch item i)"; replay() names the file.
    (On the old pool: rc 134 abort, a hang on the FIFO, MemoryError without a name.)"""
    import json

    good = tmp_path / "good.jpg"
    good.write_bytes(_enc(_photo(64, 48, 0), "JPEG"))
    for what, (path, want) in _bad_files(tmp_path).items():
        code = _CHILD.format(root=ROOT, good=str(good), bad=str(path))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (what, r.returncode, r.stderr[-2000:])
        for got in json.loads(r.stdout.strip().splitlines()[-1]):
            kind, msg, pos = got
            assert kind == want, (what, got)
            assert str(path) in msg, (what, got)
            if pos is not None:
                assert f"(batch item {pos})" in msg, (what, got)


def test_non_jpeg_bytes_and_arrays_name_the_batch_item():
    """Non-JPEG failures (corrupt PNG bytes, a bad array shape) say which batch item."""
    good = np.zeros((20, 20, 3), np.uint8)
    png = _enc(_photo(30, 20, 2), "PNG")
    with pytest.raises(tinyvit.errors.ImageDecodeError, match=r"<bytes len=\d+> \(batch item 1\)"):
        tinyvit.replay_batch([good, png[:50], good], [1, 2, 3], CFG)
    with pytest.raises(ValueError, match=r"<array> \(batch item 2\)"):
        tinyvit.replay_batch([good, good, np.zeros((4, 4, 2), np.uint8)], [1, 2, 3], CFG)
    with pytest.raises(tinyvit.errors.ImageDecodeError, match=r"<bytes len=\d+> \(batch item 0\).*Decompression"):
        tinyvit.replay_batch([_png_bomb(30000, 30000)], [1], CFG)


def test_pillow_decompression_bomb_is_typed_and_named(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_bomb(25000, 25000))
    for path in ("auto", "pil"):
        with pytest.raises(tinyvit.errors.ImageDecodeError, match=f"{p}.*DecompressionBomb"):
            tinyvit.replay(str(p), 1, CFG, path=path)


def test_fifo_does_not_hang_replay_or_sources(tmp_path):
    from tinyvit.data.sources import source_size

    p = tmp_path / "f.jpg"
    os.mkfifo(p)
    with pytest.raises(OSError, match="not a regular file"):
        tinyvit.replay(str(p), 1, CFG)
    with pytest.raises(OSError, match="not a regular file"):
        source_size(str(p))


def test_core_errors_cross_through_one_registry():
    """_C._raise_error: the class registered per kind (the mechanism every binding uses)."""
    for kind, cls in [("value", ValueError), ("not_found", FileNotFoundError),
                      ("is_directory", IsADirectoryError), ("io", OSError),
                      ("decode", tinyvit.errors.ImageDecodeError), ("memory", MemoryError)]:
        with pytest.raises(cls, match="^boom$"):
            _C._raise_error(kind, "boom")
    with pytest.raises(RuntimeError, match="unregistered error kind 'nope'"):
        _C._raise_error("nope", "boom")
    with pytest.raises(TypeError):
        _C._register_error_kinds({"x": 3})


def test_pack_plans_left_the_public_api():
    assert not hasattr(tinyvit, "pack_plans")
    assert "plan_device_params" in tinyvit.augment.plan.__all__ and "pack_plans" not in tinyvit.augment.plan.__all__
    assert "pack_plans" not in tinyvit.__all__
