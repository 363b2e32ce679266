"""Short version of benchmarks/fuzz_images.py: corrupt / odd images of every kind through
replay, replay_batch (1 and 3 threads) and DistillLoader, every case under the bounded
harness (benchmarks/_bounded.py: 2 s and 256 MiB per case): 0 crashes, 0 hangs, 0 cases
over time or memory, 0 untyped errors, 0 silently wrong results."""
import os
import sys

import pytest

from tinyvit import _C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(not _C._jpeg_supported(), reason="built without libjpeg")
def test_fuzz_images_short():
    bench = os.path.join(ROOT, "benchmarks")
    sys.path.insert(0, bench)  # the spawned worker imports fuzz_images by name too
    try:
        import fuzz_images

        n = 2 * len(fuzz_images.KINDS)  # every kind twice (bytes/file variants differ by seed)
        r = fuzz_images.fuzz(cases=n, seconds=60, seed=1, loader_every=3)
    finally:
        sys.path.remove(bench)
    assert r["cases"] == n, r
    bad = {o: n for o, n in r["totals"].items() if o not in ("ok", "typed") and n}
    assert bad == {}, r["problems"]
    # both outcomes really occur: the cases are not all refused nor all accepted
    assert r["totals"]["ok"] > 0 and r["totals"]["typed"] > 0
    assert sum(r["per_target"]["loader"].values()) > 0
