#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), the import layers, pytest, then the C++ core's ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
PY="${TINYVIT_VENV:-$ROOT/.venv}/bin/python"
cd "$ROOT"
# The layers (.importlinter, docs/README.md "Layers") first: a wrong-way import fails in a second.
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$(dirname "$PY")/lint-imports" --no-cache --no-logo
"$PY" -m pytest -q tests "$@"
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/cmake -j "$(nproc)" >/dev/null
ctest --test-dir build/cmake --output-on-failure
