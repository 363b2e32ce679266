"""One worker process for adversarial campaigns: every case bounded in time and memory.

A parser given untrusted bytes (tar, image index, JPEG, attest.json, ...) must finish in time
and memory bounded by its input. The campaigns run each case through ``BoundedWorker.run``:

* the worker is a fresh interpreter (``spawn``) that imports what it needs once (``setup``);
* before each case it resets its peak-RSS counter (``/proc/self/clear_refs``), runs the case,
  and reports wall time and the growth of peak RSS over the RSS it had when the case began;
* ``RLIMIT_AS`` is set once, after ``setup``, to the worker's address space then plus
  ``mem_mb`` and a fixed allowance for allocator arenas and thread stacks, so an unbounded
  allocation fails inside the worker instead of taking the machine (torch's own mappings are
  several GB of address space, which is why the limit is relative, not absolute);
* a case that has not answered after ``kill_s`` is killed and counted as ``hang``; one that
  answered but took over ``wall_s`` is ``over_time``; one whose peak RSS grew by more than
  ``mem_mb`` (or that raised MemoryError) is ``over_memory``; a worker death is ``crash``.
  Each of these is a failure; after a hang or a crash the worker is restarted.

``fn(case)`` is a module-level function (``"module:function"``, importable in the worker) that
returns the campaign's own verdict (any picklable value); an exception escaping it is
``untyped``.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import time
import traceback
from typing import Any, NamedTuple, Optional

FAILURES = ("crash", "hang", "over_time", "over_memory", "untyped")
# glibc reserves 64 MiB of address space per malloc arena and 8 MiB per thread stack: the
# address-space limit leaves room for those so that it only trips on real allocations.
_AS_ALLOWANCE_MB = 1024


class Outcome(NamedTuple):
    status: str              # "ok" (fn returned) or one of FAILURES
    verdict: Any             # what fn returned (None unless status == "ok")
    seconds: float
    peak_mb: float           # growth of peak RSS during the case, MiB (nan when unknown)
    detail: Optional[str]    # traceback or reason, for failures


def _resolve(spec: str):
    mod, _, name = spec.partition(":")
    return getattr(importlib.import_module(mod), name)


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _worker(conn, setup: Optional[str], fn: str, mem_mb: int, paths) -> None:
    import resource
    import sys

    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    if setup:
        _resolve(setup)()
    func = _resolve(fn)
    vm = _status_kb("VmSize")
    if vm is not None:
        limit = (vm // 1024 + mem_mb + _AS_ALLOWANCE_MB) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        can_peak = _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        try:
            verdict, status, detail = func(msg), "ok", None
        except MemoryError:
            verdict, status, detail = None, "over_memory", traceback.format_exc(limit=-3)
        except Exception:  # noqa: BLE001 - classified: a library error the campaign did not expect
            verdict, status, detail = None, "untyped", traceback.format_exc(limit=-3)
        secs = time.perf_counter() - t0
        hwm = _status_kb("VmHWM") if can_peak else None
        peak = (hwm - rss0) / 1024 if hwm is not None and rss0 is not None else float("nan")
        conn.send((status, verdict, secs, peak, detail))


class BoundedWorker:
    """``with BoundedWorker("pkg.mod:run_case", setup="pkg.mod:warm") as w: w.run(case)``."""

    def __init__(self, fn: str, *, setup: Optional[str] = None, wall_s: float = 2.0,
                 mem_mb: int = 256, kill_s: Optional[float] = None, start_s: float = 180.0):
        self.fn, self.setup = fn, setup
        self.wall_s, self.mem_mb = float(wall_s), int(mem_mb)
        self.kill_s = float(kill_s) if kill_s is not None else max(10.0, 5 * self.wall_s)
        self.start_s = start_s
        self.restarts = 0
        self._proc = self._conn = None

    # ---- process ------------------------------------------------------------------------
    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        here = os.path.dirname(os.path.abspath(__file__))
        env_paths = [here, os.path.dirname(here)]
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        self._proc = ctx.Process(target=_worker, daemon=True,
                                 args=(child, self.setup, self.fn, self.mem_mb, env_paths))
        self._proc.start()
        child.close()
        if not self._conn.poll(self.start_s):
            self._kill()
            raise RuntimeError(f"bounded worker for {self.fn} did not start in {self.start_s:.0f} s")
        status, _ = self._conn.recv()
        assert status == "ready", status

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
        self._proc = self._conn = None

    def __enter__(self) -> "BoundedWorker":
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self._kill()

    # ---- cases --------------------------------------------------------------------------
    def run(self, case) -> Outcome:
        if self._proc is None:
            self._start()
        t0 = time.perf_counter()
        try:
            self._conn.send(case)
            answered = self._conn.poll(self.kill_s)
            msg = self._conn.recv() if answered else None
        except (EOFError, BrokenPipeError, OSError):
            msg, answered = None, True
        if msg is None:
            alive = self._proc.is_alive()
            self._proc.join(0.5)
            code = self._proc.exitcode
            self._kill()
            self.restarts += 1
            if not answered and alive:
                return Outcome("hang", None, time.perf_counter() - t0, float("nan"),
                               f"no answer within {self.kill_s:.0f} s (killed)")
            return Outcome("crash", None, time.perf_counter() - t0, float("nan"),
                           f"worker died (exit code {code})")
        status, verdict, secs, peak, detail = msg
        if status == "ok" and secs > self.wall_s:
            status, detail = "over_time", f"{secs:.2f} s > {self.wall_s:.1f} s"
        elif status == "ok" and peak == peak and peak > self.mem_mb:
            status, detail = "over_memory", f"peak RSS grew {peak:.0f} MiB > {self.mem_mb} MiB"
        if status != "ok":
            verdict = None
        return Outcome(status, verdict, secs, peak, detail)
