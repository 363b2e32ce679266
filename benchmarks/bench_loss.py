#!/usr/bin/env python
"""Dense vs sparse soft cross-entropy (TinyViT Eq. 2), forward + backward.

Methods, run side by side on the same inputs (logits [B, C] requiring grad, int64 top-k indices,
fp32 top-k probabilities):
  dense           the official path: build the dense B x C target (fill u, scatter v), then
                  sum(-target * log_softmax(z)) (tinyvit.loss.dense_soft_cross_entropy)
  naive_sparse    the sparse formula in plain PyTorch ops (logsumexp, gather, sum), autograd
  compiled_dense  torch.compile of the dense path (dynamic shapes, one compile per dtype)
  ours            tinyvit.sparse_soft_cross_entropy (gradient in a separate backward kernel, the
                  only mode the library selects; docs/loss.md "Gradient in the forward pass")
  ours_gif        the same op and checks, gradient computed in the forward pass (the op's
                  compute_grad=True, kept in its schema; tinyvit.loss._sparse_ce)

Time: median over repeats of one full step (z.grad = None; loss = f(...); loss.backward());
the methods take turns within each repeat (round-robin), so load from other processes on a
shared machine affects them alike.
Peak extra memory: CUDA: torch.cuda.max_memory_allocated() minus the allocation before the step.
CPU: torch.profiler(profile_memory=True) allocation events of one step, accumulated in time
order (op granularity); the peak of that running sum. Both include the B x C gradient itself.
CUDA only: % of memory-bandwidth roofline with bytes = read logits + write grad + read
indices/probs, against the bandwidth of a measured device-to-device copy (and a table peak).

Writes benchmarks/results/loss_<device>.json and .png.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyvit.loss import _sparse_ce, dense_soft_cross_entropy, sparse_soft_cross_entropy  # noqa: E402
from _common import (RESULTS, finish_facts, interleaved, machine_facts,  # noqa: E402
                     median, pyplot, save_png, write_json)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Spec-sheet peak DRAM bandwidth (GB/s), for reference next to the measured copy bandwidth.
PEAK_BW_TABLE = {"H100 SXM": 3350, "H100 PCIe": 2000, "H100": 3350, "H200": 4800, "A100-SXM4-80GB": 2039,
                 "A100-SXM4-40GB": 1555, "A100": 1555, "V100": 900, "L4": 300, "A10": 600, "4090": 1008}


def naive_sparse(logits, idx, probs, reduction="mean"):
    c, k = logits.shape[1], idx.shape[1]
    v = probs.to(logits.dtype)
    u = ((1 - v.sum(1)) / (c - k)).clamp_min(0)
    zi = logits.gather(1, idx)
    loss = torch.logsumexp(logits, 1) - ((v - u[:, None]) * zi).sum(1) - u * logits.sum(1)
    return loss.mean()


def ours_gif(logits, idx, probs):
    # the public function's exact path (same checks, validate=True), compute_grad=True
    return _sparse_ce(logits, idx, probs, "mean", True, compute_grad=True)


def loss_machine_facts(device):
    facts = machine_facts(device, torch_threads=torch.get_num_threads(), platform=platform.platform(),
                          time_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        facts.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                     capability=f"{p.major}.{p.minor}")
    return facts


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_extra_bytes(logits, step, device):
    logits.grad = None  # freed before measuring, so the new gradient counts as extra memory
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    points = []
    for e in prof.events():
        if e.name == "[memory]":  # frees (and allocations) not attributed to an op
            points.append((e.time_range.start, e.cpu_memory_usage))
        elif e.self_cpu_memory_usage:
            points.append((e.time_range.end, e.self_cpu_memory_usage))
    points.sort(key=lambda p: p[0])
    cur = peak = 0
    for _, b in points:
        cur += b
        peak = max(peak, cur)
    return peak


def warmed_step(fn, logits, idx, probs, warmup, device):
    """fn's fwd+bwd on the inputs as a step (the gradient cleared first), run ``warmup`` times and
    synced, then its peak extra memory measured: (step, warm-up seconds, peak extra bytes).
    Raises what fn raises. gpu_stages times the loss with it too."""
    def run():
        fn(logits, idx, probs).backward()

    def step():
        logits.grad = None
        run()
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warm_s = time.perf_counter() - t0
    return step, warm_s, int(peak_extra_bytes(logits, run, device))


def copy_bandwidth_gbs(device):
    x = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    best = math.inf
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        y.copy_(x)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * x.numel() / best / 1e9


def table_bw(name):
    for key, bw in PEAK_BW_TABLE.items():
        if key.replace(" ", "").lower() in name.replace(" ", "").lower():
            return bw
    return None


def make_inputs(b, c, k, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, generator=g) * 3).to(device=device, dtype=dtype).requires_grad_()
    idx = torch.rand(b, c, generator=g).argsort(1)[:, :k].to(device)
    probs = (torch.softmax(torch.randn(b, k, generator=g) * 2, 1) * 0.9).to(device)
    return logits, idx, probs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="B=256, C in {1000, 21841}, K=100, fp32 only")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7, quick 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile of the dense path")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for CPU runs (default: torch's default). On a shared machine "
                         "1 thread gives stable medians: a descheduled pool thread stalls every parallel op")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/loss_<device>.json)")
    args = ap.parse_args(argv)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    if args.quick:
        configs, dtypes = [(256, 1000, 100), (256, 21841, 100)], ["fp32"]
    else:
        configs = [(b, c, k) for b in (128, 256, 1024) for c in (1000, 21841) for k in (10, 100)]
        dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    methods = {"dense": dense_soft_cross_entropy, "naive_sparse": naive_sparse,
               "ours": sparse_soft_cross_entropy, "ours_gif": ours_gif}
    compiled, compile_notes = None, {}
    if not args.no_compile:
        try:
            compiled = torch.compile(dense_soft_cross_entropy, dynamic=True)
            methods["compiled_dense"] = compiled
        except Exception as exc:  # torch.compile unavailable on this platform
            compile_notes["error"] = f"{type(exc).__name__}: {exc}"
    facts = loss_machine_facts(device)
    bw = None
    if device == "cuda":
        bw = {"copy_gbs": copy_bandwidth_gbs(device), "table_gbs": table_bw(facts["gpu"])}
        facts["bandwidth"] = bw

    rows = []
    header = f"{'dtype':5} {'B':>5} {'C':>6} {'K':>4} | " + " | ".join(f"{m:>14}" for m in methods)
    print(f"fwd+bwd median ms (peak extra MiB), {device}, {facts['torch_threads']} threads, torch {torch.__version__}")
    print(header)
    for dname in dtypes:
        dtype = DTYPES[dname]
        for b, c, k in configs:
            logits, idx, probs = make_inputs(b, c, k, dtype, device)
            row = {"dtype": dname, "B": b, "C": c, "K": k, "methods": {}}
            steps = {}
            for name, fn in methods.items():
                entry = {}
                try:
                    # compiled_dense: the first call compiles
                    step, warm_s, peak = warmed_step(fn, logits, idx, probs, 1 + args.warmup, device)
                    if name == "compiled_dense":
                        entry["first_calls_s"] = warm_s
                    entry["peak_extra_bytes"] = peak
                    steps[name] = step
                except Exception as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                    if os.environ.get("BENCH_DEBUG"):
                        traceback.print_exc()
                row["methods"][name] = entry
            # Round-robin over the methods inside each repeat, so that load from other processes
            # on a shared machine hits all methods alike; medians per method.
            # Timed: the step and the device sync after it; the sync before is untimed.
            timed_steps = {name: (lambda step=step: (step(), sync(device))) for name, step in steps.items()}
            times = interleaved(timed_steps, repeats, warmup=0, before=lambda name: sync(device))
            for name, t in times.items():
                ts = t["wall"]
                entry = row["methods"][name]
                med = median(ts)
                entry.update(median_ms=med * 1e3, min_ms=min(ts) * 1e3, times_ms=[t * 1e3 for t in ts])
                if bw is not None:
                    elt = logits.element_size()
                    nbytes = 2 * b * c * elt + b * k * (idx.element_size() + probs.element_size())
                    entry["roofline_bytes"] = nbytes
                    entry["achieved_gbs"] = nbytes / med / 1e9
                    entry["roofline_pct_copy"] = 100 * entry["achieved_gbs"] / bw["copy_gbs"]
                    if bw["table_gbs"]:
                        entry["roofline_pct_table"] = 100 * entry["achieved_gbs"] / bw["table_gbs"]
            dense_ms = row["methods"]["dense"].get("median_ms")
            for name, e in row["methods"].items():
                if dense_ms and "median_ms" in e:
                    e["speedup_vs_dense"] = dense_ms / e["median_ms"]
            if "median_ms" in row["methods"]["ours"] and "median_ms" in row["methods"].get("compiled_dense", {}):
                row["ours_vs_compiled_dense"] = (row["methods"]["compiled_dense"]["median_ms"]
                                                 / row["methods"]["ours"]["median_ms"])
            rows.append(row)
            cells = []
            for name in methods:
                e = row["methods"][name]
                cells.append(f"{e['median_ms']:7.2f} ({e['peak_extra_bytes'] / 2**20:5.1f})" if "median_ms" in e
                             else f"{'n/a':>14}")
            print(f"{dname:5} {b:5d} {c:6d} {k:4d} | " + " | ".join(f"{x:>14}" for x in cells), flush=True)

    print("\nspeed-up of ours vs dense (x): " + ", ".join(
        f"{r['dtype']} B={r['B']} C={r['C']} K={r['K']}: {r['methods']['ours'].get('speedup_vs_dense', float('nan')):.2f}"
        for r in rows))
    out = args.out or os.path.join(RESULTS, f"loss_{device}{'_quick' if args.quick else ''}.json")
    finish_facts(facts)
    result = {"benchmark": "bench_loss", "machine": facts, "repeats": repeats, "warmup": args.warmup,
              "inputs": "logits randn*3 requiring grad; int64 indices; fp32 probs summing to 0.9; reduction=mean",
              "memory_method": ("torch.cuda.max_memory_allocated - memory_allocated before the step" if device == "cuda"
                                else "torch.profiler profile_memory: running sum of allocation/free events, peak"),
              "compile": compile_notes, "rows": rows}
    if device != "cuda":
        result["cuda"] = "not measured in this run"
    write_json(out, result, indent=1)
    print(f"wrote {out}")
    if plot(rows, list(methods), out[:-5] + ".png", facts):
        print(f"wrote {out[:-5]}.png")


def plot(rows, methods, path, facts):
    plt = pyplot()
    if plt is None:
        return None
    dtypes = sorted({r["dtype"] for r in rows}, key=lambda d: list(DTYPES).index(d))
    fig, axes = plt.subplots(len(dtypes), 1, figsize=(max(8, len(rows) // len(dtypes) * 1.1), 4 * len(dtypes)),
                             squeeze=False)
    width = 0.8 / len(methods)
    for ax, dname in zip(axes[:, 0], dtypes):
        sub = [r for r in rows if r["dtype"] == dname]
        for j, name in enumerate(methods):
            ys = [r["methods"][name].get("median_ms", float("nan")) for r in sub]
            ax.bar([i + j * width for i in range(len(sub))], ys, width, label=name)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sub))])
        ax.set_xticklabels([f"B={r['B']}\nC={r['C']}\nK={r['K']}" for r in sub], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("fwd+bwd ms (median, log)")
        ax.set_title(f"{dname} on {facts.get('gpu', facts['cpu'])} ({facts['device']}), torch {facts['torch']}")
        ax.legend(fontsize=7, ncol=len(methods))
    fig.tight_layout()
    return save_png(fig, path, facts)


if __name__ == "__main__":
    main()
