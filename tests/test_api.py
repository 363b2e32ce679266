"""The public API: a static top-level ``__all__`` of at most 25 names, one-release deprecation
aliases for every name that left the top level, and every exception class in tinyvit.errors."""
from __future__ import annotations

import ast
import importlib
import os
import pickle
import re
import subprocess
import sys
import warnings

import pytest

import tinyvit
import tinyvit.errors as E
from tinyvit import _C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC = {
    "AugConfig", "replay", "replay_batch", "ArrayDataset", "FashionMNIST", "ImageFolder", "TarShards",
    "open_dataset", "LogitStore", "DistillLoader", "ReplayLoader", "SparseTargets", "DeviceAugment",
    "mix_targets", "sparse_soft_cross_entropy", "SparseSoftCrossEntropy", "eval_config", "eval_transform",
    "errors", "models", "build_info", "__version__",
}

# Every top-level name of the previous release (its globals()-built __all__) -> where it is now.
# A name here must keep resolving: from the top level (in __all__, or with a warning) and there.
PREVIOUS = {
    "tinyvit.augment.rng": ["PCG32", "pcg32_u32"],
    "tinyvit.augment.config": ["AugConfig", "PLAN_FORMAT_VERSION", "parse_rand_augment"],
    "tinyvit.augment.plan": ["make_plan", "plan_device_params"],
    "tinyvit.data.sampler": ["PairedSampler"],
    "tinyvit.augment.seeds": ["mix_partner", "mix_partners", "pair_permutation",
                              "sample_seed", "sample_seeds"],
    "tinyvit.augment.replay": ["replay", "replay_batch"],
    "tinyvit.augment.device": ["DeviceAugment", "batch_partners", "mix", "mix_targets", "normalize",
                               "random_erase"],
    "tinyvit.store": ["LogitStore"],
    "tinyvit.loss": ["SparseSoftCrossEntropy", "dense_soft_cross_entropy", "sparse_soft_cross_entropy"],
    "tinyvit.data.datasets": ["ArrayDataset", "FashionMNIST", "ImageFolder", "open_dataset"],
    "tinyvit.data.tarshards": ["TarShards"],
    "tinyvit.data.loader": ["DistillLoader", "ReplayLoader", "SparseTargets"],
    "tinyvit.integrations.timm": ["eval_config", "eval_transform"],
    "tinyvit._ext": ["build_info"],
    "tinyvit.errors": [
        "ChecksumError", "CorruptRecordError", "DatasetError", "DatasetMismatchError", "EpochError",
        "EpochMissingError", "FileSizeError", "FingerprintMismatchError", "FormatVersionError",
        "ImageDecodeError", "InvalidRecordError", "ManifestError", "ModelError", "ReadOnlyError",
        "RecordMissingError", "ReplayMismatchError", "SampleIndexError", "ShapeMismatchError",
        "StoreError", "StoreExistsError", "StoreIOError", "StoreMismatchError", "TeacherOutputError",
        "TruncatedFileError"],
}


def _static_all():
    """``__all__`` as written in tinyvit/__init__.py: must be a literal list of strings."""
    tree = ast.parse(open(os.path.join(ROOT, "tinyvit", "__init__.py")).read())
    values = [n.value for n in tree.body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert len(values) == 1 and isinstance(values[0], ast.List)
    assert not any(isinstance(n, ast.AugAssign) and getattr(n.target, "id", "") == "__all__"
                   for n in tree.body)
    return [ast.literal_eval(e) for e in values[0].elts]


# ---- the top level -----------------------------------------------------------------------------
def test_all_is_static_small_and_exactly_the_public_names():
    names = _static_all()
    assert names == tinyvit.__all__
    assert len(names) <= 25 and len(set(names)) == len(names)
    assert set(names) == PUBLIC
    assert "globals()" not in open(os.path.join(ROOT, "tinyvit", "__init__.py")).read()


def test_public_names_resolve_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in tinyvit.__all__:
            assert getattr(tinyvit, name) is not None
        ns = {}
        exec("from tinyvit import *", ns)
    assert {n for n in ns if n != "__builtins__"} == set(tinyvit.__all__)
    assert tinyvit.errors is E and tinyvit.models is importlib.import_module("tinyvit.models")


def test_every_previous_name_still_resolves_to_the_same_object():
    moved = set(tinyvit._MOVED)
    for where, names in PREVIOUS.items():
        mod = importlib.import_module(where)
        for name in names:
            assert (name in tinyvit.__all__) != (name in moved), name  # public xor deprecated
            if name in moved:
                assert tinyvit._MOVED[name] == where, name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                assert getattr(tinyvit, name) is getattr(mod, name), name
    assert moved <= {n for ns in PREVIOUS.values() for n in ns}  # no alias of a name never public
    assert len(moved) == 41 and f"({len(moved)} of them)" in open(os.path.join(ROOT, "docs", "api.md")).read()


@pytest.mark.parametrize("name", sorted(tinyvit._MOVED))
def test_alias_warns_naming_the_new_path_and_returns_the_same_object(name):
    where = tinyvit._MOVED[name]
    with pytest.warns(DeprecationWarning) as rec:
        obj = getattr(tinyvit, name)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert msg.startswith(f"tinyvit.{name} is deprecated") and f"from {where} import {name}" in msg
    assert rec[0].filename == __file__  # stacklevel: the warning points at the caller
    assert obj is getattr(importlib.import_module(where), name)
    with pytest.warns(DeprecationWarning, match=re.escape(where)):  # every access warns, no caching
        exec(f"from tinyvit import {name}", {})


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'make_plans'"):
        tinyvit.make_plans  # noqa: B018
    assert not hasattr(tinyvit, "pack_plans")


def test_dir_lists_the_public_names_and_subpackages_not_the_aliases():
    d = dir(tinyvit)
    assert set(tinyvit.__all__) <= set(d)
    assert {"augment", "data", "store", "loss", "jobs", "cli", "integrations"} <= set(d)
    assert not set(d) & set(tinyvit._MOVED)


def test_subpackages_import_on_first_access():
    code = ("import sys, tinyvit; assert 'tinyvit.jobs' not in sys.modules; "
            "import warnings; warnings.simplefilter('error'); print(tinyvit.jobs.__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "tinyvit.jobs", r.stderr[-2000:]


def _top_level_uses(text):
    return set(re.findall(r"(?<![\w.])tinyvit\.([A-Za-z_]\w*)", text))


def test_readme_block_and_examples_use_public_names_only():
    subpackages = {"augment", "data", "store", "loss", "jobs", "cli", "integrations", "errors", "models",
                   "_C", "_ext"}
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("<!-- readme-example:start -->")[1].split("<!-- readme-example:end -->")[0]
    used = _top_level_uses(block)
    assert used and used <= set(tinyvit.__all__), used - set(tinyvit.__all__)
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if name.endswith(".py"):
            used = _top_level_uses(open(os.path.join(ROOT, "examples", name)).read())
            assert used <= set(tinyvit.__all__) | subpackages, (name, used - set(tinyvit.__all__))


# ---- tinyvit.errors ------------------------------------------------------------------------------
# old location -> names defined there before tinyvit.errors (they must stay the same objects)
OLD_HOMES = {
    "tinyvit.store.errors": ["StoreError", "ManifestError", "FormatVersionError", "StoreExistsError",
                             "StoreIOError", "FileSizeError", "TruncatedFileError", "CorruptRecordError",
                             "ChecksumError", "RecordMissingError", "SampleIndexError", "EpochMissingError",
                             "ShapeMismatchError", "InvalidRecordError", "FingerprintMismatchError",
                             "ReadOnlyError", "StoreMismatchError", "DatasetMismatchError",
                             "ReplayMismatchError"],
    "tinyvit.store": ["StoreError", "ChecksumError", "StoreMismatchError", "DatasetMismatchError"],
    "tinyvit.data.attest": ["ReplayMismatchError"],
    "tinyvit.data.idx": ["DatasetError"],
    "tinyvit.data.datasets": ["DatasetError"],
    "tinyvit.data.index": ["IndexError_"],
    "tinyvit.augment.replay": ["ImageDecodeError"],
    "tinyvit.data.loader": ["EpochError"],
    "tinyvit.jobs.models": ["ModelError", "TeacherOutputError"],
    "tinyvit.jobs.train": ["ResumeError"],
    "tinyvit.cli": ["CLIError"],
}

BASES = {  # name -> its bases, as before the move (pickling and except clauses depend on them)
    "StoreError": ("Exception",), "ManifestError": ("StoreError",), "FormatVersionError": ("ManifestError",),
    "StoreExistsError": ("StoreError", "FileExistsError"), "StoreIOError": ("StoreError", "OSError"),
    "FileSizeError": ("StoreError",), "TruncatedFileError": ("FileSizeError",),
    "CorruptRecordError": ("StoreError",), "ChecksumError": ("CorruptRecordError",),
    "RecordMissingError": ("StoreError",), "SampleIndexError": ("StoreError", "IndexError"),
    "EpochMissingError": ("StoreError", "LookupError"), "ShapeMismatchError": ("StoreError", "ValueError"),
    "InvalidRecordError": ("StoreError", "ValueError"), "FingerprintMismatchError": ("StoreError",),
    "ReadOnlyError": ("StoreError",), "StoreMismatchError": ("StoreError", "ValueError"),
    "DatasetMismatchError": ("StoreMismatchError",), "ReplayMismatchError": ("StoreMismatchError",),
    "DatasetError": ("ValueError",), "IndexError_": ("DatasetError",), "ImageDecodeError": ("ValueError",),
    "EpochError": ("RuntimeError",), "ResumeError": ("ValueError",), "ModelError": ("ValueError",),
    "TeacherOutputError": ("ValueError",), "CLIError": ("Exception",),
    "DemoError": ("ValueError",),
}


def test_every_exception_class_is_defined_in_errors_with_its_bases():
    assert set(E.__all__) == set(BASES)
    for name in E.__all__:
        cls = getattr(E, name)
        assert issubclass(cls, Exception) and cls.__module__ == "tinyvit.errors", name
        assert tuple(b.__name__ for b in cls.__bases__) == BASES[name], name
    # no exception class defined anywhere else in the package
    defined = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "tinyvit")):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith(".py") and path != os.path.join(ROOT, "tinyvit", "errors.py"):
                src = open(path).read()
                defined += [(f, m) for m in re.findall(r"^\s*class (\w+)\((?:\w+\.)*\w*(?:Error|Exception)\b",
                                                       src, re.M)]
    assert not defined, defined


def test_old_import_locations_are_the_same_objects():
    for where, names in OLD_HOMES.items():
        mod = importlib.import_module(where)
        for name in names:
            assert getattr(mod, name) is getattr(E, name), (where, name)


@pytest.mark.parametrize("name", sorted(BASES))
def test_errors_pickle_to_the_same_class_and_message(name):
    cls = getattr(E, name)
    exc = cls("store '/x': field 'topk' differs")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and str(back) == str(exc)


def test_cpp_store_kinds_raise_the_errors_classes():
    kinds = {"io": E.StoreIOError, "truncated_file": E.TruncatedFileError, "file_size": E.FileSizeError,
             "checksum": E.ChecksumError, "record_missing": E.RecordMissingError,
             "corrupt_record": E.CorruptRecordError, "sample_index": E.SampleIndexError,
             "epoch_missing": E.EpochMissingError, "shape_mismatch": E.ShapeMismatchError,
             "invalid_record": E.InvalidRecordError, "read_only": E.ReadOnlyError}
    assert set(_C._store_error_kinds()) == {f"store.{k}" for k in kinds}
    for kind, cls in kinds.items():
        with pytest.raises(cls, match="^boom$") as info:
            _C._raise_error(f"store.{kind}", "boom")
        assert type(info.value) is cls
    with pytest.raises(E.ImageDecodeError, match="^bad$"):
        _C._raise_error("decode", "bad")


def test_docs_list_every_error_class_once():
    doc = open(os.path.join(ROOT, "docs", "errors.md")).read()
    listed = re.findall(r"^\s*- `(\w+)`", doc, re.M)
    assert sorted(listed) == sorted(E.__all__)
