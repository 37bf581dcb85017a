#!/usr/bin/env bash
# `make demo`: `gencrystal demo` (conf/demo.yaml): sample Li16 and SiO2 at 50 GPa with the shipped
# checkpoint, relax them together with known phases (CHGNet, 50 GPa), print the enthalpy ranking
# (space groups, H, V), which samples relaxed into a known phase and how often that happens over
# many seeds (reports/demo_seeds.md), write CIFs and a picture of the best structures, and print
# the DFT validation command. Output: outputs/demo/ (git-ignored, replaced on every run).
# Knobs are conf/demo.yaml keys, passed through: bash scripts/demo.sh num_samples=10 steps=300 seed=3
# See docs/demo.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}

OUT=outputs/demo
for arg in "$@"; do
  case "$arg" in out=*) OUT=${arg#out=} ;; esac
done
rm -rf "$OUT"
exec "$PY" -m gencrystal demo "$@"
