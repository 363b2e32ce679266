"""The shape of the package: short functions, and the import layers of .importlinter (which
scripts/test.sh also runs first) -- checked here on the real tree and on a tree with planted
violations, so the checks themselves are known to catch what they are for."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tinyvit")
MAX_LINES = 100


def long_functions(source: str, limit: int = MAX_LINES) -> list:
    """(name, def line, length) of every function (methods and nested ones too) longer than
    ``limit`` lines, counted from the ``def`` line to the last line of its body (decorators
    excluded)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append((node.name, node.lineno, n))
    return out


def _package_files():
    for d, _, files in os.walk(PACKAGE):
        for f in sorted(files):
            if f.endswith(".py"):
                yield os.path.join(d, f)


def test_no_function_in_tinyvit_is_over_100_lines():
    found = []
    for path in _package_files():
        with open(path, encoding="utf-8") as fh:
            for name, line, n in long_functions(fh.read()):
                found.append(f"{os.path.relpath(path, ROOT)}:{line} {name}: {n} lines")
    assert not found, "split these by concept (at most %d lines each):\n%s" % (MAX_LINES, "\n".join(found))


def _function(body_lines: int, decorators: int = 0, indent: str = "") -> str:
    deco = "".join(f"{indent}@staticmethod\n" for _ in range(decorators))
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))
    return f"{deco}{indent}def f():\n{body}"


def test_the_length_is_def_to_last_body_line():
    assert long_functions(_function(99)) == []  # def + 99 = 100 lines: allowed
    assert long_functions(_function(100)) == [("f", 1, 101)]
    assert long_functions(_function(99, decorators=3)) == []  # decorators do not count
    method = "class C:\n" + _function(100, indent="    ")
    assert long_functions(method) == [("f", 2, 101)]
    nested = "def outer():\n" + _function(100, indent="    ") + "    return f\n"
    assert [name for name, _, _ in long_functions(nested)] == ["outer", "f"]
    # a long docstring or a multi-line call counts: they are lines of the function
    doc = 'def g():\n    """' + "\n" * 100 + '    """\n'
    assert long_functions(doc) == [("g", 1, 102)]


def _lint_imports(root: str):
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        pytest.skip("import-linter is not installed (scripts/setup.sh installs it)")
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([exe, "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_import_layers_hold():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def _plant(tree: str, module: str, code: str) -> None:
    with open(os.path.join(tree, *module.split(".")) + ".py", "a", encoding="utf-8") as fh:
        fh.write("\n\n" + textwrap.dedent(code))


def test_planted_violations_are_caught(tmp_path):
    """A lazy upward import (inside a function body), an import between two peers, and an
    import of the root package: each breaks the contract and is named."""
    tree = str(tmp_path)
    shutil.copytree(PACKAGE, os.path.join(tree, "tinyvit"),
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(os.path.join(ROOT, ".importlinter"), tree)
    assert _lint_imports(tree).returncode == 0  # the copy itself is clean
    _plant(tree, "tinyvit.store.compat", """
        def _probe():
            from ..jobs.models import ModelError  # store -> jobs: upward, hidden in a body
            return ModelError
        """)
    _plant(tree, "tinyvit.loss", """
        def _peer():
            from .augment.device import mix_targets  # loss -> augment: two peers
            return mix_targets
        """)
    _plant(tree, "tinyvit.jobs.evaluate", """
        def _root():
            from .. import LogitStore  # the root package, from inside it
            return LogitStore
        """)
    r = _lint_imports(tree)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "tinyvit.store.compat -> tinyvit.jobs.models" in out
    assert "tinyvit.loss -> tinyvit.augment.device" in out
    assert "tinyvit.jobs.evaluate -> tinyvit" in out
    assert "2 broken" in out
