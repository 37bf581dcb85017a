#!/usr/bin/env bash
# `make demo`: sample Li16 and SiO2 at 50 GPa with the shipped checkpoint, relax them together
# with known phases using CHGNet at 50 GPa, print the enthalpy ranking (space groups, H, V),
# write CIFs and a picture of the best structure, and print the DFT validation command.
# Output: outputs/demo/ (git-ignored). Without the checkpoint it relaxes and ranks the known
# Li and SiO2 phases only. Knobs (environment): DEMO_SAMPLES (per system, default 3),
# DEMO_STEPS (FIRE steps, 60), DEMO_FMAX (eV/A, 0.1), DEMO_WORKERS (relaxation processes,
# default: number of CPUs, at most 2), DEMO_OUT, DEMO_CKPT, DEMO_SEED, DEMO_MIN_VOLUME_PER_ATOM
# (samples denser than this, Å^3/atom, are flagged and not relaxed; default 4). See docs/demo.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
GC=("$PY" -m gencrystal)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}

OUT=${DEMO_OUT:-outputs/demo}
CKPT=${DEMO_CKPT:-checkpoints/gencrystal-hp-csp-small.ckpt}
P=50                                   # GPa
N=${DEMO_SAMPLES:-3}
STEPS=${DEMO_STEPS:-60}
FMAX=${DEMO_FMAX:-0.1}
SEED=${DEMO_SEED:-0}
# Samples denser than this are flagged by the sampler and not relaxed (no Li or SiO2 phase is
# near it at 50 GPa; such cells make CHGNet's neighbour lists explode). Å^3/atom.
MIN_VPA=${DEMO_MIN_VOLUME_PER_ATOM:-4.0}
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc --all 2>/dev/null || echo 1)  # (plain nproc obeys OMP_NUM_THREADS)
WORKERS=${DEMO_WORKERS:-$(( NCPU < 2 ? 1 : 2 ))}

start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"
log() { echo "[demo $(( $(date +%s) - start ))s] $*"; }

# run a step quietly (its log in $OUT/logs/), print its log and stop when it fails
step() {
  local name=$1; shift
  if ! "$@" > "$OUT/logs/$name.log" 2>&1; then
    cat "$OUT/logs/$name.log"; echo "demo: step '$name' failed (log: $OUT/logs/$name.log)" >&2; exit 1
  fi
}
mkdir -p "$OUT/logs"

samples=()
if [ -f "$CKPT" ]; then
  log "sampling Li16 and SiO2 (Z = 2-4 formula units) at $P GPa with $CKPT, $N each"
  step sample_Li16 "${GC[@]}" sample ckpt="$CKPT" composition=Li16 pressure=$P num_samples="$N" seed="$SEED" \
      out="$OUT/samples_Li16" progress=false checks.min_volume_per_atom="$MIN_VPA"
  step sample_SiO2 "${GC[@]}" sample ckpt="$CKPT" composition=SiO2 formula_units=2-4 pressure=$P num_samples="$N" \
      seed="$SEED" out="$OUT/samples_SiO2" progress=false checks.min_volume_per_atom="$MIN_VPA"
  samples=("$OUT/samples_Li16/samples.extxyz" "$OUT/samples_SiO2/samples.extxyz")
  for sys in Li16 SiO2; do
    log "$("$PY" - "$OUT/samples_$sys/summary.json" "$sys" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("%s: %d sampled, %d flagged and not relaxed %s" % (sys.argv[2], s["written"], s["flagged"], s["flag_counts"]))
PYEOF
)"
  done
else
  log "no checkpoint at $CKPT: relaxing the known Li and SiO2 phases only (train one: python scripts/train_default.py)"
fi

step candidates "$PY" -m gencrystal.cli.demo candidates --out "$OUT/candidates.extxyz" "${samples[@]}"
log "$(tail -n 1 "$OUT/logs/candidates.log") (known phases: Li bcc/fcc/cI16, SiO2 stishovite/CaCl2/alpha-PbO2)"
log "relaxing them at $P GPa with CHGNet (FIRE, fmax $FMAX eV/A, <= $STEPS steps, $WORKERS process(es))"
step relax "${GC[@]}" relax input="$OUT/candidates.extxyz" pressure=$P potential=chgnet out="$OUT/relax" \
    fmax="$FMAX" steps="$STEPS" cluster.workers="$WORKERS"
log "relaxed: $(grep -c Lattice "$OUT/relax/relaxed.extxyz") structures (details: $OUT/relax/summary.json)"
echo
"$PY" -m gencrystal.cli.demo summarize "$OUT/relax/relaxed.extxyz" --out "$OUT" --pressure $P
echo
log "done in $(( $(date +%s) - start )) s; everything is under $OUT/"
