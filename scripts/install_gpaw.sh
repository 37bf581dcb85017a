#!/usr/bin/env bash
# Install GPAW (plane-wave PBE, PAW datasets from the gpaw-data wheel) into .venv.
# Needs g++, libxc, OpenBLAS and FFTW headers: installed with apt-get when missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if $VENV/bin/python -c "import gpaw, gpaw_data" 2>/dev/null; then exit 0; fi
need=()
for pkg in g++ libxc-dev libopenblas-dev libfftw3-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[install] apt-get install ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: GPAW needs the system packages ${need[*]} (sudo apt-get install ${need[*]}), or set GENCRYSTAL_NO_DFT=1" >&2
    exit 2
  fi
fi
mkdir -p $VENV/etc
cat > $VENV/etc/gpaw-siteconfig.py <<'PYEOF'
compiler = 'g++'
mpi = False
fftw = True
libraries += ['fftw3', 'blas']
PYEOF
GPAW_CONFIG="$(pwd)/$VENV/etc/gpaw-siteconfig.py" $VENV/bin/python -m pip install -q -r requirements-dft.txt 2>&1 | grep -v "^WARNING: Location" | tail -30 || true
$VENV/bin/python -c "import gpaw, gpaw_data; print('[install] gpaw', gpaw.__version__)"
