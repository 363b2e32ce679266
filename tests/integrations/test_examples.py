"""The examples run (one process, CPU) and train every store epoch in order."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = {"torchrun_loop.py": None, "accelerate_loop.py": "accelerate",
            "lightning_datamodule.py": "lightning", "timm_task.py": "timm"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name, tmp_path):
    if EXAMPLES[name]:
        pytest.importorskip(EXAMPLES[name])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    # -W: a deprecated top-level alias used by an example is an error (the message of every
    # tinyvit deprecation starts with "tinyvit."; third-party deprecations are not ours to fail on)
    r = subprocess.run([sys.executable, "-W", "error:tinyvit.:DeprecationWarning",
                        os.path.join(ROOT, "examples", name)], env=env,
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    if name != "lightning_datamodule.py":
        for e in range(3):
            assert f"epoch {e} (store epoch {e})" in r.stdout, r.stdout
    else:
        assert "store epoch of the last pass: 2" in r.stdout
