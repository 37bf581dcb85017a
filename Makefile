# The two set-up commands of the README:
#   make demo   installs (.venv), then runs the main job on the shipped default
#   make test   installs (.venv), then runs the test suite
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

.PHONY: install demo test test-fast clean

install:
	@bash scripts/install.sh

demo: install
	@bash scripts/demo.sh

test: install
	$(PY) -m pytest -q tests

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) data/cache .pytest_cache
