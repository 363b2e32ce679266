"""benchmarks/gpu_check.py (`make gpu-check`) in dry-run mode, so that the one command a rare,
short-lived GPU machine gets cannot rot: every stage's code path runs on the CPU at tiny sizes."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_check  # noqa: E402

STAGES = [name for name, _ in gpu_check.STAGE_CAPS]


def run_check(tmp_path, *args, timeout=900):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, SCRIPT, "--dry-run", "--out", str(out), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() else None
    return p, report


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    # Budget and caps generous for a shared 2-core CI box; on an idle machine this takes ~1-2 min.
    return run_check(tmp_path_factory.mktemp("gpu_check"), "--budget-s", "780", "--cap-scale", "2.5")


def test_every_stage_runs_in_dry_run(dry_run):
    p, report = dry_run
    assert report is not None, p.stdout[-3000:] + p.stderr[-3000:]
    bad = {n: s for n, s in report["stages"].items() if s["status"] != "ok"}
    assert not bad and p.returncode == 0, (bad, p.stdout[-3000:], p.stderr[-3000:])
    assert report["dry_run"] is True and list(report["stages"]) == STAGES
    for key in ("commit", "torch", "torch_cuda", "python", "cpu"):
        assert key in report["machine"]
    assert "DRY RUN" in p.stdout and "no GPU figure" in p.stdout
    for name in STAGES:
        assert f"{name:<11} ok" in p.stdout  # the stdout table names every stage


def test_dry_run_results_cover_every_measure(dry_run):
    st = dry_run[1]["stages"]
    assert "skipped" in st["build"]["result"] and st["build"]["result"]["build_info"].get("cuda") is not None
    assert st["tests"]["result"]["files"] and "tests/loss/test_loss.py" in st["tests"]["result"]["files"]
    assert "tests/gpu/test_gpu_check.py" not in st["tests"]["result"]["files"]  # no recursion
    loss = st["loss"]["result"]
    assert {r["dtype"] for r in loss["rows"]} == {"fp32", "bf16", "fp16"}
    for row in loss["rows"]:
        for m in ("dense", "ours", "ours_gif"):
            assert row["methods"][m]["median_ms"] > 0 and row["methods"][m]["peak_extra_bytes"] > 0, (row, m)
    assert "compiled_dense" in st["loss"]["reason"]  # the one skipped method is named, with why
    assert loss["targets"]["evaluated"] is False
    agr = st["agreement"]["result"]
    assert agr["passed"] and len(agr["loss"]) == 4 and len(agr["device_ops"]) == 3
    assert [o["ops"] for o in st["device_ops"]["result"]["ops"]][0] == "normalize"
    assert "skipped" in st["device_ops"]["result"]["h2d"]
    assert st["models"]["result"]["rows"][0]["img_s"] > 0
    modes = st["train"]["result"]["modes"]
    assert set(modes) == {"hard", "stored_kd", "online_kd"} and all(m["img_s"] > 0 for m in modes.values())
    assert all(m["final_loss"] == m["final_loss"] for m in modes.values())  # not NaN


def test_spent_budget_skips_loudly(tmp_path):
    p, report = run_check(tmp_path, "--budget-s", "1", timeout=300)
    assert p.returncode == 1
    for name in STAGES:
        st = report["stages"][name]
        assert st["status"] == "skipped" and "budget spent" in st["reason"]
        assert f"== {name}: SKIPPED (budget spent" in p.stdout


def test_dry_run_never_overwrites_a_real_result(tmp_path):
    real = tmp_path / "gpu_check_h100.json"
    real.write_text(json.dumps({"dry_run": False, "stages": {"loss": {"status": "ok"}}}))
    with pytest.raises(SystemExit, match="refusing"):
        gpu_check.write_report(str(real), {"dry_run": True, "stages": {}})
    assert json.loads(real.read_text())["dry_run"] is False
    facts = {"gpu": "NVIDIA H100 80GB HBM3"}
    assert os.path.basename(gpu_check.default_out(True, facts)) == "gpu_check_dry_run.json"
    assert os.path.basename(gpu_check.default_out(False, facts)) == "gpu_check_nvidia_h100_80gb_hbm3.json"
