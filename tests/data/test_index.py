"""The cached image index: C++ header sizes vs Pillow, ImageFolder listing and fingerprint
unchanged from before the index, validation, concurrent builds, what a worker receives."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

import tinyvit
from tinyvit._ext import _C
from tinyvit.data import folder_index as fx
from tinyvit.data import index as ix
from tinyvit.data.datasets import IMG_EXTENSIONS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _trees import PINNED_FINGERPRINT, encode, old_listing, pinned_tree  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ header parser vs Pillow
@pytest.mark.parametrize("fmt,kw", [
    ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"subsampling": 0}),
    ("PNG", {}), ("GIF", {}), ("BMP", {}), ("PPM", {}), ("PGM", {}),
    ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80}),
])
def test_header_size_agrees_with_pillow(fmt, kw):
    from PIL import Image, features

    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow build has no WebP (the hand-made headers below cover it)")

    for k, size in enumerate([(1, 1), (17, 5), (300, 211), (4001, 3)]):
        data = encode(fmt, size, seed=k, **kw)
        with Image.open(io.BytesIO(data)) as im:
            want = im.size
        assert want == size
        assert _C._image_header_size(data) == want, (fmt, size)


def test_header_size_jpeg_after_large_app_segment(tmp_path):
    from PIL import Image

    data = encode("JPEG", (33, 44))
    # a 65,533-byte APP1 payload twice: the SOF sits ~131 KB in, past the first 64 KiB read
    seg = b"\xff\xe1" + (65535).to_bytes(2, "big") + b"E" * 65533
    big = data[:2] + seg + seg + data[2:]
    with Image.open(io.BytesIO(big)) as im:
        assert im.size == (33, 44)
    assert _C._image_header_size(big) == (33, 44)
    assert _C._image_header_size(big[:70000]) is None  # size beyond the bytes given
    p = tmp_path / "big.jpg"
    p.write_bytes(big)
    blob = np.frombuffer(b"big.jpg", np.uint8)
    assert _C._read_image_sizes(str(tmp_path), blob, np.array([0, 7]), 1).tolist() == [[33, 44]]


def test_header_size_webp_chunks():
    """WebP headers written by hand from the container spec (RIFF, VP8L / VP8X / VP8)."""
    def riff(chunk):
        return b"RIFF" + (len(chunk) + 4).to_bytes(4, "little") + b"WEBP" + chunk

    w, h = 1234, 77
    bits = (w - 1) | ((h - 1) << 14)
    vp8l = riff(b"VP8L" + (5).to_bytes(4, "little") + b"\x2f" + bits.to_bytes(4, "little") + b"\0" * 8)
    vp8x = riff(b"VP8X" + (10).to_bytes(4, "little") + b"\0" * 4 + (w - 1).to_bytes(3, "little")
                + (h - 1).to_bytes(3, "little") + b"\0" * 8)
    vp8 = riff(b"VP8 " + (10).to_bytes(4, "little") + b"\0\0\0\x9d\x01\x2a"
               + w.to_bytes(2, "little") + (h | 0x4000).to_bytes(2, "little") + b"\0" * 4)
    assert [_C._image_header_size(x) for x in (vp8l, vp8x, vp8)] == [(w, h)] * 3


def test_header_size_refuses_garbage_and_truncation():
    for data in [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a\x01", b"BM" + b"\0" * 30,
                 b"P6\n12", b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 20, b"not an image at all",
                 encode("PNG", (9, 9))[:20], encode("JPEG", (9, 9))[:100]]:
        assert _C._image_header_size(data) is None, data[:12]
    # zero width in a PNG IHDR
    png = bytearray(encode("PNG", (5, 6)))
    png[16:20] = b"\0\0\0\0"
    assert _C._image_header_size(bytes(png)) is None


def test_read_image_sizes_marks_unparsed_and_missing(tmp_path):
    (tmp_path / "a.png").write_bytes(encode("PNG", (7, 8)))
    (tmp_path / "b.tif").write_bytes(encode("TIFF", (3, 4)))
    names = [b"a.png", b"b.tif", b"gone.jpg"]
    blob = np.frombuffer(b"".join(names), np.uint8)
    off = np.cumsum([0] + [len(n) for n in names]).astype(np.int64)
    out = _C._read_image_sizes(str(tmp_path), blob, off, 2)
    assert out.tolist() == [[7, 8], [-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match="offsets"):
        _C._read_image_sizes(str(tmp_path), blob, off[::-1].copy(), 1)


# ------------------------------------------------------------------ ImageFolder on the index
def test_fingerprint_and_listing_unchanged(tmp_path):
    """Stores record the fingerprint: it must be what main computed before the index."""
    pinned_tree(tmp_path / "t")
    ds = tinyvit.ImageFolder(tmp_path / "t")
    assert ds.fingerprint() == PINNED_FINGERPRINT
    classes, rel, labels, sizes = old_listing(tmp_path / "t", IMG_EXTENSIONS)
    assert ds.classes == classes and list(ds.relpaths) == rel
    assert ds.targets.tolist() == labels and ds.sizes.tolist() == sizes
    # reopened from the cached index: same answers, without rebuilding
    again = tinyvit.ImageFolder(tmp_path / "t")
    assert again.index_path == ds.index_path and os.path.exists(ds.index_path)
    assert again.fingerprint() == PINNED_FINGERPRINT and list(again.relpaths) == rel
    mem = tinyvit.ImageFolder(tmp_path / "t", index=False)
    assert mem.index_path is None and mem.fingerprint() == PINNED_FINGERPRINT


def test_old_store_still_matches_and_other_tree_is_refused(tmp_path):
    from tinyvit.store import check_compatible

    pinned_tree(tmp_path / "t")
    ds = tinyvit.ImageFolder(tmp_path / "t")
    store = tinyvit.LogitStore.create(str(tmp_path / "s"), len(ds), 10, 2, aug_fingerprint="x",
                                      dataset_fingerprint=PINNED_FINGERPRINT)
    check_compatible(store, dataset=ds)  # a store saved before the index still opens
    os.rename(tmp_path / "t" / "dog" / "z.jpg", tmp_path / "t" / "dog" / "w.jpg")
    with pytest.raises(tinyvit.errors.DatasetMismatchError):
        check_compatible(store, dataset=tinyvit.ImageFolder(tmp_path / "t"))


def _builds(monkeypatch):
    calls = []
    real = fx.build_folder_index

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(fx, "build_folder_index", counting)
    return calls


def test_index_is_reused_and_revalidated(tmp_path, monkeypatch):
    calls = _builds(monkeypatch)
    pinned_tree(tmp_path / "t")
    t = tmp_path / "t"
    n0 = len(tinyvit.ImageFolder(t))
    tinyvit.ImageFolder(t)
    assert len(calls) == 1
    time.sleep(0.01)
    (t / "cat" / "sub" / "deep" / "new.jpg").write_bytes(b"x" * 9)  # deep change
    ds = tinyvit.ImageFolder(t)
    assert len(calls) == 2 and len(ds) == n0 + 1 and "cat/sub/deep/new.jpg" in list(ds.relpaths)
    os.unlink(t / "emu" / "sub b" / "1.tif")
    assert len(tinyvit.ImageFolder(t)) == n0 and len(calls) == 3
    (t / "fox").mkdir()
    (t / "fox" / "f.jpg").write_bytes(b"f" * 4)
    ds = tinyvit.ImageFolder(t)
    assert "fox" in ds.classes and len(calls) == 4
    # a file rewritten in place (other size): only validate='full' sees it
    before = tinyvit.ImageFolder(t).fingerprint()
    with open(t / "dog" / "z.jpg", "ab") as f:
        f.write(b"more")
    assert tinyvit.ImageFolder(t).fingerprint() == before  # 'dirs': directory mtimes only
    full = tinyvit.ImageFolder(t, validate="full")
    assert full.fingerprint() != before
    assert full.fingerprint() == tinyvit.ImageFolder(t, index=False).fingerprint()


def test_corrupt_or_foreign_index_is_rebuilt(tmp_path):
    pinned_tree(tmp_path / "t")
    ds = tinyvit.ImageFolder(tmp_path / "t")
    path = ds.index_path
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ix.IndexError_, match="truncated"):
        ix.ImageIndex(path)
    assert tinyvit.ImageFolder(tmp_path / "t").fingerprint() == PINNED_FINGERPRINT
    with open(path, "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(ix.IndexError_, match="magic"):
        ix.ImageIndex(path)
    assert tinyvit.ImageFolder(tmp_path / "t").fingerprint() == PINNED_FINGERPRINT
    # an explicit index path that belongs to another folder is rebuilt, not trusted
    pinned_tree(tmp_path / "u")
    os.unlink(tmp_path / "u" / "cat" / "a.jpg")
    other = tinyvit.ImageFolder(tmp_path / "u", index=path)
    assert len(other) == 10 and other.fingerprint() != PINNED_FINGERPRINT


def test_concurrent_starts_build_once(tmp_path):
    pinned_tree(tmp_path / "t")
    log = tmp_path / "builds.log"
    code = (
        "import sys, tinyvit.data.folder_index as fx, tinyvit\n"
        "real = fx.build_folder_index\n"
        "def b(*a, **k):\n"
        f"    open({str(log)!r}, 'a').write('x')\n"
        "    import time; time.sleep(0.5); return real(*a, **k)\n"
        "fx.build_folder_index = b\n"
        f"print(tinyvit.ImageFolder({str(tmp_path / 't')!r}).fingerprint())\n")
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert outs == [PINNED_FINGERPRINT] * 4
    assert log.read_text() == "x"  # one builder; the others waited and mapped its file


def test_source_sizes_from_index_and_pillow_fallback(tmp_path):
    from PIL import Image

    t = tmp_path / "t"
    (t / "a").mkdir(parents=True)
    (t / "b").mkdir()
    want = {"a/0.jpg": (31, 7), "a/1.png": (5, 90), "a/2.tif": (12, 13), "b/3.gif": (64, 48),
            "b/4.bmp": (3, 2), "b/5.jpg": None}
    for rel, size in want.items():
        fmt = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF", "gif": "GIF",
               "bmp": "BMP"}[rel.rsplit(".", 1)[1]]
        (t / rel).write_bytes(encode(fmt, size) if size else b"\xff\xd8\xffbroken")
    ds = tinyvit.ImageFolder(t)
    for i, rel in enumerate(ds.relpaths):
        if want[rel] is None:
            with pytest.raises(tinyvit.errors.ImageDecodeError, match="5.jpg"):
                ds.source_sizes([i])
            continue
        with Image.open(t / rel) as im:
            assert ds.source_sizes([i]).tolist() == [list(im.size)]
    assert ds._wh[list(ds.relpaths).index("a/2.tif")].tolist() == [12, 13]  # Pillow, at build


def test_pickled_dataset_carries_the_path_not_the_listing(tmp_path):
    t = tmp_path / "t"
    for c in range(3):
        (t / f"c{c}").mkdir(parents=True)
        for i in range(400):
            (t / f"c{c}" / f"image_{i:05d}.jpg").write_bytes(b"j" * (i % 7 + 1))
    ds = tinyvit.ImageFolder(t)
    blob = pickle.dumps(ds)
    assert len(blob) < 2000, len(blob)  # 1200 files: no per-file data travels to workers
    back = pickle.loads(blob)
    assert back.fingerprint() == ds.fingerprint() and back[777] == ds[777]
    assert back.targets.tolist() == ds.targets.tolist()
    sub = tinyvit.open_dataset(str(t), subset=10)
    back = pickle.loads(pickle.dumps(sub))
    assert len(back) == 10 and list(back.relpaths) == list(sub.relpaths)
    assert back.fingerprint() == sub.fingerprint() != ds.fingerprint()
    mem = tinyvit.ImageFolder(t, index=False)
    assert pickle.loads(pickle.dumps(mem)).fingerprint() == ds.fingerprint()


def test_subset_matches_old_subset(tmp_path):
    pinned_tree(tmp_path / "t")
    _, rel, labels, sizes = old_listing(tmp_path / "t", IMG_EXTENSIONS)
    sub = tinyvit.open_dataset(str(tmp_path / "t"), subset=4)
    keep = np.unique(np.linspace(0, len(rel) - 1, 4).round().astype(np.int64))
    assert list(sub.relpaths) == [rel[i] for i in keep]
    assert sub.targets.tolist() == [labels[i] for i in keep]
    import hashlib

    h = hashlib.sha256(b"tinyvit-imagefolder-v1\0")
    for i in keep:
        h.update(rel[i].encode() + b"\0" + str(sizes[i]).encode() + b"\n")
    assert sub.fingerprint() == "if1-" + h.hexdigest()[:32]


# ------------------------------------------------------------- issue 22: a cache never changes a dataset
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fuzz_index as F  # noqa: E402  (the campaign's tree, shards and file surgery)


def _view(ds):
    return F._view(ds)


@pytest.fixture()
def pristine(tmp_path):
    """A folder tree and two shards, their index files, and the pristine views."""
    F._W.clear()
    F._W["base"] = str(tmp_path)
    F._W["folder"] = str(tmp_path / "tree")
    F._make_folder(F._W["folder"])
    (tmp_path / "shards").mkdir()
    F._W["shards"] = F._make_shards(str(tmp_path / "shards"))
    out = {}
    for kind in ("folder", "tarshards"):
        path = str(tmp_path / f"{kind}.tvi")
        out[kind] = (path, _view(F._open(kind, path)), open(path, "rb").read())
    return out


def _rewrite(path, raw, edit=None, body_edit=None, reseal=False):
    header, body = F._split(raw)
    body = bytearray(body)
    if body_edit:
        name = body_edit(header, body)
        if reseal:
            header = F._reseal_array(header, body, name)
    if edit:
        header = edit(header)
    with open(path, "wb") as f:
        f.write(F._join(header, bytes(body), reseal=reseal))


def _pop(*keys):
    def edit(h):
        d = h
        for k in keys[:-1]:
            d = d[k]
        d.pop(keys[-1])
        return h
    return edit


def _set(value, *keys):
    def edit(h):
        d = h
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
        return h
    return edit


HEADER_DEFECTS = {  # each raised AttributeError / KeyError / TypeError / ValueError before
    "json list": ("folder", lambda h: [h]),
    "no arrays": ("folder", _pop("arrays")),
    "no dir_mtime": ("folder", _pop("arrays", "dir_mtime")),
    "garbage dtype": ("folder", _set("zz", "arrays", "label", "dtype")),
    "shape not a list": ("folder", _set(7, "arrays", "wh", "shape")),
    "classes a string": ("folder", _set("cat", "classes")),
    "no shard_size": ("tarshards", _pop("shard_size")),
    "shard_mtime ints as str": ("tarshards", _set(["1", "2"], "shard_mtime")),
    "count a bool": ("tarshards", _set(True, "count")),
    "kind a list": ("folder", _set(["folder"], "kind")),  # fuzz_index found: unhashable
}


@pytest.mark.parametrize("reseal", [False, True], ids=["plain", "resealed"])
@pytest.mark.parametrize("defect", sorted(HEADER_DEFECTS))
def test_a_corrupt_header_structure_is_refused_and_rebuilt(pristine, defect, reseal):
    kind, edit = HEADER_DEFECTS[defect]
    path, want, raw = pristine[kind]
    _rewrite(path, raw, edit=edit, reseal=reseal)
    with pytest.raises(ix.IndexError_, match="index '.*tvi'"):
        ix.ImageIndex(path)
    assert _view(F._open(kind, path)) == want  # rebuilt: the same dataset
    ix.ImageIndex(path)  # and the file on disk is whole again


def _poke(name, value, k=0):
    def body_edit(header, body):
        a = F._array_view(header, body, name).copy()
        a[k] = value
        spec = header["arrays"][name]
        body[spec["offset"]:spec["offset"] + a.nbytes] = a.tobytes()
        return name
    return body_edit


CONTENT_EDITS = {  # each was used silently before, even with validate='full'
    "label": ("folder", _poke("label", 1), None),
    "path byte": ("folder", _poke("path_blob", ord("z"), 2), None),
    "path offset": ("folder", _poke("path_off", 3, 1), None),
    "width/height": ("folder", _poke("wh", 0, 0), None),
    "size": ("tarshards", _poke("size", 1, 0), None),
    "fingerprint": ("folder", None, _set("if1-" + "0" * 32, "fingerprint")),
    "class name": ("folder", None, _set(["ant", "bee", "cow"], "classes")),
    "shard offset": ("tarshards", _poke("offset", 0, 1), None),
}


@pytest.mark.parametrize("validate", ["none", "full"])
@pytest.mark.parametrize("what", sorted(CONTENT_EDITS))
def test_edited_contents_are_caught_by_the_checksum_and_rebuilt(pristine, what, validate):
    kind, body_edit, edit = CONTENT_EDITS[what]
    path, want, raw = pristine[kind]
    _rewrite(path, raw, edit=edit, body_edit=body_edit)
    with pytest.raises(ix.IndexError_, match="checksum mismatch"):
        ix.ImageIndex(path)
    ds = F._open(kind, path, validate) if kind == "folder" else F._open(kind, path)
    assert _view(ds) == want
    assert ds.source_sizes(np.arange(len(ds))).min() > 0  # no [0, 0] sizes


@pytest.mark.parametrize("kind,name,value", [
    ("folder", "path_off", 10 ** 6), ("folder", "label", 7), ("folder", "size", -1),
    ("folder", "dir_off", -3), ("tarshards", "shard", 5), ("tarshards", "offset", 10 ** 9),
    ("tarshards", "label", -2)])
def test_resealed_contents_that_break_an_invariant_are_refused(pristine, kind, name, value):
    """Behind the checksum: an index another writer got wrong is not trusted either."""
    path, want, raw = pristine[kind]
    _rewrite(path, raw, body_edit=_poke(name, value, 1), reseal=True)
    with pytest.raises(ix.IndexError_, match="index '.*tvi': "):
        ix.ImageIndex(path)
    assert _view(F._open(kind, path)) == want


def test_an_index_truncated_while_in_use_does_not_kill_the_process(pristine, tmp_path):
    """A mapped index died of SIGBUS (exit -7) on the next access to a page past the new end;
    it is private memory now: the open dataset is unchanged, a pickled copy is refused."""
    path, want, _ = pristine["folder"]
    code = (
        "import json, os, sys, pickle; sys.path.insert(0, sys.argv[1])\n"
        "import numpy as np, tinyvit\n"
        "ds = tinyvit.ImageFolder(sys.argv[2], index=sys.argv[3])\n"
        "blob = pickle.dumps(ds)\n"
        "os.truncate(sys.argv[3], 0)\n"
        "print(json.dumps([list(ds.relpaths), ds.targets.tolist(), ds.fingerprint()]))\n"
        "try:\n    pickle.loads(blob)\nexcept tinyvit.errors.DatasetError as e:\n    print('refused', e)\n")
    r = subprocess.run([sys.executable, "-c", code, ROOT, F._W["folder"], path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    import json

    lines = r.stdout.splitlines()
    assert json.loads(lines[0]) == [want[2], want[3], want[6]]
    assert lines[1].startswith("refused index") and "bad magic" in lines[1]


def test_names_that_are_not_utf8_work_end_to_end(tmp_path):
    """index, read (replay: the same pixels as the file's bytes), fingerprint, with and
    without the cached index; it raised UnicodeEncodeError naming no file before."""
    from tinyvit.augment.replay import replay, replay_batch

    root = os.fsencode(str(tmp_path / "t"))
    names = [(b"caf\xe9", b"a.jpg"), (b"caf\xe9", b"\xff\xfe.jpg"), (b"ok", b"b\x80.png")]
    for k, (cls, f) in enumerate(names):
        os.makedirs(root + b"/" + cls, exist_ok=True)
        with open(root + b"/" + cls + b"/" + f, "wb") as fh:
            fh.write(encode("JPEG" if f.endswith(b"jpg") else "PNG", (9 + k, 7), seed=k))
    import hashlib

    h = hashlib.sha256(b"tinyvit-imagefolder-v1\0")  # the reference, from the raw bytes
    for cls, f in sorted(names):
        h.update(cls + b"/" + f + b"\0" + str(os.path.getsize(root + b"/" + cls + b"/" + f)).encode()
                 + b"\n")
    cfg = tinyvit.AugConfig(img_size=16)
    for index in (None, False):
        ds = tinyvit.ImageFolder(os.fsdecode(root), index=index)
        assert [os.fsencode(p) for p in ds.relpaths] == [c + b"/" + f for c, f in sorted(names)]
        assert ds.fingerprint() == "if1-" + h.hexdigest()[:32]
        assert ds.source_sizes([0, 1, 2]).tolist() == [[9, 7], [10, 7], [11, 7]]
        raw = [open(os.fsencode(ds[i]), "rb").read() for i in range(3)]
        got = replay_batch([ds[i] for i in range(3)], np.arange(3), cfg)
        assert bool((got == replay_batch(raw, np.arange(3), cfg)).all())
        assert bool((replay(ds[1], 5, cfg) == replay(raw[1], 5, cfg)).all())
    with pytest.raises(OSError, match=r"caf\\xe9"):
        replay(ds[0] + "-gone", 0, cfg)


def test_an_unreadable_directory_is_refused_naming_it(tmp_path, monkeypatch):
    """Root reads a 0000 directory, so the failing listing is simulated (os.scandir raising
    EACCES for one class); a real chmod runs too when the tests are not root."""
    pinned_tree(tmp_path / "t")
    real = os.scandir
    bad = str(tmp_path / "t" / "dog")

    def scandir(p="."):
        if os.fspath(p) == bad:
            raise PermissionError(13, "Permission denied", p)
        return real(p)

    monkeypatch.setattr(ix.os, "scandir", scandir)
    for index in (None, False):
        with pytest.raises(tinyvit.errors.DatasetError, match=r"cannot list directory .*/t/dog'"):
            tinyvit.ImageFolder(tmp_path / "t", index=index)
    monkeypatch.setattr(ix.os, "scandir", real)
    ds = tinyvit.ImageFolder(tmp_path / "t", validate="full")  # readable again: all of it
    assert ds.fingerprint() == PINNED_FINGERPRINT
    if os.geteuid() != 0:  # pragma: no cover - CI runs as root here
        os.chmod(tmp_path / "t" / "emu", 0)
        try:
            with pytest.raises(tinyvit.errors.DatasetError, match="emu"):
                tinyvit.ImageFolder(tmp_path / "t", index=False)
        finally:
            os.chmod(tmp_path / "t" / "emu", 0o755)


def test_an_image_named_fifo_is_refused_not_waited_on(tmp_path):
    pinned_tree(tmp_path / "t")
    os.mkfifo(tmp_path / "t" / "cat" / "pipe.jpg")
    code = ("import sys, tinyvit\n"
            "try:\n    tinyvit.ImageFolder(sys.argv[1], index=False)\n"
            "except tinyvit.errors.DatasetError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t")], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0 and "pipe.jpg' has an image extension but is not a regular" in r.stdout


def test_an_unreadable_file_is_an_oserror_naming_it(tmp_path):
    """The docs promise: undecodable -> ImageDecodeError, unreadable -> OSError, both naming
    the path. As root a 0000 file is readable, so the entry is made unreadable another way
    (replaced by a directory after indexing); a real chmod runs when not root."""
    from tinyvit.augment.replay import replay

    pinned_tree(tmp_path / "t")
    ds = tinyvit.ImageFolder(tmp_path / "t", validate="none")
    i = list(ds.relpaths).index("dog/z.jpg")
    os.unlink(ds[i])
    os.mkdir(ds[i])
    cfg = tinyvit.AugConfig(img_size=16)
    for call in (lambda: replay(ds[i], 0, cfg), lambda: ds.source_sizes([i])):
        with pytest.raises(OSError, match="dog/z.jpg") as e:
            call()
        assert not isinstance(e.value, tinyvit.errors.ImageDecodeError)
    if os.geteuid() != 0:  # pragma: no cover
        p = ds[list(ds.relpaths).index("dog/y.webp")]
        os.chmod(p, 0)
        with pytest.raises(PermissionError, match="y.webp"):
            replay(p, 0, cfg)


def test_index_fuzz_campaign_small():
    """~60 cases of benchmarks/fuzz_index.py through the bounded worker (2 s, 256 MiB):
    every mutation ends in the pristine dataset or a typed DatasetError."""
    res = F.campaign(60, seed=22)
    assert res["failures"] == 0, res["first_failures"][:3]
    assert res["outcomes"]["same"] > 0 and res["outcomes"]["refused"] > 0
    assert sum(1 for v in res["per_kind"].values() if v) >= 8


def test_the_cli_rebuilds_a_corrupt_index_and_names_an_unusable_one(run_cli, tmp_path, monkeypatch):
    """Through `tinyvit save-logits --data DIR`: a corrupt header is rebuilt (it gave
    AttributeError / KeyError tracebacks), an index path that cannot be a file and an
    unlistable class are one-line errors (exit 2) naming them."""
    tree = str(tmp_path / "tree")
    F._make_folder(tree)
    args = ["--data", tree, "--model", "test_resnet", "--random-teacher", "--epochs", "1",
            "--topk", "2", "--batch-size", "8", "--no-progress", "--device", "cpu",
            "--img-size", "16"]
    assert run_cli("save-logits", tmp_path / "s0", *args)[0] == 0
    fp = _store_fp(tmp_path / "s0")
    path = tinyvit.ImageFolder(tree).index_path
    raw = open(path, "rb").read()
    for k, edit in enumerate((lambda h: [h], _pop("arrays"), _set("zz", "arrays", "size", "dtype"))):
        _rewrite(path, raw, edit=edit, reseal=True)
        code, out, err = run_cli("save-logits", tmp_path / f"s{k + 1}", *args)
        assert code == 0 and "Traceback" not in err, err
        assert _store_fp(tmp_path / f"s{k + 1}") == fp
    os.unlink(path)
    os.mkdir(path)
    line = one_line(run_cli("save-logits", tmp_path / "s9", *args))
    assert os.path.basename(path) in line and "cannot write it: Is a directory" in line
    os.rmdir(path)
    real = os.scandir
    monkeypatch.setattr(ix.os, "scandir", lambda p=".": (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", p)) if os.fspath(p).endswith("/bee") else real(p))
    os.utime(tree)  # the cached index is stale: the build must list again
    line = one_line(run_cli("save-logits", tmp_path / "s10", *args))
    assert "cannot list directory" in line and "/tree/bee'" in line


def one_line(result):
    code, out, err = result
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


def _store_fp(path):
    s = tinyvit.LogitStore.open(str(path), mode="r")
    m = s.manifest
    fp = (m() if callable(m) else m)["dataset_fingerprint"]
    s.close()
    return fp
