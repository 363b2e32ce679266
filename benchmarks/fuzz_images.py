"""Corrupt and odd images through the pixel path: replay, replay_batch (1 and N threads) and
DistillLoader. Every case runs through benchmarks/_bounded.py (a spawned worker, each case
bounded to 2 s and 256 MiB of peak-RSS growth under a relative RLIMIT_AS), so a crash, a
hang or an unbounded case is counted, not fatal. Outcome per (case, target):

  ok       pixels of the right shape, equal to replay() of the same (source, seed)
  typed    ImageDecodeError / OSError / ValueError / TypeError whose message names the source
           (and "(batch item i)" inside a batch)
  untyped  any other exception, or a typed one that does not name the source
  wrong    pixels that differ between the entry points (silently wrong)
plus the harness's crash / hang / over_time / over_memory (counted once per target of the case).

    python benchmarks/fuzz_images.py --cases 3000 --seconds 600

Prints the counts and writes benchmarks/results/fuzz_images.json; exits 1 on any failure.
The test suite runs a short version (tests/augment/test_fuzz_images.py).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

IMG = 32  # output size: small, the decoders do the interesting work
OUTCOMES = ("ok", "typed", "untyped", "wrong", "crash", "hang", "over_time", "over_memory")
TARGETS = ("replay", "replay_batch_1t", "replay_batch_3t", "loader")
_STATE: dict = {}


# ------------------------------------------------------------------ case generation
def _photo(rng, w, h):
    from PIL import Image

    base = rng.integers(0, 256, (max(1, h // 4), max(1, w // 4), 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BILINEAR)


def _enc(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def _png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_huge(w, h, color_type=3):
    """A PNG whose header declares w x h (a decompression bomb) with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", ihdr)]
    if color_type == 3:
        chunks.append(_png_chunk(b"PLTE", bytes(range(48))))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)))
    chunks.append(_png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _jpeg_huge(good: bytes, w, h):
    """good JPEG with its SOF dimensions rewritten to w x h (data far too short)."""
    b = bytearray(good)
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            break
        marker, seg = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", h, w)
            break
        i += 2 + seg
    return bytes(b)


def _flip(rng, data: bytes, n):
    b = bytearray(data)
    for _ in range(n):
        k = int(rng.integers(0, len(b)))
        b[k] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def _truncate(rng, data: bytes):
    return data[:int(rng.integers(0, len(data)))]


def _file(tmp, index, data, ext=".jpg"):
    p = os.path.join(tmp, f"case{index:06d}{ext}")
    with open(p, "wb") as f:
        f.write(data)
    return p


KINDS = [
    "jpeg_good", "jpeg_progressive", "jpeg_gray", "jpeg_cmyk", "jpeg_truncated", "jpeg_bitflip",
    "jpeg_bitflip_header", "jpeg_huge_dims", "jpeg_1x1", "png_good", "png_truncated",
    "png_bitflip", "png_palette", "png_16bit", "png_la", "png_1x1", "png_bomb", "gif", "bmp",
    "tiff", "random_bytes", "empty_file", "dir_named_jpg", "fifo_named_jpg", "sparse_huge_file",
    "pil_mode", "array_odd", "missing_file",
]


def make_case(index: int, seed: int, tmp: str):
    """-> (kind, source, name) for case `index`; name = what an error message must contain."""
    from PIL import Image

    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    w, h = int(rng.integers(8, 120)), int(rng.integers(8, 120))
    ph = _photo(rng, w, h)
    as_file = bool(rng.integers(0, 2))
    data = None
    if kind == "jpeg_good":
        data = _enc(ph, "JPEG", quality=int(rng.integers(30, 98)))
    elif kind == "jpeg_progressive":
        data = _enc(ph, "JPEG", quality=80, progressive=True)
    elif kind == "jpeg_gray":
        data = _enc(ph.convert("L"), "JPEG", quality=85)
    elif kind == "jpeg_cmyk":
        data = _enc(ph.convert("CMYK"), "JPEG", quality=85)
    elif kind == "jpeg_truncated":
        data = _truncate(rng, _enc(ph, "JPEG", quality=90))
    elif kind == "jpeg_bitflip":
        data = _flip(rng, _enc(ph, "JPEG", quality=90), int(rng.integers(1, 20)))
    elif kind == "jpeg_bitflip_header":
        good = _enc(ph, "JPEG", quality=90)
        b = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            k = int(rng.integers(2, min(len(b), 400)))
            b[k] = int(rng.integers(0, 256))
        data = bytes(b)
    elif kind == "jpeg_huge_dims":
        data = _jpeg_huge(_enc(ph, "JPEG", quality=90), int(rng.integers(20000, 65500)),
                          int(rng.integers(20000, 65500)))
    elif kind == "jpeg_1x1":
        data = _enc(ph.resize((1, 1)), "JPEG")
    elif kind == "png_good":
        data = _enc(ph, "PNG")
    elif kind == "png_truncated":
        data = _truncate(rng, _enc(ph, "PNG"))
    elif kind == "png_bitflip":
        data = _flip(rng, _enc(ph, "PNG"), int(rng.integers(1, 10)))
    elif kind == "png_palette":
        data = _enc(ph.convert("P", palette=Image.ADAPTIVE, colors=int(rng.integers(2, 256))), "PNG")
    elif kind == "png_16bit":
        arr = (np.asarray(ph.convert("L"), np.uint16) * 257).astype(np.uint16)
        data = _enc(Image.fromarray(arr), "PNG")
    elif kind == "png_la":
        data = _enc(ph.convert("LA"), "PNG")
    elif kind == "png_1x1":
        data = _enc(ph.resize((1, 1)).convert(str(rng.choice(["RGB", "L", "P", "RGBA"]))), "PNG")
    elif kind == "png_bomb":
        data = _png_huge(int(rng.integers(20000, 40000)), int(rng.integers(20000, 40000)),
                         int(rng.choice([0, 2, 3])))
    elif kind == "gif":
        data = _enc(ph.convert("P"), "GIF")
        if rng.integers(0, 2):
            data = _truncate(rng, data)
    elif kind == "bmp":
        data = _enc(ph, "BMP")
        if rng.integers(0, 2):
            data = _flip(rng, data, 4)
    elif kind == "tiff":
        data = _enc(ph, "TIFF")
        if rng.integers(0, 2):
            data = _truncate(rng, data)
    elif kind == "random_bytes":
        head = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"][int(rng.integers(0, 5))]
        data = head + rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
    elif kind == "empty_file":
        data = b""
    elif kind == "dir_named_jpg":
        p = os.path.join(tmp, f"case{index:06d}.jpg")
        os.makedirs(p, exist_ok=True)
        return kind, p, p
    elif kind == "fifo_named_jpg":
        p = os.path.join(tmp, f"case{index:06d}.jpg")
        if not os.path.exists(p):
            os.mkfifo(p)
        return kind, p, p
    elif kind == "sparse_huge_file":
        p = os.path.join(tmp, f"case{index:06d}.jpg")
        with open(p, "wb") as f:
            f.write(b"\xff\xd8\xff\xe0")
            f.truncate(int(rng.choice([(1 << 30) + 1, 1 << 34, 1 << 40])))
        return kind, p, p
    elif kind == "missing_file":
        p = os.path.join(tmp, f"nonexistent{index:06d}.jpg")
        return kind, p, p
    elif kind == "pil_mode":
        mode = str(rng.choice(["P", "L", "LA", "RGBA", "CMYK", "I;16", "I", "F", "1", "YCbCr"]))
        img = ph.convert(mode) if mode not in ("I;16",) else Image.fromarray(
            (np.asarray(ph.convert("L"), np.uint16) * 200).astype(np.uint16))
        return kind, img, "<PIL image>"
    elif kind == "array_odd":
        choice = int(rng.integers(0, 8))
        shape = [(h, w), (h, w, 1), (h, w, 3), (h, w, 4), (h, w, 2), (0, w, 3), (h, w, 3, 1),
                 (1, 1, 3)][choice]
        dtype = [np.uint8, np.uint16, np.float32, np.bool_, np.int64][int(rng.integers(0, 5))]
        arr = rng.random(shape).astype(dtype) if dtype in (np.float32, np.bool_) else \
            rng.integers(0, 255, shape).astype(dtype)
        if rng.integers(0, 3) == 0 and arr.ndim >= 2 and arr.shape[1] > 1:
            arr = arr[:, ::2]  # non-contiguous
        return kind, arr, "<array>"
    if as_file:
        p = _file(tmp, index, data, ".jpg" if kind.startswith("jpeg") or rng.integers(0, 2) else ".png")
        return kind, p, p
    return kind, data, f"<bytes len={len(data)}>"


# ------------------------------------------------------------------ running one case
def _classify(exc, name, batch_pos=None):
    from tinyvit.errors import ImageDecodeError

    msg = str(exc)
    named = name in msg and (batch_pos is None or f"(batch item {batch_pos})" in msg)
    if isinstance(exc, (ImageDecodeError, OSError, ValueError, TypeError)) and named:
        return "typed"
    return "untyped"


class _ListSet:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def warm() -> None:
    """Worker setup (benchmarks/_bounded.py): import the library, make the good JPEG."""
    import tinyvit

    good = _enc(_photo(np.random.default_rng(0), 64, 48), "JPEG", quality=90)
    tinyvit.replay(good, 0, tinyvit.AugConfig(img_size=IMG))
    _STATE["good"] = good


def run_case(case):
    """case = (index, seed, tmp, store_dir or None) -> (kind, {target: outcome}, details)."""
    import tinyvit

    index, seed, tmp, store_dir = case
    good_jpeg = _STATE["good"]

    cfg = tinyvit.AugConfig(img_size=IMG)
    kind, source, name = make_case(index, seed, tmp)
    res, detail = {}, {}
    ref = None
    try:
        ref = tinyvit.replay(source, index, cfg)
        res["replay"] = "ok" if ref.shape == (IMG, IMG, 3) else "wrong"
    except Exception as exc:  # noqa: BLE001 - classifying every exception is the point
        res["replay"] = _classify(exc, name)
        if res["replay"] == "untyped":
            detail["replay"] = f"{type(exc).__name__}: {exc}"[:300]
    for threads in (1, 3):
        key = f"replay_batch_{threads}t"
        try:
            out = tinyvit.replay_batch([good_jpeg, source, good_jpeg], [1, index, 2], cfg,
                                       num_threads=threads)
            if ref is None:
                res[key] = "wrong"  # replay refused what the batch accepted
            else:
                res[key] = "ok" if np.array_equal(out[1].numpy(), ref) else "wrong"
        except Exception as exc:  # noqa: BLE001
            res[key] = _classify(exc, name, 1)
            if res[key] == "untyped":
                detail[key] = f"{type(exc).__name__}: {exc}"[:300]
        if res[key] == "wrong":
            detail[key] = "differs from replay()" if ref is not None else "accepted, replay refused"
    if store_dir is not None:
        try:
            store = tinyvit.LogitStore.open(store_dir)
            ds = _ListSet([good_jpeg, source, good_jpeg, good_jpeg])
            loader = tinyvit.DistillLoader(ds, store, cfg, batch_size=4, num_threads=2)
            x = [b for b in loader]
            res["loader"] = "ok" if ref is not None and len(x) == 1 else "wrong"
        except Exception as exc:  # noqa: BLE001
            res["loader"] = _classify(exc, name)
            if res["loader"] == "untyped":
                detail["loader"] = f"{type(exc).__name__}: {exc}"[:300]
    return kind, res, detail


def _make_store(path, cfg):
    import tinyvit

    s = tinyvit.LogitStore.create(path, 4, 10, 2, aug_fingerprint=cfg.fingerprint(),
                                  meta={"base_seed": 0})
    idx = np.arange(4)
    s.write(0, idx, tinyvit.augment.seeds.sample_seeds(0, 0, idx).astype(np.int64),
            np.tile(np.array([[0, 1]], np.int64), (4, 1)), np.full((4, 2), 0.25, np.float32))
    s.close() if hasattr(s, "close") else None


def fuzz(cases: int, seconds: float, seed: int = 0, loader_every: int = 7,
         progress: bool = False, wall_s: float = 2.0, mem_mb: int = 256) -> dict:
    import tinyvit
    from _bounded import BoundedWorker

    counts = {t: Counter() for t in TARGETS}
    by_kind, problems = {}, []
    slowest = (0.0, None)
    t0, done = time.monotonic(), 0
    with tempfile.TemporaryDirectory(prefix="tinyvit_fuzz_") as tmp:
        store_dir = os.path.join(tmp, "store")
        _make_store(store_dir, tinyvit.AugConfig(img_size=IMG))
        with BoundedWorker("fuzz_images:run_case", setup="fuzz_images:warm", wall_s=wall_s,
                           mem_mb=mem_mb) as w:
            for index in range(cases):
                if time.monotonic() - t0 > seconds:
                    break
                kind = KINDS[index % len(KINDS)]
                with_loader = store_dir if index % loader_every == 0 else None
                out = w.run((index, seed, tmp, with_loader))
                if out.seconds > slowest[0]:
                    slowest = (out.seconds, kind)
                if out.status == "ok":
                    kind, res, detail = out.verdict
                else:  # the harness's verdict: the whole case counts once per target
                    res = {t: out.status for t in TARGETS[:3] + (("loader",) if with_loader else ())}
                    detail = {"case": f"{out.status}: {out.detail}"[:300],
                              "seconds": round(out.seconds, 2), "peak_mb": round(out.peak_mb, 1)}
                for target, o in res.items():
                    counts[target][o] += 1
                    by_kind.setdefault(kind, Counter())[o] += 1
                if detail:
                    problems.append(dict(index=index, kind=kind, detail=detail))
                done += 1
                if progress and done % 500 == 0:
                    print(f"  {done} cases, {time.monotonic() - t0:.0f} s", flush=True)
            restarts = w.restarts
    total = Counter()
    for c in counts.values():
        total.update(c)
    return dict(cases=done, seconds=round(time.monotonic() - t0, 1), seed=seed,
                limits=dict(wall_s=wall_s, mem_mb=mem_mb), worker_restarts=restarts,
                slowest_case=dict(seconds=round(slowest[0], 3), kind=slowest[1]),
                totals={o: total.get(o, 0) for o in OUTCOMES},
                per_target={t: {o: c.get(o, 0) for o in OUTCOMES} for t, c in counts.items()},
                per_kind={k: dict(c) for k, c in sorted(by_kind.items())},
                problems=problems[:200])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=900.0, help="stop starting cases after this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    from _common import cpu_model, git_revision, load_average

    r = fuzz(args.cases, args.seconds, args.seed, progress=True)
    r.update(machine=cpu_model(), git=git_revision(), load_average=load_average())
    print(f"{r['cases']} cases in {r['seconds']} s (slowest {r['slowest_case']})")
    print(f"{'target':18}" + "".join(f"{o:>12}" for o in OUTCOMES))
    for t, c in r["per_target"].items():
        print(f"{t:18}" + "".join(f"{c[o]:12d}" for o in OUTCOMES))
    print(f"{'total':18}" + "".join(f"{r['totals'][o]:12d}" for o in OUTCOMES))
    for p in r["problems"][:20]:
        print("  problem:", p)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fuzz_images.json"), "w") as f:
        json.dump(r, f, indent=1)
    bad = sum(r["totals"][o] for o in OUTCOMES if o not in ("ok", "typed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
