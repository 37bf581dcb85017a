# The two set-up commands of the README:
#   make demo   installs (.venv), then runs the main job on the shipped default
#   make test   installs (.venv), then runs the test suite
#   make gpu-kit   the wheels + MP-20 splits a GPU machine without a package registry needs (.gpu-kit/)
# GPU users: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export WANDB_MODE ?= offline
export GENCRYSTAL_DATA ?= $(abspath ../shared/data)
export TORCH_INDEX

.PHONY: install demo test test-slow test-all gpu-kit clean

install:
	@bash scripts/install.sh

demo: install
	@bash scripts/demo.sh

# The test suite without the tests marked slow (< 15 min on 2 cores).
test: install
	$(PY) -m pytest -q -m "not slow" tests

# The slow tests (DFT relaxations, CHGNet searches, database builds, full MP-20 scoring); CI runs both.
test-slow: install
	$(PY) -m pytest -q -m slow tests

test-all: install
	$(PY) -m pytest -q tests

# Wheels the GPU image lacks (CPython 3.12, manylinux x86-64) + MP-20 val/test, checked closed and
# under 60 MiB with the repository; run there with `bash scripts/gpu_run.sh mp20` (docs/training.md).
gpu-kit: install
	$(PY) scripts/gpu_kit.py build

clean:
	rm -rf $(VENV) data/cache .pytest_cache
