# The two commands a fresh machine needs (each sets everything up first):
#   make demo   run the main job on the embedded default data
#   make test   run every test (pytest + ctest)
.PHONY: demo test setup
setup:
	./scripts/setup.sh
demo: setup
	./.venv/bin/tinyvit demo
test:
	./scripts/test.sh
