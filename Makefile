# The two commands a fresh machine needs (each sets everything up first):
#   make demo   run the main job on the embedded default data
#   make test   run every test (pytest + ctest)
.PHONY: demo test setup gpu-check bench
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
# Rerun every benchmark the README and docs cite and re-render their numbers (CPU, 2 cores:
# about 25 min; docs/benchmarks.md). AB_BASE=DIR adds the A/B against a baseline checkout;
# BENCH_QUICK=1 is a smoke run into build/bench-quick that leaves results and docs alone.
bench:
	$(PYTHON) benchmarks/bench_all.py $(if $(BENCH_QUICK),--quick) $(if $(AB_BASE),--ab-base $(AB_BASE))
