"""2-rank gloo runs (torchrun plain loop, Lightning strategy="ddp"), loader built before and
after process-group init: every rank's store reads are logged; per trainer epoch the store
epochs read are exactly [0, 1, 2], ranks disjoint, union complete."""
import os
import shutil
import subprocess
import sys

import pytest

import helpers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def torchrun(script, *args, timeout=240):
    torchrun_bin = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    cmd = ([torchrun_bin] if torchrun_bin else [sys.executable, "-m", "torch.distributed.run"])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", PL_DISABLE_FORK="1")
    r = subprocess.run(cmd + ["--standalone", "--nproc_per_node", "2", os.path.join(HERE, script),
                              *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("ddp") / "store"
    helpers.make_store(p, helpers.synthetic(32), epochs=3)
    return p


def logs(out, name):
    return [helpers.load_log(out / f"{name}.{r}.jsonl") for r in range(2)]


def test_torchrun_loop_before_and_after_init(store_path, tmp_path):
    torchrun("torchrun_worker.py", store_path, tmp_path)
    for name in ("before", "after"):
        helpers.check_ranks(logs(tmp_path, name), 32, [0, 1, 2])


def test_lightning_ddp_direct_loader_and_datamodule(store_path, tmp_path):
    pytest.importorskip("lightning")
    torchrun("lightning_worker.py", store_path, tmp_path)
    for name in ("direct", "datamodule"):
        helpers.check_ranks(logs(tmp_path, name), 32, [0, 1, 2])
