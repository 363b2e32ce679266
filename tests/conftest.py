"""Shared test helpers, as fixtures: the one image generator, the one store, the one small dataset.

Test files in every area (tests/augment, tests/store, tests/loss, tests/models, ...) take these
instead of growing their own copies. Everything is deterministic (fixed seeds), offline (no
downloads; the photo is scikit-image's bundled astronaut) and cheap.
"""
import io
import os
import sys
import tempfile

import numpy as np
import pytest

# Tests import the package from the checkout (in-place build or editable install).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# ImageFolder / TarShards cache their index: keep the tests' indexes out of ~/.cache.
os.environ.setdefault("TINYVIT_INDEX_DIR", tempfile.mkdtemp(prefix="tinyvit-test-index-"))

class TestImages:
    """The one generator of test images: arrays, a natural photo, encoded files."""

    __test__ = False  # a helper, not a test class (pytest collects names starting with Test)

    def __init__(self):
        self._astronaut = None

    @staticmethod
    def noise(h, w, seed=0, flat_block=False):
        """uint8 (h, w, 3) uniform noise; ``flat_block`` paints the top-left (h/2, w/3) block a
        saturated colour, giving flat regions and hard edges (clamping extremes for filters)."""
        rng = np.random.default_rng(seed)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if flat_block:
            img[: h // 2, : w // 3] = (0, 255, 7)
        return img

    def photo(self, w=500, h=375):
        """A natural RGB photo as a ``PIL.Image`` of (w, h): real edges, textures and smooth
        areas, which is what decode / resize / RandAugment paths must be judged on."""
        from PIL import Image

        if self._astronaut is None:
            import skimage.data as sd

            self._astronaut = Image.fromarray(sd.astronaut())
        return self._astronaut.resize((w, h), Image.BICUBIC)

    @staticmethod
    def encode(img, fmt="JPEG", **kw):
        """Encoded bytes of a ``PIL.Image`` or a uint8 array (``quality=``, ``progressive=``,
        ``subsampling=`` ... as Pillow's ``save``)."""
        from PIL import Image

        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()


@pytest.fixture(scope="session")
def testimg():
    return TestImages()


@pytest.fixture(scope="session")
def photo(testimg):
    """The 500x375 photo (PIL). Treat as read-only: it is shared by the whole session."""
    return testimg.photo()


@pytest.fixture(scope="session")
def jpeg(testimg, photo):
    """The photo as a quality-90 baseline JPEG (bytes)."""
    return testimg.encode(photo, quality=90)


def _teacher_topk(n, C, K, seed):
    """(seeds int64[n], indices int64[n, K], probs float32[n, K]): the top-K (descending) of
    softmax(logits) of a peaked random teacher, i.e. what a teacher pass writes to a store."""
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, generator=g) * 2.5
    logits[torch.arange(n), torch.randint(0, C, (n,), generator=g)] += 8  # a confident class
    v, i = logits.softmax(-1).topk(K)
    seeds = torch.randint(0, 2 ** 32, (n,), generator=g)
    return seeds, i, v


@pytest.fixture(scope="session")
def teacher_topk():
    """Factory ``teacher_topk(n, C, K, seed) -> (seeds, indices, probs)``."""
    return _teacher_topk


@pytest.fixture
def small_store(tmp_path):
    """Path of a closed store: N = 20 samples, C = 100, K = 4, 2 epochs, aug_fingerprint
    "aug", meta {"note": 1}; epoch 0 has samples 0..9 written (``teacher_topk(10, 100, 4,
    seed=5)``), samples 10..19 and epoch 1 are missing."""
    import torch
    from tinyvit import LogitStore

    s = LogitStore.create(tmp_path / "s", 20, 100, 4, aug_fingerprint="aug", epochs=2,
                          meta={"note": 1})
    seeds, idx, v = _teacher_topk(10, 100, 4, seed=5)
    s.write(0, torch.arange(10), seeds, idx, v)
    s.close()
    return tmp_path / "s"


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch intra-op threads set to 1 for a module (``pytestmark =
    pytest.mark.usefixtures("one_torch_thread")``): tiny models on a shared 2-core box only gain
    OpenMP contention from more, and a descheduled pool thread stalls every parallel op."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv) -> (exit code, stdout, stderr)``: ``tinyvit.cli.main`` in-process
    (fast); argparse's SystemExit gives the code; output before the call is discarded."""
    def run(*argv):
        from tinyvit.cli import main

        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.fixture(scope="session")
def small_dataset(testimg):
    """A 40-image in-memory ``tinyvit.ArrayDataset``: uint8 24x32x3 crops of the photo,
    labels i % 10 (10 classes). Needs no installed data set."""
    import tinyvit

    base = np.asarray(testimg.photo(320, 96))
    imgs = np.stack([base[(i // 10) * 24:(i // 10 + 1) * 24, (i % 10) * 32:(i % 10 + 1) * 32]
                     for i in range(40)])
    return tinyvit.ArrayDataset(imgs, np.arange(40) % 10, name="small")
