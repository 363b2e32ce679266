# The two commands a fresh machine needs (each sets everything up first):
#   make demo   run the main job on the embedded default data
#   make test   run every test (pytest + ctest)
.PHONY: demo test setup gpu-check
setup:
	./scripts/setup.sh
demo: setup
	./.venv/bin/tinyvit demo
test:
	./scripts/test.sh
# On a GPU machine as it comes (its own torch, offline): build for the local GPU, run the CUDA
# tests and the GPU benchmarks in <= 8 min; a dry run on CPU-only machines (docs/gpu.md).
PYTHON ?= $(shell [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)
