"""Render every measured number the README and docs quote from benchmarks/results/*.json.

A cited table or figure lives between two markers, written and rewritten only by this script:

    <!-- results NAME: loader.json store.json -->
    ...generated text...
    <!-- /results -->

NAME picks a renderer below (BLOCKS); the files after the colon are the JSONs it reads (the
marker line is regenerated too, so it always says where the numbers come from).

    python benchmarks/render_numbers.py                  # rewrite README.md and docs/*.md in place
    python benchmarks/render_numbers.py --check          # exit 1 naming each stale block
    python benchmarks/render_numbers.py --results DIR --print   # render from other JSONs to stdout

`make bench` runs it after the benchmarks; tests/test_numbers.py re-renders and compares
byte for byte, so a number edited by hand, or a JSON rerun without re-rendering, fails.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

MARKER = re.compile(r"<!-- results (?P<name>[\w-]+): (?P<files>[^>]*?) -->\n(?P<body>.*?)<!-- /results -->",
                    re.S)


class RenderError(ValueError):
    """A marker names no renderer, or a JSON lacks what its renderer needs."""


# ---------------------------------------------------------------------------------- formatting
def num(x: float) -> str:
    """Three significant figures, no exponent: 819.5 -> 820, 4.653 -> 4.65, 0.9921 -> 0.99."""
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}" if a >= 10000 else f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(x: float) -> str:
    return f"{x:.2f}×"


def machine(d: dict) -> dict:
    return d.get("machine", {})


def cpu_name(d: dict) -> str:
    m = machine(d)
    return m.get("cpu") or m.get("cpu_model") or "unknown CPU"


def load(d: dict) -> str:
    m = machine(d)
    a, b = m.get("load_average_at_start"), m.get("load_average_at_end")
    if a and b:
        return f"load {a[0]:.1f} → {b[0]:.1f}"
    return "load not recorded"


def conditions(name: str, d: dict) -> str:
    """`name`: CPU, cores, load at start -> end, commit, csrc tree (short)."""
    m = machine(d)
    commit = (m.get("commit") or m.get("tinyvit_commit") or "")[:10] or "not recorded"
    tree = (m.get("csrc_tree") or "")[:10] or "not recorded"
    return (f"`{name}`: {cpu_name(d)}, {m.get('cores', m.get('cpu_count', '?'))} cores, {load(d)}, "
            f"commit {commit}, csrc tree {tree}")


# ------------------------------------------------------------------------------------ lookups
def loader_rate(d, path, key="img_per_cpu_s_1"):
    return d["results"][path][key]


def store_row(d, K, op, method):
    for r in d["rows"]:
        if r["K"] == K and r["op"] == op and r["method"] == method:
            return r
    raise RenderError(f"store.json: no row K={K} op={op} method={method!r}")


def loss_row(d, dtype="fp32", B=256, C=21841, K=100):
    for r in d["rows"]:
        if (r["dtype"], r["B"], r["C"], r["K"]) == (dtype, B, C, K):
            return r
    raise RenderError(f"loss_cpu.json: no row {dtype} B={B} C={C} K={K}")


def mib(nbytes):
    return f"{nbytes / 2**20:.1f}"


def acc_summary(d):
    return d["summary"]


# ------------------------------------------------------------------------------------ renderers
CPP, PIL_PATH, TIMM, TIMM_FULL, DECODE = ("tinyvit C++ (replay_batch)", "tinyvit Pillow path",
                                          "timm create_transform (uint8)", "timm full (+ToTensor/Normalize/RE)",
                                          "PIL full decode only")


def r_readme_headline(j):
    ld, st, ls, sc = j["loader.json"], j["store.json"], j["loss_cpu.json"], j["scale.json"]
    cpp, timm, dec = (loader_rate(ld, p) for p in (CPP, TIMM, DECODE))
    rd = store_row(st, 100, "read", "tinyvit fp16 (LogitStore.read)")["records_per_cpu_s"] / 1e6
    npm = store_row(st, 100, "read", "numpy memmap (fancy idx + astype)")["records_per_cpu_s"] / 1e6
    lr = loss_row(ls)["methods"]
    ours, dense, comp = (lr[k]["median_ms"] for k in ("ours", "dense", "compiled_dense"))
    f, t = sc["folder"], sc["tarshards"]
    lines = [
        "| what | tinyvit | peer | ratio |",
        "|---|---:|---:|---:|",
        f"| augmented replay to a uint8 224 px batch, RRC + flip + `rand-m9-mstd0.5-inc1`, img / CPU-s "
        f"| **{num(cpp)}** | timm `create_transform`: {num(timm)} | **{ratio(cpp / timm)}** |",
        f"| same, against decoding alone | {num(cpp)} | Pillow full decode (`open` + `convert`): {num(dec)} "
        f"| {ratio(cpp / dec)} |",
        "| same, FFCV / DALI CPU pipelines | - | not measured yet | - |",
        f"| store read, K = 100 fp16, checksum and record contract verified on a private copy, M records / CPU-s "
        f"| **{num(rd)}** | NumPy memmap + fancy indexing, no checks: {num(npm)} | **{ratio(rd / npm)}** |",
        f"| sparse soft CE fwd + bwd, fp32, B = 256, C = 21841, K = 100, ms | **{num(ours)}** "
        f"| dense soft CE: {num(dense)} / `torch.compile(dense)`: {num(comp)} "
        f"| **{ratio(dense / ours)}** / {ratio(comp / ours)} |",
        f"| peak extra memory of that loss, MiB | {mib(lr['ours']['peak_extra_bytes'])} (the gradient) "
        f"| dense: {mib(lr['dense']['peak_extra_bytes'])} "
        f"| {ratio(lr['ours']['peak_extra_bytes'] / lr['dense']['peak_extra_bytes'])} |",
        f"| reopen an indexed {sc['files']:,}-file folder / tar shards of as many samples | "
        f"{f['reopen_s'] * 1e3:.0f} ms / {t['reopen_s'] * 1e3:.0f} ms | private memory per forked worker: "
        f"{f['worker_private_dirty_bytes_per_file']:.1f} / {t['worker_private_dirty_bytes_per_file']:.1f} B per "
        "file | - |",
        "",
        "Measured on: " + "; ".join(conditions(n, j[n]) for n in ("loader.json", "store.json", "loss_cpu.json",
                                                                   "scale.json")) + ".",
    ]
    return "\n".join(lines) + "\n\n" + r_readme_experiment(j)


def r_readme_experiment(j):
    e = j["experiment_fmnist.json"]
    s = acc_summary(e)
    scratch = s["scratch"]["mean"]
    ks = sorted(int(k[len("stored_k"):]) for k in s if k.startswith("stored_k"))
    gains = [100 * (s[f"stored_k{k}"]["mean"] - scratch) for k in ks]
    dense_vs_online = 100 * (s[f"stored_k{max(ks)}"]["mean"] - s["online"]["mean"])
    verb = "beats" if min(gains) > 0 else "does not beat"
    st = e["step_time_ratio_vs_hard"]
    return (f"At Fashion-MNIST scale ({s['scratch']['n']} seeds, `experiment_fmnist.json`) stored sparse KD {verb} "
            f"hard-label training for every K in {ks} ({min(gains):+.1f} to {max(gains):+.1f} points), stored "
            f"dense KD is {dense_vs_online:+.2f} points from online KD, and a stored-KD step costs "
            f"{ratio(st['stored_k' + str(max(ks))])} a hard-label step while online KD costs {ratio(st['online'])}.\n")


def r_loader(j):
    d = j["loader.json"]
    rows = ["| path | img / CPU-s | 1 worker img/s | 2 workers img/s |", "|---|---:|---:|---:|"]
    for label, key in ((CPP, "tinyvit C++ (`replay_batch`)"), (PIL_PATH, "tinyvit Pillow path"),
                       (TIMM, "timm `create_transform` (to uint8)"),
                       (TIMM_FULL, "timm full (+ToTensor/Normalize/RandomErasing)"),
                       (DECODE, "Pillow full decode only (`open` + `convert(\"RGB\")`)")):
        r = d["results"][label]
        rows.append(f"| {key} | {num(r['img_per_cpu_s_1'])} | {num(r['img_per_s_1'])} | {num(r['img_per_s_2'])} |")
    ra = d["ratios"]
    rows += ["", f"{d['images']} JPEGs, batches of {d['batch']}, {d['repeats']} timed passes per method, medians. "
             f"C++ vs timm {ratio(ra['cpp_over_timm_per_cpu_second'])} per CPU-second "
             f"({ratio(ra['cpp_over_timm_2'])} with 2 workers each); C++ vs full-decode-only "
             f"{ratio(ra['cpp_over_decode_only_per_cpu_second'])}; 2 threads vs 1 {ratio(ra['cpp_scaling_2_over_1'])} "
             f"wall clock ({ratio(ra['cpp_scaling_2_over_1_cpu_time'])} in CPU-time terms). Targets met: "
             f"{sum(d['targets_met'].values())} of {len(d['targets_met'])}.",
             "", "Measured on " + conditions("loader.json", d) + "."]
    return "\n".join(rows) + "\n"


def r_ra_ops(j):
    d = j["ra_ops.json"]
    net = sorted(d["net_us_per_op"].items(), key=lambda kv: -kv[1])
    rows = ["| op (224², net of binding overhead) | µs per call |", "|---|---:|"]
    rows += [f"| {op} | {num(us)} |" for op, us in net]
    rows += ["", f"Expected RandAugment cost per image (`rand-m9-mstd0.5-inc1`): "
             f"{num(d['expected_us_per_image_rand_m9_mstd0.5_inc1'])} µs; binding overhead "
             f"{num(d['binding_overhead_us'])} µs per call. Measured on " + conditions("ra_ops.json", d) + "."]
    return "\n".join(rows) + "\n"


STORE_OPS = (("read", "tinyvit fp16 (LogitStore.read)"), ("read", "tinyvit fp16 (C++ call only)"),
             ("read", "tinyvit fp16 (fresh outputs)"), ("read", "tinyvit fp16 (portable ISA)"),
             ("read", "tinyvit compact (LogitStore.read)"), ("read", "numpy memmap (fancy idx + astype)"),
             ("read", "reference key file (seek+read)"), ("write", "tinyvit fp16"), ("write", "tinyvit compact"),
             ("write", "numpy memmap"), ("write", "reference key file"), ("scan", "tinyvit fp16 missing() scan"))


def r_store(j):
    d = j["store.json"]
    rows = ["| K | operation | method | note | M records/s (wall) | M records/CPU-s |", "|---|---|---|---|---:|---:|"]
    for K in (100, 10):
        for op, method in STORE_OPS:
            r = next((r for r in d["rows"] if (r["K"], r["op"], r["method"]) == (K, op, method)), None)
            if r is not None:
                rows.append(f"| {K} | {op} | {method} | {r.get('note', '')} | {num(r['records_per_s'] / 1e6)} "
                            f"| {num(r['records_per_cpu_s'] / 1e6)} |")
    ra = d["ratios"]
    rows += ["", f"C = {d['C']}, B = {d['B']} random sample indices per batch, N = {d['N']:,} records per store, "
             f"median of {d['repeats']} interleaved repeats. K = 100 fp16 read vs the NumPy-memmap reader: "
             f"{ratio(ra['K100_fp16_read_vs_numpy_memmap'])}; vs the reference key-file reader: "
             f"{ratio(ra['K100_fp16_read_vs_reference_keyfile'])} (neither verifies anything).",
             "", "Measured on " + conditions("store.json", d) + "."]
    return "\n".join(rows) + "\n"


LOSS_ROWS = (("fp32", 128, 1000, 10), ("fp32", 256, 21841, 10), ("fp32", 256, 21841, 100),
             ("fp32", 1024, 21841, 100), ("bf16", 256, 21841, 100), ("bf16", 1024, 21841, 100))


def r_loss(j):
    d = j["loss_cpu.json"]
    rows = ["| dtype | B | C | K | dense ms (MiB) | naive sparse | torch.compile(dense) | **ours** "
            "| ours, grad in fwd | ours vs dense | ours vs compiled |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    have = {(r["dtype"], r["B"], r["C"], r["K"]): r for r in d["rows"]}
    for key in LOSS_ROWS:
        if key not in have:
            continue
        m = have[key]["methods"]
        cell = {k: f"{m[k]['median_ms']:.2f} ({mib(m[k]['peak_extra_bytes'])})" for k in m}
        rows.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {cell['dense']} | {cell['naive_sparse']} "
                    f"| {cell['compiled_dense']} | **{cell['ours']}** | {cell['ours_gif']} "
                    f"| {ratio(m['dense']['median_ms'] / m['ours']['median_ms'])} "
                    f"| {ratio(m['compiled_dense']['median_ms'] / m['ours']['median_ms'])} |")
    sp = [r["methods"]["dense"]["median_ms"] / r["methods"]["ours"]["median_ms"] for r in d["rows"]]
    rows += ["", f"Across all {len(d['rows'])} configs ours is {ratio(min(sp))} to {ratio(max(sp))} the speed of "
             f"the dense path (median {ratio(statistics.median(sp))}); median of {d['repeats']} repeats, methods "
             "interleaved per repeat.", "", "Measured on " + conditions("loss_cpu.json", d) + "."]
    return "\n".join(rows) + "\n"


def r_models(j):
    d = j["models_cpu.json"]
    by = {}
    for r in d["results"]:
        by.setdefault(r["model"], {})[r["threads"]] = r
    threads = sorted({r["threads"] for r in d["results"]})
    rows = ["| model | params | paper params | " + " | ".join(f"CPU img/s, {t} thread{'s' * (t != 1)}"
                                                                for t in threads) + " | paper V100 img/s |",
            "|---|---|---|" + "---|" * len(threads) + "---|"]
    for model, per in by.items():
        r0 = next(iter(per.values()))
        rows.append(f"| {model} | {r0['params']:,} | {r0['paper_params_m']}M | "
                    + " | ".join(num(per[t]["img_s"]) if t in per else "-" for t in threads)
                    + f" | {r0['paper_v100_img_s']} |")
    s = d["settings"]
    rows += ["", f"{s['img_size']} px, {s['num_classes']} classes, batch {s['batch']}, median of {s['repeats']} "
             f"after {s['warmup']} warm-ups. Measured on " + conditions("models_cpu.json", d) + "."]
    return "\n".join(rows) + "\n"


def r_experiment(j):
    d = j["experiment_fmnist.json"]
    s, st, a = d["summary"], d["step_time_s"], d["args"]
    names = {"scratch": "scratch (hard labels)", "online": "online dense KD"}
    rows = [f"| run | test acc (n = {s['scratch']['n']}) | store bytes | step time |", "|---|---|---|---|"]
    step_key = {"scratch": "hard", "online": "online"}
    for run in s:
        k = run[len("stored_k"):] if run.startswith("stored_k") else None
        label = names.get(run) or f"stored sparse KD, K = {k}"
        store = d["stores"].get(k) if k else None
        sb = f"{store['bytes']:,} ({store['record_size']} B/record)" if store else "-"
        sk = step_key.get(run, run)
        step = (f"{st[sk]['median'] * 1e3:.1f} ms ({ratio(d['step_time_ratio_vs_hard'][sk])})" if sk in st else "")
        rows.append(f"| {label} | {s[run]['mean']:.4f} ± {s[run]['std']:.4f} | {sb} | {step} |")
    rows += ["", f"Teacher `{a['teacher']}` ({a['teacher_samples']:,} images, {a['teacher_epochs']} epochs): "
             f"{d['teacher']['val_acc']:.4f} test accuracy; student `{a['student']}`, {a['epochs']} epochs on "
             f"{a['train_samples']:,} images, {a['seeds']} seeds, test on {a['val_samples']:,}; step = median of "
             f"{a['timing_repeats']}. Measured on " + conditions("experiment_fmnist.json", d) + "."]
    return "\n".join(rows) + "\n"


def r_ab_main(j):
    d = j["ab_main.json"]
    rows = ["| measure | unit | base | current | paired ratio current / base (median, min-max) |",
            "|---|---|---:|---:|---|"]
    for name, m in d["measures"].items():
        rs = m["ratios"]
        rows.append(f"| {name} | {m['unit']} | {num(statistics.median(m['base']))} | "
                    f"{num(statistics.median(m['current']))} | {statistics.median(rs):.3f} "
                    f"({min(rs):.3f}-{max(rs):.3f}) |")
    rows += ["", f"{d['rounds']} interleaved rounds (base and current alternate, each in its own process); "
             f"base {d['base']['commit'][:10] if d['base'].get('commit') else '?'} (csrc tree "
             f"{(d['base'].get('csrc_tree') or '?')[:10]}). Measured on " + conditions("ab_main.json", d) + "."]
    if d["base"].get("csrc_tree") and d["base"].get("csrc_tree") == d.get("current", {}).get("csrc_tree"):
        rows.append("\nBoth sides have the same `csrc/` tree: this is an A/A run, and the min-max spread is the "
                    "noise of this machine, not a difference of code.")
    return "\n".join(rows) + "\n"


def r_scale(j):
    """docs/data.md: the index at scale (bench_scale.py), folder vs tar shards."""
    d = j["scale.json"]
    f, t = d["folder"], d["tarshards"]
    n = d["files"]
    per = f"{n:,}" if n != 1_000_000 else "1 M"

    def both(fn):
        return f"| {fn(f)} | {fn(t)} |"

    rows = [
        f"{n:,} tiny JPEGs in class directories and the same images in {d['shards']} tar shards; "
        f"{d['threads']} build threads; every reopen timed in a fresh process; "
        f"{conditions('scale.json', d)}.",
        "",
        "| | folder | tar shards |",
        "|---|---|---|",
        f"| index build, cold | {num(f['build_s'])} s / {per} | {num(t['build_s'])} s / {per} |",
        f"| reopen (read + verify the index) | {num(1000 * f['reopen_s'])} ms / {per} "
        f"| {num(1000 * t['reopen_s'])} ms / {per} |",
        f"| reopen per million files | {num(1000 * f['reopen_s_per_million'])} ms "
        f"| {num(1000 * t['reopen_s_per_million'])} ms |",
        f"| reopen extrapolated to 14.2 M | {num(f['at_14.2M']['reopen_s'])} s "
        f"| {num(t['at_14.2M']['reopen_s'])} s |",
        f"| build extrapolated to 14.2 M (this box) | {num(f['at_14.2M']['build_s'] / 60)} min, once "
        f"| {num(t['at_14.2M']['build_s'] / 60)} min, once |",
        f"| index file | {num(f['index_file_bytes_per_file'])} B / file "
        f"({num(f['at_14.2M']['index_file_GB'])} GB at 14.2 M) "
        f"| {num(t['index_file_bytes_per_file'])} B / sample ({num(t['at_14.2M']['index_file_GB'])} GB) |",
        both(lambda x: f"{num(x['anon_bytes_per_file_open'])} B / file").replace(
            "| ", "| anonymous memory added by opening | ", 1),
        both(lambda x: f"{num(x['worker_private_dirty_bytes_per_file'])} B / file").replace(
            "| ", "| private dirty memory of a forked worker touching every entry | ", 1),
        both(lambda x: f"{num(x['sizes_all_s'])} s").replace(
            "| ", f"| `source_sizes` + labels for all {per} files (one call) | ", 1),
    ]
    return "\n".join(rows) + "\n"


# name -> (the JSONs it reads, renderer(dict of file name -> parsed JSON) -> markdown)
BLOCKS = {
    "readme-headline": (("loader.json", "store.json", "loss_cpu.json", "scale.json", "experiment_fmnist.json"),
                        r_readme_headline),
    "loader": (("loader.json",), r_loader),
    "ra-ops": (("ra_ops.json",), r_ra_ops),
    "store": (("store.json",), r_store),
    "loss": (("loss_cpu.json",), r_loss),
    "models": (("models_cpu.json",), r_models),
    "experiment": (("experiment_fmnist.json",), r_experiment),
    "ab-main": (("ab_main.json",), r_ab_main),
    "scale": (("scale.json",), r_scale),
}


# ------------------------------------------------------------------------------------- driver
def doc_paths(root: str = ROOT) -> list:
    return [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))


def render_text(text: str, results=RESULTS, where: str = "?") -> str:
    """``text`` with every results block re-rendered from the JSONs in ``results`` (a folder,
    or a list of folders searched in order)."""
    def one(m):
        name = m.group("name")
        if name not in BLOCKS:
            raise RenderError(f"{where}: marker names no renderer: {name!r} (known: {', '.join(BLOCKS)})")
        files, fn = BLOCKS[name]
        data = {}
        for f in files:
            dirs = [results] if isinstance(results, str) else list(results)
            path = next((os.path.join(d, f) for d in dirs if os.path.exists(os.path.join(d, f))),
                        os.path.join(dirs[0], f))
            try:
                with open(path) as fh:
                    data[f] = json.load(fh)
            except (OSError, ValueError) as e:
                raise RenderError(f"{where}: block {name!r}: cannot read {path}: {e}") from None
        try:
            body = fn(data)
        except (KeyError, TypeError, ZeroDivisionError) as e:
            raise RenderError(f"{where}: block {name!r}: {files} lack {e!r}") from None
        return f"<!-- results {name}: {' '.join(files)} -->\n{body}<!-- /results -->"

    return MARKER.sub(one, text)


def render_all(root: str = ROOT, results=RESULTS) -> dict:
    """path -> (current text, rendered text) for README.md and docs/*.md."""
    out = {}
    for p in doc_paths(root):
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
        out[p] = (text, render_text(text, results, os.path.relpath(p, root)))
    return out


# -------------------------------------------------------------------------------------- audit
# Records, not benchmarks: the verdict counts of adversarial campaigns and one-off design
# measurements (rerun by their own scripts, minutes each; the test suite reruns a short form of
# every campaign on the code it ships with). They are exempt from the "cited somewhere", the
# "measured on this csrc/" and the "figures only in rendered blocks" rules, and must instead
# name the commit they were run at (test_numbers), so a reader sees what code they describe.
CAMPAIGN_RECORDS = ("fuzz_*.json", "crash_*.json", "race_*.json", "index_open.json")


def is_record(name: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(name, pat) for pat in CAMPAIGN_RECORDS)


def record_commit(doc: dict):
    """The commit a record names (its scripts predate one provenance format), or None."""
    m = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
    return (doc.get("commit") or doc.get("git") or m.get("commit") or m.get("tinyvit_commit")
            or doc.get("tinyvit_commit"))
# A measured figure: a decimal, a ratio (3.8×, 2x), a percentage, or a number with a unit.
FIGURE = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)?\s?[×x](?![\w\d]|\s?\d)"
                    r"|\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?(?:ms|µs|img/s|MiB|GiB|MB|GB)\b")


def result_files(results: str = RESULTS) -> list:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(results, "*.json")))


def _names_in(text: str, names) -> set:
    found = set()
    for n in names:
        stem = n[: -len(".json")]
        if n in text or re.search(re.escape(stem) + r"\.\{json", text):
            found.add(n)
    return found


def _outside_markers(text: str) -> str:
    return MARKER.sub("\n\n", text)


def cited(root: str = ROOT, results: str = RESULTS) -> set:
    """Results JSONs named in README.md or docs/*.md (in a marker line or in the text)."""
    names = set(result_files(results)) | {f for files, _ in BLOCKS.values() for f in files}
    out = set()
    for p in doc_paths(root):
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
        out |= _names_in(text, names)
        out |= {f for m in MARKER.finditer(text) for f in m.group("files").split()}
    return out


def orphans(root: str = ROOT, results: str = RESULTS) -> list:
    """JSONs in ``results`` that no page cites (campaign records excepted)."""
    import fnmatch

    c = cited(root, results)
    return [n for n in result_files(results)
            if n not in c and not any(fnmatch.fnmatch(n, pat) for pat in CAMPAIGN_RECORDS)]


def _paragraphs(text: str):
    """Blank-line separated paragraphs; a table's rows count one by one."""
    for para in re.split(r"\n\s*\n", text):
        lines = para.strip().splitlines()
        if lines and all(l.lstrip().startswith("|") for l in lines):
            yield from lines
        else:
            yield para


DANGLING = re.compile(r"(?<!:)benchmarks/results/([\w.-]+\.json)\b")


def dangling(root: str = ROOT, results: str = RESULTS) -> list:
    """(page, name) for each `benchmarks/results/NAME.json` named but absent (a reference to an
    old commit's file is written `git show SHA:benchmarks/results/NAME.json`: not checked)."""
    have = set(result_files(results))
    out = []
    for p in doc_paths(root):
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
        out += [(os.path.relpath(p, root), n) for n in DANGLING.findall(text) if n not in have]
    return out


def figures_outside_markers(root: str = ROOT, results: str = RESULTS) -> list:
    """(page, JSON, figure, paragraph start) for each measured-looking figure in a paragraph
    that names a results JSON outside the markers (inline code is not prose: skipped)."""
    names = set(result_files(results)) | {f for files, _ in BLOCKS.values() for f in files}
    out = []
    for p in doc_paths(root):
        with open(p, encoding="utf-8") as fh:
            text = _outside_markers(fh.read())
        for para in _paragraphs(text):
            hits = {h for h in _names_in(para, names) if not is_record(h)}
            if not hits:
                continue
            prose = re.sub(r"`[^`]*`", "", para)
            for m in FIGURE.finditer(prose):
                for h in sorted(hits):
                    out.append((os.path.relpath(p, root), h, m.group(0), para.strip()[:60]))
    return out


def provenance_problems(files, expected_tree: str, results: str = RESULTS) -> list:
    """(JSON, why) for each of ``files`` not measured on the csrc/ tree ``expected_tree``."""
    out = []
    for f in sorted(files):
        try:
            with open(os.path.join(results, f)) as fh:
                m = json.load(fh).get("machine", {})
        except (OSError, ValueError, AttributeError) as e:
            out.append((f, f"unreadable: {e}"))
            continue
        if m.get("csrc_dirty"):
            out.append((f, "measured on a csrc/ with uncommitted changes"))
        elif not m.get("csrc_tree"):
            out.append((f, "records no csrc_tree (measured before provenance was recorded)"))
        elif m["csrc_tree"] != expected_tree:
            out.append((f, f"measured on csrc tree {m['csrc_tree'][:10]}, the commit has {expected_tree[:10]}"))
    return out


def current_csrc_tree(root: str = ROOT) -> str:
    """The csrc/ tree of the commit checked out (git), else of the files on disk (no git)."""
    sys.path.insert(0, HERE)
    from _common import _git, tree_hash

    return _git("rev-parse", "HEAD:csrc", root=root) or tree_hash(os.path.join(root, "csrc"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    ap.add_argument("--print", action="store_true", help="print the rendered blocks instead of writing")
    ap.add_argument("--results", action="append", help="folder of the JSONs (default benchmarks/results); "
                    "repeat it to fall back: the first folder holding a file wins")
    args = ap.parse_args(argv)
    args.results = args.results or [RESULTS]
    stale = []
    try:
        rendered = render_all(ROOT, args.results)
    except RenderError as e:
        print(f"render_numbers: {e}", file=sys.stderr)
        return 2
    for path, (old, new) in rendered.items():
        rel = os.path.relpath(path, ROOT)
        if args.print:
            for m in MARKER.finditer(new):
                print(f"== {rel}: {m.group('name')}\n{m.group('body')}")
        elif old != new:
            stale.append(rel)
            if not args.check:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(new)
    if stale:
        print(("stale (rerun benchmarks/render_numbers.py): " if args.check else "rendered: ") + ", ".join(stale))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
