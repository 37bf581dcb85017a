#!/usr/bin/env bash
# Run a named gencrystal job on a GPU machine that has PyTorch but no package registry.
#
#   make gpu-kit                                    # here, once: .gpu-kit/ (wheels + MP-20 splits)
#   bash scripts/gpu_run.sh JOB [job arguments]     # there, in the repository root, with .gpu-kit/ beside it
#
# Steps: install the kit's wheels with --no-deps into a target folder ($GPU_SITE, default
# /tmp/gencrystal-site), put it and the repository on PYTHONPATH (gencrystal runs from the
# checkout, as an editable install would), point GENCRYSTAL_DATA at the kit's data, check that
# torch sees a GPU, check that every gencrystal module imports, then run JOB:
#   mp20     scripts/gpu_job_mp20.py: train mp20_csp (CSPNet 512x6, bf16, time limit), sample and
#            score all MP-20 test crystals, CUDA tests, training/sampling/relaxation throughput
#   smoke    the same job in its --smoke CPU mode (tiny model, 50 test crystals, ~2 minutes)
#   tests    the CUDA tests (pytest -m cuda)
#   imports  only the checks above
# Options before JOB: --no-install (use the interpreter's own packages: a venv that has them all),
# --cpu (do not require a GPU). Environment: PYTHON (default python3), GPU_KIT (default .gpu-kit),
# GPU_SITE, OUT (where the job writes its report; default runs/gpu_job).
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=1
NEED_GPU=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) INSTALL=0; shift ;;
    --cpu) NEED_GPU=0; shift ;;
    *) break ;;
  esac
done
JOB=${1:-}
[ -n "$JOB" ] || { echo "error: no job given (mp20 | smoke | tests | imports)" >&2; exit 2; }
shift
case "$JOB" in mp20|smoke|tests|imports) ;; *) echo "error: unknown job '$JOB' (mp20 | smoke | tests | imports)" >&2; exit 2 ;; esac
[ "$JOB" = smoke ] && NEED_GPU=0
PY=${PYTHON:-python3}
KIT=${GPU_KIT:-.gpu-kit}
SITE=${GPU_SITE:-/tmp/gencrystal-site}
export OUT=${OUT:-runs/gpu_job}
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
mkdir -p "$OUT"

if [ "$INSTALL" = 1 ]; then
  ls "$KIT"/wheels/*.whl >/dev/null 2>&1 || { echo "error: no wheels in $KIT/wheels (run 'make gpu-kit' where PyPI is reachable and bring $KIT along)" >&2; exit 2; }
  echo "[gpu_run] installing $(ls "$KIT"/wheels/*.whl | wc -l) wheels into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/wheels/*.whl
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -d "$KIT/data" ]; then export GENCRYSTAL_DATA="$PWD/$KIT/data"; fi
echo "[gpu_run] data: ${GENCRYSTAL_DATA:-<unset>}"

"$PY" - "$NEED_GPU" <<'EOF'
import sys
import torch
need = sys.argv[1] == "1"
ok = torch.cuda.is_available()
print(f"[gpu_run] torch {torch.__version__}, CUDA {'yes: ' + torch.cuda.get_device_name(0) if ok else 'no'}")
if need and not ok:
    sys.exit("error: torch sees no GPU (pass --cpu to run anyway)")
EOF
"$PY" scripts/gpu_kit.py imports

case "$JOB" in
  imports) ;;
  tests) "$PY" -m pytest -q -m cuda tests "$@" ;;
  mp20) "$PY" scripts/gpu_job_mp20.py --out "$OUT" "$@" ;;
  smoke) "$PY" scripts/gpu_job_mp20.py --smoke --out "$OUT" "$@" ;;
esac
