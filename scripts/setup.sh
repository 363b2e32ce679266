#!/usr/bin/env bash
# One-shot, idempotent set-up of everything tinyvit needs, into ./.venv:
#   system packages (libjpeg-turbo headers, Fashion-MNIST data, build tools),
#   CUDA torch 2.13.0 + torchvision 0.28.0 + timm, pillow-simd, and tinyvit itself
#   (compiled extension; CUDA kernels when nvcc is found).
# Re-running only redoes what is missing: a second run on a complete environment runs no pip
# install and no compile (a few seconds). Environment:
#   TINYVIT_VENV           venv path (default: ./.venv)
#   TINYVIT_CUDA           auto|0|1, passed to setup.py (default auto)
#   TORCH_CUDA_ARCH_LIST   archs to compile; default: the local GPU, or "9.0" when none
#   TINYVIT_SKIP_APT=1     do not touch system packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TINYVIT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="torch==2.13.0"
TORCHVISION_SPEC="torchvision==0.28.0"
PILLOW_SIMD_SPEC="pillow-simd==12.1.1.post0"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------
APT_PKGS=(libjpeg62-turbo-dev zlib1g-dev dataset-fashion-mnist binutils cmake g++)
if [[ "${TINYVIT_SKIP_APT:-0}" != 1 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# --- Python environment --------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Some machines pin a CPU-only torch wheel through a machine-wide pip find-links; that
# wheel breaks torchvision (so timm). Ignore machine pip config for the torch install.
pip_clean() { env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$PY" -m pip "$@"; }

if ! "$PY" - <<'PYEOF' 2>/dev/null
import torch, torchvision
assert torch.__version__.startswith("2.13.0") and torchvision.__version__.startswith("0.28.0")
assert torch.version.cuda is not None
PYEOF
then
  # the CPU-only torch wheel (torch==X+cpu) breaks torchvision and so timm: always the CUDA build
  log "installing $TORCH_SPEC $TORCHVISION_SPEC (CUDA build; runs on CPU too)"
  pip_clean install -q --upgrade pip
  pip_clean install -q "$TORCH_SPEC" "$TORCHVISION_SPEC"
fi
# Only what is missing: pip is not run at all on a complete environment (a pip run that
# resolves torchvision's requirements reinstalls stock Pillow over pillow-simd).
PY_PKGS=(timm numpy ninja pybind11 setuptools wheel pytest import-linter tqdm matplotlib scikit-image lightning accelerate
         nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12)
# NVRTC 12 (+ the CUDA 12 runtime headers) compiles the sparse-CE device code for sm_70 (V100),
# which the CUDA 13 toolkit cannot target: tests/gpu/test_sm70_build.py (docs/gpu.md).
spec_of() { case "$1" in nvidia-cuda-nvrtc-cu12|nvidia-cuda-runtime-cu12) echo "$1==12.9.*" ;; *) echo "$1" ;; esac; }
mapfile -t missing_py < <("$PY" - "${PY_PKGS[@]}" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        version(name)
    except PackageNotFoundError:
        print(name)
PYEOF
)
had_simd=0
"$PY" -c "import PIL; assert 'post' in PIL.__version__" 2>/dev/null && had_simd=1
if ((${#missing_py[@]})); then
  log "installing missing Python packages: ${missing_py[*]}"
  specs=(); for n in "${missing_py[@]}"; do specs+=("$(spec_of "$n")"); done
  pip_clean install -q "$TORCH_SPEC" "$TORCHVISION_SPEC" "${specs[@]}"
fi

# pillow-simd replaces pillow's PIL; it must come after torchvision (which pulls pillow).
if ! "$PY" -c "import PIL; assert 'post' in PIL.__version__" 2>/dev/null; then
  if ((had_simd)); then
    log "pip replaced pillow-simd by stock Pillow while installing ${missing_py[*]} (torchvision requires 'pillow'); rebuilding pillow-simd"
  fi
  log "building $PILLOW_SIMD_SPEC from source (AVX2)"
  pip_clean uninstall -y -q pillow pillow-simd >/dev/null 2>&1 || true
  CC="${CC:-cc} -mavx2" pip_clean install -q --no-binary pillow-simd "$PILLOW_SIMD_SPEC"
fi

# --- tinyvit ---------------------------------------------------------------------------
if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]] && ! command -v nvidia-smi >/dev/null; then
  export TORCH_CUDA_ARCH_LIST="9.0"  # no GPU to detect: compile one arch (a compile check)
fi
# torch guesses CUDA_HOME from the nvcc on PATH, which is wrong when that nvcc is a wrapper
# script outside the toolkit: look for a real toolkit root (with the runtime headers) first.
if [[ -z "${CUDA_HOME:-}" ]]; then
  candidates=()
  command -v nvcc >/dev/null && candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")")
  candidates+=(/usr/local/cuda /usr/local/cuda-*)
  for d in "${candidates[@]}"; do
    if [[ -x "$d/bin/nvcc" && -f "$d/include/cuda_runtime.h" ]]; then export CUDA_HOME="$d"; break; fi
  done
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# Rebuild only when the sources, the build script, torch or the build settings changed.
STAMP="$VENV/.tinyvit-build-stamp"
stamp_now="$(cd "$ROOT" && { find csrc -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum setup.py;
  "$PY" -c "import torch; print(torch.__version__, torch.version.cuda)";
  echo "${TINYVIT_CUDA:-auto} ${TORCH_CUDA_ARCH_LIST:-} ${CUDA_HOME:-}"; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$stamp_now" ]] && (cd /tmp && "$PY" -c "import tinyvit._ext") 2>/dev/null; then
  log "tinyvit extension up to date (csrc/, setup.py, torch unchanged): not rebuilt"
else
  log "building tinyvit (TINYVIT_CUDA=${TINYVIT_CUDA:-auto}, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-auto})"
  (cd "$ROOT" && "$PY" -m pip install -q --no-build-isolation --no-deps -e .)
  echo "$stamp_now" > "$STAMP"
fi
"$PY" -c "import tinyvit, json; print(json.dumps(tinyvit.build_info()))"
