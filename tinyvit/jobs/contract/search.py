"""Progressive model contraction: constrained local search over contraction factors.

Paper Sec. 3.2: "in each step, smaller candidate models are generated around the current model
by adjusting the contraction factors. We select models that satisfy both constraints on the
number of parameters and throughput. The model with the best validation accuracy will be
utilized for further reduction in the next step until the target is achieved."

Contraction moves (one candidate per move and step; :func:`contraction_moves`):

=========  ==============================================================================
``D1-``    γ_D1 -= γ_E (2·γ_E if γ_E is odd: γ_D1 stays even)
``Di-``    γ_Di -= γ_E for the attention stages i = 2, 3, 4 (one head fewer)
``Ni-``    γ_Ni -= 1 (one block fewer in stage i; stays >= 1)
``Wi-``    γ_Wi -> next smaller divisor of the stage-i feature-map side (i = 2, 3, 4)
``R-``     γ_R -= 1 (MBConv expansion)
``M-``     γ_M -= 1 (MLP ratio)
``E/2``    γ_E -> γ_E / 2 (twice the heads of half the width; dims stay multiples)
=========  ==============================================================================

Per-step parameter budget: while the current model is above ``max_params`` a step must reach
``max(max_params, step_ratio · P_current)``; once it is within ``max_params`` (but still too
slow) a step must reach ``step_ratio · P_current``. Each move is therefore applied repeatedly
(a line search along that factor) until the candidate fits the budget; a move that runs out of
valid values before that is rejected ("params ... > step budget"). With ``step_ratio=1`` a
move is applied once.

Per-step throughput: a candidate must not be slower than ``min(min_throughput, T_current) ·
(1 - tput_tolerance)`` (``tput_tolerance`` absorbs timing noise). Candidates that pass both
are scored by the proxy; the best-scoring one becomes the current model. The search ends when
the current model meets both targets (``params <= max_params`` and ``throughput >=
min_throughput``, no tolerance), when no candidate is admissible ("stuck"), or after
``max_steps`` steps.

Log: JSON lines, appended and fsync'd one record at a time. A rerun with the same log replays
the search from the logged measurements and scores (deterministic), measuring and scoring only
candidates not yet in the log; a torn last line (crash mid-write) is cut off.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ...models.contraction import (ContractionFactors, analytic_params, count_params,
                                  stage_resolutions, throughput)

LOG_FORMAT = "tinyvit-contract-log/1"

MOVES = ("D1-", "D2-", "D3-", "D4-", "N1-", "N2-", "N3-", "N4-", "W2-", "W3-", "W4-",
         "R-", "M-", "E/2")


def apply_move(f: ContractionFactors, move: str, img_size: int) -> Optional[ContractionFactors]:
    """One application of ``move`` (see module doc) to ``f``; None when the result would be
    invalid (below minimum, no smaller divisor, dims not multiples of the head dim, ...)."""
    try:
        if move[0] == "D":
            i = int(move[1]) - 1
            step = f.head_dim if (i > 0 or f.head_dim % 2 == 0) else 2 * f.head_dim
            d = list(f.embed_dims)
            d[i] -= step
            return f.replace(embed_dims=tuple(d)).validate(img_size)
        if move[0] == "N":
            i = int(move[1]) - 1
            n = list(f.depths)
            n[i] -= 1
            return f.replace(depths=tuple(n)).validate(img_size)
        if move[0] == "W":
            i = int(move[1]) - 2
            r = stage_resolutions(img_size)[i + 1]
            smaller = [d for d in range(1, f.window_sizes[i]) if r % d == 0]
            if not smaller:
                return None
            w = list(f.window_sizes)
            w[i] = smaller[-1]
            return f.replace(window_sizes=tuple(w)).validate(img_size)
        if move == "R-":
            return f.replace(mbconv_ratio=f.mbconv_ratio - 1).validate(img_size)
        if move == "M-":
            return f.replace(mlp_ratio=f.mlp_ratio - 1).validate(img_size)
        if move == "E/2":
            if f.head_dim % 2:
                return None
            return f.replace(head_dim=f.head_dim // 2).validate(img_size)
    except ValueError:
        return None
    raise ValueError(f"unknown contraction move {move!r}; known: {MOVES}")


def contraction_moves(f: ContractionFactors, img_size: int) -> Dict[str, ContractionFactors]:
    """The single-step neighbours of ``f``: {move: factors} for every valid move."""
    out = {}
    for m in MOVES:
        g = apply_move(f, m, img_size)
        if g is not None:
            out[m] = g
    return out


class Measurer:
    """Default ``measure(factors) -> (params, images/s)``: params at ``num_classes`` /
    ``in_chans``; throughput by :func:`throughput` at ``img_size`` on ``device``."""

    def __init__(self, num_classes: int, in_chans: int, img_size: int, batch: int = 32,
                 device: str = "cpu", warmup: int = 2, repeats: int = 5, amp: bool = False,
                 threads: Optional[int] = None):
        self.num_classes, self.in_chans, self.img_size = num_classes, in_chans, img_size
        self.threads = threads
        self.batch, self.device, self.warmup, self.repeats, self.amp = (
            batch, device, warmup, repeats, amp)

    def config(self) -> Dict:
        return {"num_classes": self.num_classes, "in_chans": self.in_chans,
                "img_size": self.img_size, "batch": self.batch, "device": str(self.device),
                "warmup": self.warmup, "repeats": self.repeats, "amp": self.amp,
                "threads": self.threads}

    def params(self, f: ContractionFactors) -> int:
        return analytic_params(f, self.num_classes, self.in_chans)

    def __call__(self, f: ContractionFactors) -> Tuple[int, float]:
        import torch

        torch.manual_seed(0)
        m = f.build(num_classes=self.num_classes, img_size=self.img_size, in_chans=self.in_chans)
        old = torch.get_num_threads()
        if self.threads:
            # Fewer intra-op threads: on a shared CPU, OpenMP barriers of 2+ threads stall
            # whenever another process holds a core, which makes timings erratic.
            torch.set_num_threads(self.threads)
        try:
            return count_params(m), throughput(m, self.img_size, self.batch, self.device,
                                               warmup=self.warmup, repeats=self.repeats,
                                               amp=self.amp, in_chans=self.in_chans)
        finally:
            torch.set_num_threads(old)


# ---------------------------------------------------------------------- log
class SearchLog:
    """Append-only JSON-lines log with a cache of measurements and scores by factor key."""

    def __init__(self, path: str):
        self.path = path
        self.records: List[dict] = []
        self.measured: Dict[str, Tuple[int, float]] = {}
        self.scored: Dict[str, float] = {}
        self.logged: set = set()  # (step, key, status) of candidate records already written
        if os.path.exists(path):
            self._load()

    def _load(self):
        with open(self.path, "rb") as fh:
            data = fh.read()
        good = data.rfind(b"\n") + 1
        if good < len(data):
            # A crash mid-append leaves a torn last line: drop it so appends stay parseable.
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
            data = data[:good]
        for lineno, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}:{lineno}: corrupt log line ({e})") from None
            self._index(rec)
            self.records.append(rec)

    def _index(self, rec: dict):
        if rec.get("event") in ("candidate", "seed"):
            k = rec["key"]
            if rec.get("params") is not None and rec.get("throughput") is not None:
                self.measured[k] = (rec["params"], rec["throughput"])
            if rec.get("proxy_acc") is not None:
                self.scored[k] = rec["proxy_acc"]
            self.logged.add((rec.get("step"), k, rec.get("status"), rec.get("reason")))

    def append(self, rec: dict):
        rec = dict(rec, time=round(time.time(), 3))
        line = json.dumps(rec, sort_keys=True) + "\n"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._index(rec)
        self.records.append(rec)

    def config(self) -> Optional[dict]:
        for r in self.records:
            if r.get("event") == "config":
                return r
        return None


# ---------------------------------------------------------------------- search
def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _check_search_args(seed, img_size, max_params, min_throughput, measure, step_ratio,
                       tput_tolerance, moves) -> tuple:
    """Every argument check, before the log is touched; returns the moves as a tuple."""
    if max_params is None and min_throughput is None:
        raise ValueError("give at least one target: max_params or min_throughput")
    if not 0 < step_ratio <= 1:
        raise ValueError(f"step_ratio must be in (0, 1], got {step_ratio}")
    if not 0 <= tput_tolerance < 1:
        raise ValueError(f"tput_tolerance must be in [0, 1), got {tput_tolerance}")
    moves = tuple(moves)
    for m in moves:
        if m not in MOVES:
            raise ValueError(f"unknown contraction move {m!r}; known: {MOVES}")
    seed.validate(img_size)
    if measure is None:
        raise ValueError("measure is required (e.g. Measurer(...))")
    return moves


def _open_log(log_path: str, seed: ContractionFactors, img_size: int, config) -> SearchLog:
    """The log, with its config record written (new log) or checked (resumed log)."""
    log = SearchLog(log_path)
    cfg = _jsonable({"format": LOG_FORMAT, "seed": seed.to_dict(), "img_size": img_size,
                     "config": config or {}})
    old = log.config()
    if old is None:
        log.append({"event": "config", **cfg})
        return log
    diff = sorted(k for k in cfg if old.get(k) != cfg[k])
    if diff:
        detail = "; ".join(f"{k}: log has {json.dumps(old.get(k))}, now {json.dumps(cfg[k])}"
                           for k in diff)
        raise ValueError(f"{log_path}: log was written by a different search ({detail}); "
                         f"use a new log file")
    return log


class _Search:
    """One run of the search over a log: cached measurements and scores, the targets, the
    per-step budget, and the records it appends (a record already logged is not repeated)."""

    def __init__(self, log: SearchLog, scorer, measure, param_counter, *, img_size, max_params,
                 min_throughput, step_ratio, tput_tolerance, moves):
        self.log, self.scorer, self.measure = log, scorer, measure
        self.img_size, self.max_params, self.min_throughput = img_size, max_params, min_throughput
        self.step_ratio, self.tput_tolerance, self.moves = step_ratio, tput_tolerance, moves
        self._param_counter, self._pcache = param_counter, {}
        self.counters = {"measured": 0, "scored": 0}

    def params(self, f) -> int:
        """Memoised parameter count: the line searches revisit the same points."""
        k = f.key()
        if k not in self._pcache:
            self._pcache[k] = self._param_counter(f)
        return self._pcache[k]

    def get_measure(self, f):
        k = f.key()
        if k not in self.log.measured:
            self.counters["measured"] += 1
            p, t = self.measure(f)
            return int(p), float(t), True
        p, t = self.log.measured[k]
        return p, t, False

    def get_score(self, f):
        k = f.key()
        if k not in self.log.scored:
            self.counters["scored"] += 1
            return float(self.scorer(f)), True
        return self.log.scored[k], False

    def meets(self, p, t) -> bool:
        return ((self.max_params is None or p <= self.max_params)
                and (self.min_throughput is None or t >= self.min_throughput))

    def emit(self, rec, new):
        sig = (rec.get("step"), rec["key"], rec.get("status"), rec.get("reason"))
        if new or sig not in self.log.logged:
            self.log.append(rec)

    def step_limits(self, cur_p, cur_t) -> Tuple[float, float]:
        """(parameter budget, throughput floor) of the next step (module doc)."""
        if self.max_params is not None and cur_p > self.max_params:
            budget = max(self.max_params, self.step_ratio * cur_p)
        else:
            budget = self.step_ratio * cur_p
        if self.step_ratio == 1:
            budget = cur_p - 1  # strictly smaller
        t_floor = (min(self.min_throughput, cur_t) if self.min_throughput is not None else cur_t) \
            * (1 - self.tput_tolerance)
        return budget, t_floor

    def line_search(self, cur, mv, budget):
        """Apply ``mv`` until the candidate's params reach ``budget`` (or the move runs out):
        (candidate, applications, its params)."""
        f, n_apply, fp = cur, 0, None
        while True:
            g = apply_move(f, mv, self.img_size)
            if g is None:
                break
            f, n_apply = g, n_apply + 1
            fp = self.params(f)
            if fp <= budget:
                break
        return f, n_apply, fp

    def candidate(self, step, cur, mv, budget, t_floor):
        """The candidate of move ``mv``: None when the move does not apply or is rejected
        (logged with its reason), else (acc, params, throughput, move, factors, record, new)."""
        log = self.log
        f, n_apply, fp = self.line_search(cur, mv, budget)
        if n_apply == 0:
            return None  # move not applicable (at its minimum)
        base = {"event": "candidate", "step": step, "parent": cur.key(), "move": mv,
                "applied": n_apply, "key": f.key(), "factors": f.to_dict(),
                "budget_params": int(budget), "min_throughput_step": t_floor}
        if fp > budget:
            self.emit({**base, "params": fp, "throughput": log.measured.get(f.key(), (0, None))[1],
                       "proxy_acc": log.scored.get(f.key()), "status": "rejected",
                       "reason": f"params {fp} > step budget {int(budget)} "
                                 f"(move exhausted after {n_apply})"}, False)
            return None
        p, t, new_m = self.get_measure(f)
        if t < t_floor:
            self.emit({**base, "params": p, "throughput": t, "proxy_acc": log.scored.get(f.key()),
                       "status": "rejected",
                       "reason": f"throughput {t:.1f} < step floor {t_floor:.1f} img/s"}, new_m)
            return None
        acc, new_s = self.get_score(f)
        return (acc, p, t, mv, f, base, new_m or new_s)

    def select(self, step, admissible):
        """Log every admissible candidate and the choice; returns the best one. Best proxy
        accuracy; ties -> fewer params, then the move order (deterministic)."""
        best = max(admissible, key=lambda a: (a[0], -a[1], -self.moves.index(a[3])))
        for acc, p, t, mv, f, base, new in admissible:
            chosen = f is best[4]
            self.emit({**base, "params": p, "throughput": t, "proxy_acc": acc,
                       "meets_target": self.meets(p, t),
                       "status": "accepted" if chosen else "admissible",
                       "reason": "best proxy accuracy" if chosen else "lower proxy accuracy"}, new)
        acc, p, t, mv, f, _, _ = best
        self.log.append({"event": "select", "step": step, "key": f.key(), "move": mv,
                         "params": p, "throughput": t, "proxy_acc": acc})
        return best

    def run(self, seed, max_steps: int, say) -> dict:
        # Seed: measured and scored, so the plot and the first comparison have its accuracy.
        cur = seed
        p, t, new_m = self.get_measure(cur)
        acc, new_s = self.get_score(cur)
        self.emit({"event": "seed", "step": 0, "key": cur.key(), "factors": cur.to_dict(), "params": p,
                   "throughput": t, "proxy_acc": acc, "status": "current",
                   "reason": "seed"}, new_m or new_s)
        path = [cur.key()]
        cur_p, cur_t, cur_acc = p, t, acc
        say(f"seed {cur.key()}: {p / 1e6:.3f}M params, {t:.1f} img/s, proxy acc {acc:.4f}")
        step = 0
        while True:
            if self.meets(cur_p, cur_t):
                status = "target_met"
                break
            if step >= max_steps:
                status = "max_steps"
                break
            step += 1
            budget, t_floor = self.step_limits(cur_p, cur_t)
            admissible = [c for c in (self.candidate(step, cur, mv, budget, t_floor)
                                      for mv in self.moves) if c is not None]
            if not admissible:
                status = "stuck"
                self.log.append({"event": "select", "step": step, "key": None,
                                 "reason": "no admissible candidate"})
                break
            acc, p, t, mv, f, _, _ = self.select(step, admissible)
            say(f"step {step}: {mv} -> {f.key()}: {p / 1e6:.3f}M params, {t:.1f} img/s, "
                f"proxy acc {acc:.4f} ({len(admissible)} admissible)")
            cur, cur_p, cur_t, cur_acc = f, p, t, acc
            path.append(cur.key())
        return {"event": "done", "status": status, "steps": step, "final": cur.to_dict(),
                "final_key": cur.key(), "params": cur_p, "throughput": cur_t,
                "proxy_acc": cur_acc, "path": path, "max_params": self.max_params,
                "min_throughput": self.min_throughput, "new_measurements": self.counters["measured"],
                "new_scores": self.counters["scored"]}


def contract_search(
    seed: ContractionFactors,
    scorer: Callable[[ContractionFactors], float],
    log_path: str,
    *,
    img_size: int,
    max_params: Optional[int] = None,
    min_throughput: Optional[float] = None,
    measure: Optional[Callable[[ContractionFactors], Tuple[int, float]]] = None,
    param_counter: Optional[Callable[[ContractionFactors], int]] = None,
    step_ratio: float = 0.9,
    tput_tolerance: float = 0.05,
    max_steps: int = 20,
    moves: Iterable[str] = MOVES,
    config: Optional[dict] = None,
    verbose: bool = False,
) -> dict:
    """Run (or resume) the contraction search; returns the final summary record.

    ``scorer(factors) -> accuracy`` and ``measure(factors) -> (params, images/s)`` are
    pluggable; ``param_counter`` (cheap, no weights) drives the per-move line search and
    defaults to ``measure.params`` when ``measure`` has one. ``config`` (JSON-able) describes
    everything that determines measurements and scores; a resumed log must have been written
    with an equal config (``ValueError`` naming the differing keys otherwise). Targets,
    ``step_ratio``, ``max_steps`` may change between runs (decisions are recomputed from the
    cached numbers).
    """
    moves = _check_search_args(seed, img_size, max_params, min_throughput, measure, step_ratio,
                               tput_tolerance, moves)
    if param_counter is None:
        param_counter = getattr(measure, "params", None) or (lambda f: measure(f)[0])
    say = print if verbose else (lambda *a, **k: None)
    log = _open_log(log_path, seed, img_size, config)
    log.append({"event": "run", "max_params": max_params, "min_throughput": min_throughput,
                "step_ratio": step_ratio, "tput_tolerance": tput_tolerance, "max_steps": max_steps,
                "moves": list(moves)})
    search = _Search(log, scorer, measure, param_counter, img_size=img_size, max_params=max_params,
                     min_throughput=min_throughput, step_ratio=step_ratio,
                     tput_tolerance=tput_tolerance, moves=moves)
    summary = search.run(seed, max_steps, say)
    log.append(summary)
    return summary


# ---------------------------------------------------------------------- plot
def plot_log(log_path: str, png_path: str) -> str:
    """PNG of every measured candidate (params vs throughput; colour = proxy accuracy, grey x =
    rejected before scoring) with the chosen path of the latest run and the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = SearchLog(log_path)
    pts = {}
    for r in log.records:
        if r.get("event") in ("seed", "candidate") and r.get("throughput") is not None:
            pts[r["key"]] = (r["params"], r["throughput"], log.scored.get(r["key"]))
    done = [r for r in log.records if r.get("event") == "done"]
    path = done[-1]["path"] if done else []
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    sc_pts = [(p, t, a) for p, t, a in pts.values() if a is not None]
    un = [(p, t) for p, t, a in pts.values() if a is None]
    if un:
        ax.scatter([p / 1e6 for p, _ in un], [t for _, t in un], marker="x", c="0.6",
                   label="rejected (not scored)")
    if sc_pts:
        s = ax.scatter([p / 1e6 for p, _, _ in sc_pts], [t for _, t, _ in sc_pts],
                       c=[a for _, _, a in sc_pts], cmap="viridis", edgecolors="k", s=40,
                       label="scored")
        fig.colorbar(s, ax=ax, label="proxy validation accuracy")
    pp = [pts[k] for k in path if k in pts]
    if pp:
        ax.plot([p / 1e6 for p, _, _ in pp], [t for _, t, _ in pp], "-", color="tab:red",
                lw=1.5, label="chosen path")
        ax.scatter([pp[0][0] / 1e6], [pp[0][1]], marker="s", s=80, facecolors="none",
                   edgecolors="tab:red", label="seed")
        ax.scatter([pp[-1][0] / 1e6], [pp[-1][1]], marker="*", s=160, color="tab:red",
                   label="final")
    if done:
        if done[-1].get("max_params"):
            ax.axvline(done[-1]["max_params"] / 1e6, ls="--", color="0.3", lw=1)
        if done[-1].get("min_throughput"):
            ax.axhline(done[-1]["min_throughput"], ls="--", color="0.3", lw=1)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("throughput (images/s)")
    ax.set_title("progressive model contraction: explored candidates")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
