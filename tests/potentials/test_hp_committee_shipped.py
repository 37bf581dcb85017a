"""The shipped high-pressure committee, as a user gets it from a clone: `potential=hp_committee`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import read, write

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED = REPO / "checkpoints" / "hp_committee"
PBE_BCC_LI_50GPA = 8.71  # Å³/atom, GPAW-PBE (reports/active_learning.md, reports/eos_li.md)


def test_shipped_files_are_committed_and_small():
    meta = json.loads((SHIPPED / "committee.json").read_text())
    files = [SHIPPED / meta["trunk"], SHIPPED / meta["heads"], SHIPPED / "committee.json", SHIPPED / "README.md"]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in SHIPPED.iterdir() if f.is_file()) < 25 * 2**20
    if shutil.which("git") and (REPO / ".git").exists():
        tracked = subprocess.run(["git", "ls-files", str(SHIPPED)], cwd=REPO, capture_output=True, text=True).stdout
        assert all(str(f.relative_to(REPO)) in tracked for f in files), "a shipped committee file is not committed"
    assert {"Li", "Si"} <= set(meta["coverage"]["elements"])
    assert meta["coverage"]["pressure_gpa"][0] <= 0 and meta["coverage"]["pressure_gpa"][1] >= 100


def test_cli_relaxes_bcc_li_at_50_gpa_to_pbe_volume(tmp_path):
    """`gencrystal relax potential=hp_committee` from a folder outside the repository."""
    src = tmp_path / "li_bcc.cif"
    write(str(src), bulk("Li", "bcc", a=3.44, cubic=True))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "gencrystal", "relax", f"input={src}", "pressure=50",
                           "potential=hp_committee", "potential.device=cpu", "optimizer=BFGS", "fmax=0.005",
                           "steps=300", f"out={tmp_path / 'out'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "outside its DFT labels" not in proc.stderr  # Li at 50 GPa is covered: no warning
    relaxed = read(str(tmp_path / "out" / "relaxed.extxyz"), index=0)
    v = relaxed.get_volume() / len(relaxed)
    assert abs(v / PBE_BCC_LI_50GPA - 1) < 0.03, f"bcc Li at 50 GPa: {v:.3f} Å³/atom against PBE {PBE_BCC_LI_50GPA}"
    assert relaxed.info["potential"].startswith("hp-committee")


def test_outside_its_labels_it_warns_naming_the_element_and_pressure(capsys):
    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures

    pot = load_potential("hp_committee", device="cpu")
    relax_structures([bulk("NaCl", "rocksalt", a=5.0)], pressure_gpa=150.0, potential=pot, steps=1, progress=False)
    err = capsys.readouterr().err
    assert "element Cl, Na is outside its DFT labels" in err and "pressure 150 GPa is outside" in err
    li_si = bulk("LiSi", "rocksalt", a=4.6)  # both elements labelled, never together
    relax_structures([li_si], pressure_gpa=10.0, potential=pot, steps=1, progress=False)
    assert "element combination Li-Si is not one of its labelled systems" in capsys.readouterr().err
