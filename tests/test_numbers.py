"""The numbers the README and docs quote are the committed JSONs' numbers, measured on the csrc/
that ships (issue 20, item 6).

Real-repository checks (these run in `make test`; after a `csrc/` change they fail until
`make bench` is rerun on the final code and its results committed):
- every `<!-- results ... -->` block equals what benchmarks/render_numbers.py renders from the
  JSONs, byte for byte;
- every cited JSON records the csrc/ tree of this commit (`git rev-parse HEAD:csrc`; without git,
  the tree hash of the csrc/ files on disk), and a csrc/ that was clean;
- every JSON in benchmarks/results/ is cited somewhere (adversarial-campaign verdict records
  excepted), and no page names a results file that does not exist;
- no paragraph that names a results JSON outside the markers quotes a measured figure
  (PENDING would list pages still to convert: none are);
- the timm `train.py` patch in docs/trainers.md binds every name before a `+` line uses it.
The same checks are tested against synthetic pages and JSONs in tmp folders, so each can fail.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import _common  # noqa: E402
import render_numbers as rn  # noqa: E402

# Paragraphs outside README.md / docs/benchmarks.md that still quote figures next to a JSON
# they cite (pages other helpers own): to be turned into rendered blocks. The test fails when
# one of them is fixed (remove it here) or when any other such paragraph appears.
PENDING = set()


# ------------------------------------------------------------------------------ the real repo
def test_rendered_blocks_equal_their_json():
    stale = [os.path.relpath(p, ROOT) for p, (old, new) in rn.render_all().items() if old != new]
    assert not stale, f"numbers differ from their JSON in {stale}: run python benchmarks/render_numbers.py"


def test_readme_and_benchmarks_page_render_the_headline_blocks():
    names = {m.group("name") for p in (os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "benchmarks.md"))
             for m in rn.MARKER.finditer(open(p, encoding="utf-8").read())}
    assert {"readme-headline", "loader", "store", "loss", "models", "experiment", "ab-main"} <= names


def test_cited_json_measured_on_the_csrc_of_this_commit():
    tree = rn.current_csrc_tree(ROOT)
    files = {f for f in rn.cited() & set(rn.result_files()) if not rn.is_record(f)}
    problems = rn.provenance_problems(files, tree)
    assert not problems, ("rerun `make bench AB_BASE=<previous main>` on the final code and commit "
                          f"benchmarks/results + the re-rendered docs: {problems}")


def test_every_record_names_the_commit_it_was_run_at():
    records = [f for f in rn.result_files() if rn.is_record(f)]
    assert records
    unnamed = [f for f in records
               if not rn.record_commit(json.load(open(os.path.join(rn.RESULTS, f))))]
    assert not unnamed, f"campaign/design records without a commit: {unnamed}"


def test_every_result_json_is_cited_and_every_citation_exists():
    assert rn.orphans() == []
    assert rn.dangling() == []


def test_no_figure_quoted_next_to_a_citation_outside_the_markers():
    found = {(page, name) for page, name, _, _ in rn.figures_outside_markers()}
    assert found - PENDING == set(), sorted(rn.figures_outside_markers())
    assert PENDING - found == set(), f"fixed: remove from PENDING: {sorted(PENDING - found)}"


def test_make_bench_regenerates_every_json_a_block_reads():
    import bench_all

    steps = bench_all.plan("/R", quick=False, ab_base="/base")
    assert [s for s, _ in steps] == list(bench_all.WRITES)
    assert set(bench_all.WRITES.values()) == {f for files, _ in rn.BLOCKS.values() for f in files}
    for script, args in steps:  # each step's --out names its JSON (or the folder / prefix of it)
        out = args[args.index("--out") + 1]
        want = bench_all.WRITES[script]
        assert out in ("/R", f"/R/{want}", f"/R/{want[:-len('.json')]}"), (script, out)


def test_tree_hash_without_git_equals_git_rev_parse():
    tree = _common._git("rev-parse", "HEAD:csrc")
    if tree is None:
        pytest.skip("no git checkout: nothing to compare the computed tree hash with")
    if _common.provenance()["csrc_dirty"]:
        pytest.skip("csrc/ has uncommitted changes: its files are not HEAD's tree")
    assert _common.tree_hash(os.path.join(ROOT, "csrc")) == tree


# ---------------------------------------------------------------------- synthetic pages/JSONs
RA = {"net_us_per_op": {"Rotate": 250.0, "Invert": 0.5}, "expected_us_per_image_rand_m9_mstd0.5_inc1": 45.0,
      "binding_overhead_us": 11.0}


def _repo(tmp_path, page_body, results=None, tree="a" * 40):
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "README.md").write_text("# r\n")
    (tmp_path / "docs" / "p.md").write_text(page_body)
    for name, payload in (results or {"ra_ops.json": RA}).items():
        payload = dict(payload)
        payload.setdefault("machine", {"cpu": "CPU", "cores": 2, "commit": "c" * 40, "csrc_tree": tree,
                                       "csrc_dirty": False, "load_average_at_start": [1, 1, 1],
                                       "load_average_at_end": [2, 2, 2]})
        (tmp_path / "results" / name).write_text(json.dumps(payload))
    return str(tmp_path), str(tmp_path / "results")


def _rendered(root, results):
    return {os.path.relpath(p, root): new for p, (_, new) in rn.render_all(root, results).items()}


BLOCK = "<!-- results ra-ops: ra_ops.json -->\n<!-- /results -->\n"


def test_synthetic_stale_number_and_stale_json_are_caught(tmp_path):
    root, res = _repo(tmp_path, "intro\n\n" + BLOCK)
    page = _rendered(root, res)["docs/p.md"]
    assert "| Rotate | 250 |" in page and "45.0 µs" in page
    (tmp_path / "docs" / "p.md").write_text(page)
    assert all(old == new for old, new in rn.render_all(root, res).values())
    (tmp_path / "docs" / "p.md").write_text(page.replace("| Rotate | 250 |", "| Rotate | 240 |"))  # hand edit
    assert any(old != new for old, new in rn.render_all(root, res).values())
    (tmp_path / "docs" / "p.md").write_text(page)
    d = json.loads((tmp_path / "results" / "ra_ops.json").read_text())
    d["net_us_per_op"]["Rotate"] = 260.0  # rerun without re-rendering
    (tmp_path / "results" / "ra_ops.json").write_text(json.dumps(d))
    assert any(old != new for old, new in rn.render_all(root, res).values())


def test_synthetic_unknown_block_or_missing_json_is_a_named_error(tmp_path):
    root, res = _repo(tmp_path, "<!-- results nope: a.json -->\n<!-- /results -->\n")
    with pytest.raises(rn.RenderError, match=r"docs/p.md: marker names no renderer: 'nope'"):
        rn.render_all(root, res)
    (tmp_path / "docs" / "p.md").write_text(BLOCK)
    os.unlink(tmp_path / "results" / "ra_ops.json")
    with pytest.raises(rn.RenderError, match=r"block 'ra-ops': cannot read .*ra_ops.json"):
        rn.render_all(root, res)


def test_synthetic_csrc_tree_mismatch_dirty_and_missing_provenance(tmp_path):
    root, res = _repo(tmp_path, BLOCK, {"ra_ops.json": RA, "old.json": dict(RA, machine={"cpu": "x"}),
                                        "dirty.json": dict(RA, machine={"csrc_tree": "a" * 40, "csrc_dirty": True})})
    assert rn.provenance_problems({"ra_ops.json"}, "a" * 40, res) == []
    [(f, why)] = rn.provenance_problems({"ra_ops.json"}, "b" * 40, res)
    assert f == "ra_ops.json" and "aaaaaaaaaa" in why and "bbbbbbbbbb" in why
    assert "no csrc_tree" in rn.provenance_problems({"old.json"}, "a" * 40, res)[0][1]
    assert "uncommitted" in rn.provenance_problems({"dirty.json"}, "a" * 40, res)[0][1]


def test_synthetic_orphans_dangling_and_campaign_records(tmp_path):
    root, res = _repo(tmp_path, BLOCK + "\nsee `benchmarks/results/gone.json` and "
                      "`git show 4610f08:benchmarks/results/old.json`\n",
                      {"ra_ops.json": RA, "one_off.json": {}, "fuzz_x.json": {}, "loader.json": {}})
    (tmp_path / "README.md").write_text("rates: `loader.{json,png}`\n")
    assert rn.orphans(root, res) == ["one_off.json"]  # cited: ra_ops (marker), loader (brace form)
    assert rn.dangling(root, res) == [("docs/p.md", "gone.json")]


def test_synthetic_figure_next_to_a_citation_outside_markers(tmp_path):
    root, res = _repo(tmp_path, BLOCK + "\nfrom `ra_ops.json` rotate costs 250.5 us, 3.1x faster\n\n"
                      "K = 100 and `--calls 20` in ra_ops.json are settings\n\n"
                      "| ra_ops.json | 12% |\n| other | 2.5 |\n")
    found = [(page, name, fig) for page, name, fig, _ in rn.figures_outside_markers(root, res)]
    assert found == [("docs/p.md", "ra_ops.json", "250.5"), ("docs/p.md", "ra_ops.json", "3.1x"),
                     ("docs/p.md", "ra_ops.json", "12%")]
    page = _rendered(root, res)["docs/p.md"]  # figures inside a block are the renderer's: fine
    assert "250" in page and all(f[2] != "250" for f in rn.figures_outside_markers(root, res))


def _git_repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path / "repo"
    (root / "csrc" / "core").mkdir(parents=True)
    (root / "csrc" / "a.cpp").write_text("int a;\n")
    (root / "csrc" / "core" / "b.h").write_text("#pragma once\n")
    (root / "csrc" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "csrc" / "run.sh", 0o755)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=root, env=env, check=True, capture_output=True)
    return str(root)


def test_synthetic_provenance_tree_hash_and_dirty_refusal(tmp_path):
    root = _git_repo(tmp_path)
    p = _common.provenance(root)
    assert p["csrc_dirty"] is False and len(p["commit"]) == 40
    assert _common.tree_hash(os.path.join(root, "csrc")) == p["csrc_tree"]  # same hash without git
    with open(os.path.join(root, "csrc", "a.cpp"), "a") as fh:
        fh.write("int b;\n")
    assert _common.provenance(root)["csrc_dirty"] is True
    assert _common.tree_hash(os.path.join(root, "csrc")) != p["csrc_tree"]
    results = tmp_path / "results"
    payload = {"machine": dict(p, csrc_dirty=True)}
    with pytest.raises(_common.DirtyTreeError, match="uncommitted changes"):
        _common.write_json(str(results / "x.json"), payload, results_dir=str(results))
    assert not (results / "x.json").exists()
    _common.write_json(str(tmp_path / "elsewhere.json"), payload, results_dir=str(results))  # quick runs: fine


# --------------------------------------------------------------------------- the timm patch
def _hunks(block):
    hunks = []
    for line in block.splitlines():
        if line.startswith("@@"):
            hunks.append([])
        elif hunks:
            hunks[-1].append((line[:1], line[1:]))
    return hunks


def _timm_hunks():
    text = open(os.path.join(ROOT, "docs", "trainers.md"), encoding="utf-8").read()
    return _hunks(text.split("## timm's `train.py`", 1)[1].split("```diff\n", 1)[1].split("```", 1)[0])


# train.py's own names the patch may use: bound before the first hunk (main()'s args, device,
# model_dtype, ...) or only by a line of train.py that a hunk quotes as context.
BOUND_BEFORE = {"args", "device", "model_dtype", "model", "utils", "torch", "os"}
LATE = {"tinyvit", "store", "aug", "data_config", "loader_train", "train_loss_fn", "num_epochs", "lr_scheduler",
        "updates_per_epoch"}


def _unbound(hunks):
    """(hunk, line, names) for each `+` line using a name of LATE | BOUND_BEFORE that nothing
    above it (train.py's context lines or earlier `+` lines, in order) has bound."""
    bound, out = set(BOUND_BEFORE), []
    for i, hunk in enumerate(hunks, 1):
        for kind, code in hunk:
            if kind == "-":
                continue
            code = re.sub(r"'[^']*'|\"[^\"]*\"", "''", code).split("#", 1)[0]  # strings are no names
            if code.strip().startswith("import "):
                bound.add(code.split()[1])
                continue
            m = re.match(r"\s*([\w, ]+?)\s*=(?!=)", code)  # `x = ...`, `a, b = ...`, or `kw=...`
            rhs = code.split("=", 1)[1] if m else code
            used = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)", rhs)) & (LATE | BOUND_BEFORE)
            if kind == "+" and used - bound:
                out.append((i, code.strip(), sorted(used - bound)))
            if m and "(" not in m.group(1):
                bound |= {n.strip() for n in m.group(1).split(",")}
    return out


def test_timm_patch_binds_every_name_before_use():
    hunks = _timm_hunks()
    assert len(hunks) == 6 and all(any(k == " " for k, _ in h) for h in hunks)  # each has an anchor
    assert _unbound(hunks) == []


def test_the_old_timm_patch_is_caught():
    # the earlier doc's loader hunk passed epochs=num_epochs: train.py binds num_epochs later
    old = """@@ imports @@
 from timm import utils
+import tinyvit
@@ data config @@
     data_config = resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args))
+    store = tinyvit.LogitStore.open(args.distill_store)
+    aug = tinyvit.AugConfig.from_dict(store.manifest["meta"]["aug_config"])
@@ loader @@
         # Use standard loader
+        loader_train = tinyvit.DistillLoader(ds, store, aug, batch_size=args.batch_size,
+            device=device, epochs=num_epochs)
@@ scheduler @@
     lr_scheduler, num_epochs = create_scheduler_v2(
"""
    assert _unbound(_hunks(old)) == [(3, "device=device, epochs=num_epochs)", ["num_epochs"])]


def test_timm_patch_context_lines_are_train_py_lines_in_order():
    path = os.environ.get("TIMM_TRAIN_PY")
    if not path:
        pytest.skip("set TIMM_TRAIN_PY=/path/to/pytorch-image-models/train.py to check the anchors "
                    "(train.py is not in the timm wheel; CI has no network)")
    lines = open(path, encoding="utf-8").read().splitlines()
    pos, patched = 0, []
    for i, hunk in enumerate(_timm_hunks(), 1):
        old = [code for kind, code in hunk if kind in " -"]
        at = next((j for j in range(pos, len(lines) - len(old) + 1) if lines[j:j + len(old)] == old), None)
        assert at is not None, f"hunk {i}: its context and removed lines are not consecutive lines of {path}"
        patched += lines[pos:at] + [code for kind, code in hunk if kind in " +"]
        pos = at + len(old)
    compile("\n".join(patched + lines[pos:]) + "\n", path + " (patched)", "exec")  # applies and still parses
