"""Plumbing shared by every benchmark script: machine facts, timing, JSON and PNG writing.

Every results JSON records the machine (CPU, cores, load average at start and end: the boxes
are shared), the full git commit and the tree hash of csrc/ (``provenance``), so a number can
always be traced to the code and conditions that produced it. Methods are timed with
interleaved repeats (one repeat of each method in turn, round after round) and summarised by
medians, so a burst of load from other jobs hits
every method alike instead of whichever happened to run then.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


# ------------------------------------------------------------------------------- machine facts
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average():
    """1/5/15-minute load average, or None where the OS has none (the boxes are shared)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def _git(*args, root: str = ROOT):
    import subprocess

    try:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_revision():
    """The checkout's short commit (with '+dirty' when csrc/, tinyvit/ or setup.py differ from
    it), or None outside git. Kept for the PNG stamp; the JSON's provenance is ``provenance()``."""
    rev = _git("rev-parse", "--short", "HEAD")
    if not rev:
        return None
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "csrc", "tinyvit", "setup.py")
    return rev + ("+dirty" if dirty else "")


def tree_hash(path: str) -> str:
    """Git's tree id of the folder ``path`` as it is on disk (what ``git rev-parse HEAD:csrc``
    prints for a clean checkout), computed without git: for a tarball or a clone whose history
    is gone. Files ignored by git would count here; csrc/ has none."""
    import hashlib

    def obj(kind, data):
        return hashlib.sha1(b"%s %d\0" % (kind, len(data)) + data).digest()

    entries = []
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.islink(full):
            entries.append((name, b"120000", obj(b"blob", os.readlink(full).encode())))
        elif os.path.isdir(full):
            entries.append((name + "/", b"40000", bytes.fromhex(tree_hash(full))))
        else:
            with open(full, "rb") as fh:
                data = fh.read()
            entries.append((name, b"100755" if os.access(full, os.X_OK) else b"100644", obj(b"blob", data)))
    entries.sort(key=lambda e: e[0].encode())  # git orders a folder as its name + "/"
    body = b"".join(mode + b" " + n.rstrip("/").encode() + b"\0" + h for n, mode, h in entries)
    return obj(b"tree", body).hex()


def provenance(root: str = ROOT) -> dict:
    """Which code a result was measured on: the full commit, ``csrc_tree`` (``git rev-parse
    HEAD:csrc``, the tree hash of csrc/: equal in every clone of that code, with or without
    history, and unchanged by commits that touch only Python or docs) and ``csrc_dirty`` (csrc/
    differs from that tree, untracked files included: then the numbers belong to no commit).
    tests/test_numbers.py compares ``csrc_tree`` with the shipping commit's."""
    dirty = _git("status", "--porcelain", "--untracked-files=all", "--", "csrc", root=root)
    return {"commit": _git("rev-parse", "HEAD", root=root), "csrc_tree": _git("rev-parse", "HEAD:csrc", root=root),
            "csrc_dirty": None if dirty is None else bool(dirty)}


class DirtyTreeError(RuntimeError):
    """A result would be written from a csrc/ that matches no commit."""


def usable_cores():
    """CPUs this process may run on (affinity / cgroup cpusets), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def machine_facts(device: str = "cpu", **extra) -> dict:
    """What every results JSON records under "machine"; ``extra`` adds script-specific facts
    (library versions, thread counts, ISA) and may override the defaults."""
    facts = {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
             "python": platform.python_version(), "device": device,
             "load_average_at_start": load_average(), "tinyvit_commit": git_revision(), **provenance()}
    for mod in ("numpy", "torch"):
        if mod in sys.modules:  # only what the script already imported: no import side effects
            facts[mod] = sys.modules[mod].__version__
    facts.update(extra)
    return facts


def finish_facts(facts: dict) -> dict:
    """Record the load average at the end of the run (call just before writing the JSON)."""
    facts["load_average_at_end"] = load_average()
    return facts


# ------------------------------------------------------------------------------------- timing
def timed(fn, *args, **kw):
    """Run ``fn`` once -> (wall seconds, process CPU seconds, result). Process CPU time counts
    every thread of the process (a C++ pool's included): the per-core cost, which on a shared
    machine is less disturbed than wall time by what other jobs take from us."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return time.perf_counter() - t, time.process_time() - c, out


def interleaved(fns: dict, repeats: int, warmup: int = 1, before=None) -> dict:
    """Time each callable of ``fns`` (name -> fn()) ``repeats`` times, round-robin: round r
    runs every method once, in order, after ``warmup`` untimed rounds (caches, lazy init,
    worker start-up). ``before(name)``, if given, runs untimed before each call (e.g. to reset
    gradients or synchronise a device). Returns name -> {"wall": [s...], "cpu": [s...],
    "result": [what fn returned...]} for the timed rounds."""
    out = {name: {"wall": [], "cpu": [], "result": []} for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            if before is not None:
                before(name)
            wall, cpu, res = timed(fn)
            if r >= warmup:
                out[name]["wall"].append(wall)
                out[name]["cpu"].append(cpu)
                out[name]["result"].append(res)
    return out


def repeated(fn, repeats: int, warmup: int = 1) -> dict:
    """``interleaved`` for a single method (one that cannot share rounds with others, e.g. a
    DataLoader with persistent workers): {"wall": [...], "cpu": [...], "result": [...]}."""
    return interleaved({"_": fn}, repeats, warmup)["_"]


def median(xs):
    return statistics.median(xs)


# ------------------------------------------------------------------------------- JSON and PNG
def _jsonable(o):
    if hasattr(o, "tolist"):  # numpy scalars / arrays, torch tensors
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_json(path: str, payload: dict, indent: int = 2, *, results_dir: str = RESULTS) -> str:
    """Write ``payload`` to ``path`` (folders created). A payload without "machine" gets the
    current machine facts; one with them gets the commit, csrc tree and end-of-run load average
    filled in if the script did not record them, so no results file lacks its conditions.
    Refuses (DirtyTreeError, nothing written) to put a result measured on a csrc/ that differs
    from its commit into benchmarks/results/; BENCH_ALLOW_DIRTY=1 writes it marked
    ``"csrc_dirty": true``, which tests/test_numbers.py rejects if anything cites it."""
    facts = payload.setdefault("machine", machine_facts())
    facts.setdefault("tinyvit_commit", git_revision())
    for k, v in provenance().items():
        facts.setdefault(k, v)
    facts.setdefault("load_average_at_end", load_average())
    in_results = os.path.abspath(path).startswith(os.path.abspath(results_dir) + os.sep)
    if in_results and facts["csrc_dirty"] and os.environ.get("BENCH_ALLOW_DIRTY") != "1":
        raise DirtyTreeError(f"{path}: csrc/ has uncommitted changes (git status -- csrc): commit "
                             "them first, or set BENCH_ALLOW_DIRTY=1 to write a result marked dirty")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:  # whole file or nothing: a killed run leaves the old results
        json.dump(payload, f, indent=indent, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)
    return path


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None when matplotlib is missing
    (the JSON is the result; the PNG is a convenience)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib missing: no chart")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str, facts: dict | None = None, dpi: int = 110) -> str:
    """Save ``fig`` as a PNG; with ``facts`` the machine, load and commit are stamped in the
    bottom-left corner, so a chart copied out of context still says where it came from."""
    if facts:
        la = facts.get("load_average_at_start")
        stamp = (f"{facts.get('cpu', '?')}, {facts.get('usable_cores', '?')} cores"
                 + (f", load {la[0]:.1f}" if la else "")
                 + f", commit {facts.get('tinyvit_commit') or '?'}")
        fig.text(0.005, 0.005, stamp, fontsize=6, color="grey", ha="left", va="bottom")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
