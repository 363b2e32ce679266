#!/usr/bin/env python
"""Throughput and parameters of the TinyViT presets (built from contraction factors on timm's
TinyVit) on this CPU, and on CUDA when available, beside the paper's V100 figures.

Paper Table 4: 5.4M / 11M / 21M parameters; 3060 / 2468 / 1571 images/s on one V100 at
batch 256, 224 px. CPU figures use a smaller batch (--cpu-batch, default 16) so the run takes
minutes; CUDA uses --gpu-batch (default 256, like the paper) in fp32 and with fp16 autocast.
Throughput = median of --repeats timed forward passes after --warmup, inference mode
(tinyvit.models.throughput, one pass per call); the presets take turns pass by pass
(interleaved rounds), so load from other jobs on a shared machine hits them alike.

Writes benchmarks/results/models_cpu.json (and models_cuda.json when CUDA ran).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from _common import (RESULTS, cpu_model, finish_facts, interleaved, machine_facts,  # noqa: E402
                     median, write_json)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinyvit.models import (PAPER_PARAMS_M, PAPER_THROUGHPUT_V100, PRESETS, count_params,  # noqa: E402
                            throughput)


def machine(device: str) -> dict:
    d = machine_facts(device, torch_threads=torch.get_num_threads())
    try:
        import timm

        d["timm"] = timm.__version__
    except ImportError:
        pass
    if device == "cuda":
        d["gpu"] = torch.cuda.get_device_name(0)
    return d


def bench(device: str, batch: int, img_size: int, warmup: int, repeats: int, amp_modes,
          threads=None):
    rows = []
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    models, passes = {}, {}
    for name, f in PRESETS.items():
        torch.manual_seed(0)
        models[name] = model = f.build(num_classes=1000, img_size=img_size)
        rows.append({"model": name, "factors": f.to_dict(), "params": count_params(model),
                     "paper_params_m": PAPER_PARAMS_M[name],
                     "paper_v100_img_s": PAPER_THROUGHPUT_V100[name], "batch": batch,
                     "img_size": img_size, "device": device, "threads": torch.get_num_threads()})
        for amp in amp_modes:  # one timed forward pass per call: images/s of that pass
            passes[name, amp] = (lambda model=model, amp=amp: throughput(
                model, img_size, batch, device, warmup=0, repeats=1, amp=amp))
    t = interleaved(passes, repeats, warmup=warmup)
    for row in rows:
        for amp in amp_modes:
            r = t[row["model"], amp]
            row["img_s_amp" if amp else "img_s"] = median(r["result"])
            row["seconds_amp" if amp else "seconds"] = sum(r["wall"])  # timed passes only
    del models, passes
    torch.set_num_threads(old)
    return rows


def table(rows, title):
    print(f"\n{title}")
    amp = any("img_s_amp" in r for r in rows)
    hdr = f"{'model':<13}{'params':>11}{'paper':>8}{'batch':>7}{'threads':>8}{'img/s':>10}"
    hdr += f"{'img/s amp':>11}" if amp else ""
    hdr += f"{'V100 paper':>12}{'ratio':>8}"
    print(hdr)
    for r in rows:
        best = r.get("img_s_amp", r["img_s"])
        line = (f"{r['model']:<13}{r['params'] / 1e6:>10.3f}M{r['paper_params_m']:>7}M"
                f"{r['batch']:>7}{r['threads']:>8}{r['img_s']:>10.1f}")
        line += f"{r['img_s_amp']:>11.1f}" if amp else ""
        line += f"{r['paper_v100_img_s']:>12}{best / r['paper_v100_img_s']:>8.3f}"
        print(line)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CPU batch 8, 1 warm-up, 3 repeats (smoke run)")
    ap.add_argument("--cpu-batch", type=int, default=16, help="CPU batch (default 16)")
    ap.add_argument("--gpu-batch", type=int, default=256, help="CUDA batch (default 256, as the paper)")
    ap.add_argument("--img-size", type=int, default=224, help="input side (default 224)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed passes (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes, median reported (default 5)")
    ap.add_argument("--threads", default="1,0",
                    help="comma-separated CPU intra-op thread counts to compare, 0 = torch default "
                         "(default 1,0: on a shared CPU, multi-threaded timings suffer from "
                         "OpenMP barrier stalls whenever another process holds a core)")
    ap.add_argument("--no-cuda", action="store_true", help="skip CUDA even when available")
    ap.add_argument("--out", default=RESULTS,
                    help="output directory (default benchmarks/results)")
    a = ap.parse_args(argv)
    if a.quick:
        a.cpu_batch, a.warmup, a.repeats = 8, 1, 3
    rows = []
    facts = machine("cpu")
    for th in (int(t) for t in a.threads.split(",")):
        rows += bench("cpu", a.cpu_batch, a.img_size, a.warmup, a.repeats, (False,), th or None)
    table(rows, f"CPU ({cpu_model()}, {os.cpu_count()} cores), {a.img_size} px, "
                f"median of {a.repeats}")
    out = {"benchmark": "models", "quick": a.quick, "machine": finish_facts(facts),
           "settings": {"batch": a.cpu_batch, "img_size": a.img_size, "warmup": a.warmup,
                        "threads": a.threads,
                        "repeats": a.repeats, "num_classes": 1000},
           "paper": {"device": "V100", "batch": 256, "img_size": 224}, "results": rows}
    path = os.path.join(a.out, "models_cpu.json")
    write_json(path, out)
    print(f"wrote {path}")
    if torch.cuda.is_available() and not a.no_cuda:
        facts = machine("cuda")
        rows = bench("cuda", a.gpu_batch, a.img_size, max(a.warmup, 5), max(a.repeats, 10), (False, True))
        table(rows, f"CUDA ({torch.cuda.get_device_name(0)}), {a.img_size} px")
        out = {"benchmark": "models", "quick": a.quick, "machine": finish_facts(facts),
               "settings": {"batch": a.gpu_batch, "img_size": a.img_size},
               "paper": {"device": "V100", "batch": 256, "img_size": 224}, "results": rows}
        path = os.path.join(a.out, "models_cuda.json")
        write_json(path, out)
        print(f"wrote {path}")
    else:
        print("CUDA not available: GPU throughput not measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
