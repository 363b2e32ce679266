#!/usr/bin/env python
"""Every GPU claim of tinyvit checked by one command (`make gpu-check`), within a hard budget.

Made for a bare, offline, short-lived GPU machine whose Python already has torch (any recent
version, e.g. 2.11 + CUDA 13), torchvision, timm, pybind11, ninja, pytest, numpy: nothing is
installed, nothing pinned. Stages, in order, each in its own process with its own timeout
(a hung kernel or a slow compile cannot eat the whole budget), each timed:

  build       setup.py build_ext --inplace for this GPU's arch against the torch found
              (TINYVIT_CUDA=1, TORCH_CUDA_ARCH_LIST=<capability>; libjpeg used only if its
              headers exist); if the CUDA build fails, a CPU-only build so the rest still runs
  tests       every test file that mentions CUDA (found by grep), with pytest -rs
  loss        sparse CE fwd+bwd vs dense vs torch.compile(dense): fp32/bf16/fp16, B {256, 1024},
              C {1000, 21841}, K {10, 100}; time, peak extra memory, % of measured copy bandwidth
  agreement   CUDA vs CPU: loss + gradient (tolerances), device ops (bit-exact)
  device_ops  normalize/erase/mix throughput on 256 x 224^2 uint8; pageable vs pinned H2D
  models      TinyViT 5M/11M/21M inference, fp16 autocast, batch 256, beside the paper's V100
  train       100 AMP steps: hard labels vs stored-logit KD vs online KD (larger timm teacher)

Nothing is skipped silently: a stage that cannot run (budget spent, no GPU) is recorded and
printed with the reason. Results: benchmarks/results/gpu_check_<gpu>.json (device, driver,
torch/CUDA versions, commit, every stage) and a table on stdout.

Dry run (--dry-run, automatic without a CUDA device): the same stages on the CPU at tiny sizes
(the build stage only reports what it would run), written to gpu_check_dry_run.json, never over
a real result. tests/gpu/test_gpu_check.py runs it in CI.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

# (stage, timeout cap in s). The caps sum past the budget on purpose: each stage gets
# min(cap, what is left); typical H100-class times are far below the caps.
STAGE_CAPS = [("build", 240), ("tests", 150), ("loss", 180), ("agreement", 60), ("device_ops", 60),
              ("models", 90), ("train", 150)]
MIN_STAGE_S = 15  # a stage is not started with less than this left
# Files that exercise CUDA but must not run inside the check (this check's own dry-run test).
TEST_EXCLUDE = {"tests/gpu/test_gpu_check.py"}
# Within those files, the tests that touch CUDA or the CUDA build (pytest -k: names and modules).
TEST_SELECT = "cuda or sm70 or build_info"
# Files whose fixtures need a module a bare GPU machine may lack: dropped, loudly, without it.
TEST_NEEDS = {"tests/augment/test_pixels.py": "skimage"}


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU memory profiler's per-step banners
    return env


def machine_facts(dry_run):
    import platform

    import torch

    from _common import cpu_model, git_revision, load_average

    f = {"commit": git_revision(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
         "python": platform.python_version(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
         "loadavg_at_start": load_average(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for mod in ("timm", "torchvision", "numpy"):
        try:
            f[mod] = __import__(mod).__version__
        except ImportError:
            f[mod] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        f.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                 gpu_count=torch.cuda.device_count())
        driver_api = getattr(torch._C, "_cuda_getDriverVersion", None)
        f["cuda_driver_api"] = driver_api() if driver_api else None
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
            f["nvidia_smi"] = out.strip().splitlines()
            f["driver"] = out.split(",")[1].strip() if "," in out else None
        except (OSError, subprocess.SubprocessError) as exc:
            f["nvidia_smi"] = f"failed: {exc}"
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None) or "/usr/local/cuda/bin/nvcc"
    if os.path.exists(nvcc):
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"release ([\d.]+)", out)
        f["nvcc"] = {"path": nvcc, "release": m.group(1) if m else out.strip()[-80:]}
    else:
        f["nvcc"] = None
    f["dry_run"] = dry_run
    return f


def slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "gpu"


# ----------------------------------------------------------------------------------- stages
def run_build(facts, dry_run, timeout):
    """Returns the stage record's result; raises on a failed build."""
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    env = child_env()
    arch = facts.get("capability")
    env.update(TINYVIT_CUDA="1", TORCH_CUDA_ARCH_LIST=arch or "", MAX_JOBS=str(os.cpu_count() or 4))
    res = {"command": " ".join(cmd), "env": {k: env[k] for k in ("TINYVIT_CUDA", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS")},
           "jpeg": "TINYVIT_JPEG=auto: libjpeg when jpeglib.h is found, else built without it"}
    if dry_run:
        res["skipped"] = "dry run: not building (minutes of CPU); uses the existing tinyvit._C"
        res["build_info"] = ext_build_info()
        return res
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    res["cuda_build_s"] = time.perf_counter() - t0
    res["log_tail"] = (p.stdout + p.stderr)[-3000:]
    if p.returncode != 0:
        res["cuda_build_error"] = f"exit {p.returncode}"
        print(f"  CUDA build failed (exit {p.returncode}); trying a CPU-only build so the other stages run:\n"
              + res["log_tail"][-1500:], flush=True)
        env["TINYVIT_CUDA"] = "0"
        left = timeout - res["cuda_build_s"]
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(left, 1))
        res["cpu_only_build"] = {"exit": p.returncode, "log_tail": (p.stdout + p.stderr)[-1500:]}
        res["build_info"] = ext_build_info()
        if p.returncode != 0:
            raise RuntimeError("both the CUDA and the CPU-only build failed", res)
        raise RuntimeError("CUDA build failed (a CPU-only build serves the other stages): "
                           + res["log_tail"][-400:], res)
    res["build_info"] = ext_build_info()
    return res


def ext_build_info():
    p = subprocess.run([sys.executable, "-c", "import json, tinyvit; print(json.dumps(tinyvit.build_info()))"],
                       cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return {"error": (p.stdout + p.stderr)[-600:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def cuda_test_files():
    """(files to run, {dropped file: why}): every test file mentioning CUDA."""
    import importlib.util

    files, dropped = [], {}
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "**", "test_*.py"), recursive=True)):
        rel = os.path.relpath(path, ROOT)
        if rel in TEST_EXCLUDE or not re.search(r"cuda", open(path).read(), re.I):
            continue
        need = TEST_NEEDS.get(rel)
        if need and importlib.util.find_spec(need) is None:
            dropped[rel] = f"needs the {need} module, not installed here"
            print(f"  tests: not running {rel}: {dropped[rel]}", flush=True)
            continue
        files.append(rel)
    return files, dropped


def run_tests(dry_run, timeout):
    files, dropped = cuda_test_files()
    with tempfile.TemporaryDirectory() as d:
        xml = os.path.join(d, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}",
               "-k", TEST_SELECT, *files]
        if dry_run:  # collecting proves the selection imports; the CUDA tests would all skip on a CPU
            cmd.insert(3, "--collect-only")
        res = {"files": files, "command": " ".join(cmd[1:])}
        if dropped:
            res["skipped"] = [f"{f}: {why}" for f, why in dropped.items()]
        p = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
        out = p.stdout + p.stderr
        print(out[-4000:], flush=True)
        res["exit"] = p.returncode
        res["summary"] = out.strip().splitlines()[-1] if out.strip() else ""
        if os.path.exists(xml):
            counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
            skipped, failed = [], []
            for case in ET.parse(xml).getroot().iter("testcase"):
                name = f"{case.get('classname')}::{case.get('name')}"
                kinds = [c.tag for c in case]
                if "skipped" in kinds:
                    counts["skipped"] += 1
                    skipped.append({"test": name, "reason": case.find("skipped").get("message", "")})
                elif "failure" in kinds or "error" in kinds:
                    counts["failed" if "failure" in kinds else "error"] += 1
                    failed.append(name)
                else:
                    counts["passed"] += 1
            res.update(counts=counts, skipped_tests=skipped, failed_tests=failed)
    if p.returncode != 0:
        raise RuntimeError(f"pytest exit {p.returncode}: {res['summary']}", res)
    return res


def run_bench_stage(name, dry_run, timeout, opts):
    """Runs gpu_stages.STAGES[name] in a child process; returns its (possibly partial) result."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, f"{name}.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--stage", name, "--stage-out", out]
        cmd += ["--dry-run"] if dry_run else []
        cmd += ["--teacher", opts.teacher] + (["--dry-run-compile"] if opts.dry_run_compile else [])
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=child_env(), timeout=timeout)
            rc, timed_out = p.returncode, False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        res = json.load(open(out)) if os.path.exists(out) else {}
    if timed_out:
        raise TimeoutError(f"stage killed after its {timeout:.0f} s timeout", res)
    if rc != 0:
        raise RuntimeError(f"stage process exit {rc}: {res.get('error', 'see the output above')}", res)
    return res


def stage_child(args):
    """Inside the child: run one stage, saving the result after every row."""
    import torch

    import gpu_stages

    device = "cpu" if args.dry_run else "cuda"
    ctx = gpu_stages.Ctx(device=device, dry_run=args.dry_run, compile_in_dry_run=args.dry_run_compile,
                         teacher=args.teacher)

    def save():
        tmp = args.stage_out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(ctx.result, fh, indent=1, default=str)
        os.replace(tmp, args.stage_out)  # a kill mid-write leaves the previous complete file
    ctx.save = save
    if device == "cuda" and not torch.cuda.is_available():
        ctx.result["error"] = "no CUDA device in the stage process"
        save()
        return 1
    try:
        gpu_stages.STAGES[args.stage](ctx)
        save()
        return 0
    except Exception as exc:
        traceback.print_exc()
        ctx.result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        save()
        return 1


# ------------------------------------------------------------------------------- reporting
def summary_lines(report):
    lines = [f"gpu-check {'DRY RUN (CPU, tiny sizes; no GPU figure)' if report['dry_run'] else ''} "
             f"on {report['machine'].get('gpu', report['machine']['cpu'])}, torch {report['machine']['torch']} "
             f"(CUDA {report['machine']['torch_cuda']}), commit {report['machine']['commit']}",
             f"{'stage':<11} {'status':<8} {'seconds':>8} {'timeout':>8}  note"]
    for name, st in report["stages"].items():
        note = st.get("reason") or ""
        lines.append(f"{name:<11} {st['status']:<8} {st.get('seconds', 0):8.1f} {st.get('timeout_s', 0):8.0f}  "
                     f"{note[:110]}")
    lines.append(f"total {report['total_s']:.1f} s of a {report['budget_s']:.0f} s budget")
    loss = report["stages"].get("loss", {}).get("result", {})
    for row in loss.get("rows", []):
        if (row["B"], row["C"], row["K"]) != (1024, 21841, 100) and not report["dry_run"]:
            continue
        m = row["methods"]
        cell = lambda n, key="median_ms", fmt="{:.3f}": fmt.format(m[n][key]) if key in m.get(n, {}) else "n/a"  # noqa: E731
        lines.append(f"loss {row['dtype']} B={row['B']} C={row['C']} K={row['K']}: ms dense {cell('dense')} "
                     f"compiled {cell('compiled_dense')} ours {cell('ours')} gif {cell('ours_gif')}; ours x"
                     f"{cell('ours', 'speedup_vs_dense', '{:.2f}')} dense, x{cell('ours', 'speedup_vs_compiled_dense', '{:.2f}')}"
                     f" compiled, {cell('ours', 'pct_copy_bandwidth', '{:.0f}')}% copy bw, extra mem "
                     f"{cell('ours', 'extra_over_grad', '{:.2f}')} x grad")
    agr = report["stages"].get("agreement", {}).get("result", {})
    if "passed" in agr:
        side = "CPU (dry run) vs CPU" if report["dry_run"] else "CUDA vs CPU"
        lines.append(f"agreement {side}: {'pass' if agr['passed'] else 'FAIL'} "
                     f"({sum(r['passed'] for r in agr['loss'])}/{len(agr['loss'])} loss dtypes, "
                     f"{sum(r['bit_identical'] for r in agr['device_ops'])}/{len(agr['device_ops'])} device-op "
                     "configs bit-identical)")
    dev = report["stages"].get("device_ops", {}).get("result", {})
    for op in dev.get("ops", []):
        lines.append(f"device ops {op['ops']}: {op['img_s']:.0f} img/s ({dev['batch']} x {dev['img_size']}^2)")
    for k, v in dev.get("h2d", {}).items():
        if isinstance(v, dict):
            lines.append(f"uint8 H2D {k}: {v['gbs']:.1f} GB/s")
    for row in report["stages"].get("models", {}).get("result", {}).get("rows", []):
        got = row.get("img_s_amp", row.get("img_s"))
        lines.append(f"{row['model']}: {got:.1f} img/s (batch {row['batch']}) vs paper V100 "
                     f"{row['paper_v100_img_s']} ({row['ratio_to_paper_v100']:.2f}x)")
    tr = report["stages"].get("train", {}).get("result", {})
    if "stored_kd_overhead_pct" in tr:
        ms = {k: f"{v['ms_per_step']:.1f}" for k, v in tr["modes"].items()}
        lines.append(f"train ms/step {ms}: stored KD overhead {tr['stored_kd_overhead_pct']:+.1f}% "
                     f"(target <= 3%), online KD {tr['online_kd_overhead_pct']:+.1f}%")
    return lines


def default_out(dry_run, facts):
    name = "gpu_check_dry_run.json" if dry_run else f"gpu_check_{slug(facts.get('gpu', 'gpu'))}.json"
    return os.path.join(HERE, "results", name)


def write_report(path, report):
    if report["dry_run"] and os.path.exists(path):
        try:
            if json.load(open(path)).get("dry_run") is False:
                raise SystemExit(f"refusing to write a dry-run result over the real GPU result {path}")
        except (ValueError, OSError):
            pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (automatic without CUDA)")
    ap.add_argument("--budget-s", type=float, default=480, help="hard wall budget for all stages (default 480)")
    ap.add_argument("--cap-scale", type=float, default=1.0,
                    help="multiply every stage's timeout cap (slow or shared machines; the budget still holds)")
    ap.add_argument("--stages", default=",".join(n for n, _ in STAGE_CAPS), help="comma-separated subset")
    ap.add_argument("--out", default=None, help="result JSON (default benchmarks/results/gpu_check_<gpu>.json)")
    ap.add_argument("--teacher", default="vit_large_patch16_224", help="timm teacher for online KD")
    ap.add_argument("--dry-run-compile", action="store_true", help="include torch.compile in a dry run")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--stage-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        return stage_child(args)
    t_start = time.perf_counter()
    import torch

    auto_dry = not torch.cuda.is_available()
    dry_run = args.dry_run or auto_dry
    if auto_dry and not args.dry_run:
        print("no CUDA device: running as --dry-run (CPU, tiny sizes, no GPU figure)", flush=True)
    facts = machine_facts(dry_run)
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(wanted) - {n for n, _ in STAGE_CAPS}
    if unknown:
        ap.error(f"unknown stages {sorted(unknown)}")
    out = args.out or default_out(dry_run, facts)
    report = {"benchmark": "gpu_check", "dry_run": dry_run, "machine": facts, "budget_s": args.budget_s,
              "stages": {}, "args": vars(args)}
    print(f"gpu-check: budget {args.budget_s:.0f} s, {'dry run' if dry_run else facts.get('gpu')}, "
          f"result -> {out}", flush=True)
    for name, cap in STAGE_CAPS:
        left = args.budget_s - (time.perf_counter() - t_start)
        st = report["stages"][name] = {"timeout_s": min(cap * args.cap_scale, max(left, 0))}
        if name not in wanted:
            st.update(status="skipped", reason="not in --stages")
        elif left < MIN_STAGE_S:
            st.update(status="skipped", reason=f"budget spent ({left:.0f} s left < {MIN_STAGE_S} s)")
        if "status" in st:
            print(f"== {name}: SKIPPED ({st['reason']})", flush=True)
            continue
        print(f"== {name} (timeout {st['timeout_s']:.0f} s)", flush=True)
        t0 = time.perf_counter()
        try:
            if name == "build":
                st["result"] = run_build(facts, dry_run, st["timeout_s"])
            elif name == "tests":
                st["result"] = run_tests(dry_run, st["timeout_s"])
            else:
                st["result"] = run_bench_stage(name, dry_run, st["timeout_s"], args)
            st["status"] = "ok"
            skipped = st["result"].get("skipped")
            if skipped:
                st["reason"] = "; ".join(skipped) if isinstance(skipped, list) else skipped
        except subprocess.TimeoutExpired:
            st.update(status="timeout", reason=f"killed after {st['timeout_s']:.0f} s")
        except Exception as exc:  # recorded; the next stages still run
            partial = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else None
            if partial:
                st["result"] = partial
            st.update(status="timeout" if isinstance(exc, TimeoutError) else "failed", reason=str(exc.args[0])[:500])
        st["seconds"] = time.perf_counter() - t0
        print(f"== {name}: {st['status']} in {st['seconds']:.1f} s {st.get('reason', '')}", flush=True)
        report["total_s"] = time.perf_counter() - t_start
        write_report(out, report)  # after every stage: a machine taken back mid-run keeps the rest
    report["total_s"] = time.perf_counter() - t_start
    report["all_ok"] = all(s["status"] == "ok" for s in report["stages"].values())
    write_report(out, report)
    print("\n" + "\n".join(summary_lines(report)))
    print(f"wrote {out}")
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
