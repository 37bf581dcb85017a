#!/usr/bin/env bash
# Create or reuse .venv and install gencrystal with its pinned dependencies.
#   TORCH_INDEX=https://download.pytorch.org/whl/cu128 bash scripts/install.sh   # CUDA build of torch 2.13.0
#   GENCRYSTAL_NO_DFT=1 bash scripts/install.sh                                 # skip GPAW (DFT) install
# Re-running is cheap: a stamp keyed by the requirement files skips finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
stamp_key=$(cat requirements.txt requirements-dft.txt requirements-dev.txt pyproject.toml scripts/install.sh 2>/dev/null | sha256sum | cut -c1-16)
stamp="$VENV/.installed-$stamp_key"
if [ -f "$stamp" ]; then exit 0; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "[install] torch==2.13.0 ${TORCH_INDEX:+from $TORCH_INDEX}"
if [ -n "${TORCH_INDEX:-}" ]; then
  $PIP install -q "torch==2.13.0" --index-url "$TORCH_INDEX"
else
  $PIP install -q "torch==2.13.0"
fi
echo "[install] pinned dependencies (requirements.txt)"
$PIP install -q -r requirements.txt
echo "[install] development tools (requirements-dev.txt: ruff, mypy)"
$PIP install -q -r requirements-dev.txt

if [ -z "${GENCRYSTAL_NO_DFT:-}" ]; then
  echo "[install] GPAW (plane-wave DFT) and its PAW datasets"
  bash scripts/install_gpaw.sh
fi

$PIP install -q --no-deps --no-build-isolation -e .
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "[install] done: $($VENV/bin/python -c 'import torch,sys;print("python",sys.version.split()[0],"torch",torch.__version__)')"
