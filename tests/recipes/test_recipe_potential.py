"""The `## Add a potential` recipe of docs/potentials.md, done exactly: one module, one YAML,
then `gencrystal relax potential=...` from the command line (in-process and on Dask workers)."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
from ase.build import bulk
from ase.io import read, write

MODULE = '''
"""Lennard-Jones argon (ASE's calculator) as a gencrystal potential."""
from ase.calculators.lj import LennardJones

from gencrystal.potentials import calculator_potential


def lennard_jones(sigma: float, epsilon: float, rc: float):
    """Pair potential: sigma (Å), epsilon (eV), cutoff rc (Å)."""
    return calculator_potential(lambda: LennardJones(sigma=sigma, epsilon=epsilon, rc=rc, smooth=True),
                                level_of_theory=f"lj-{sigma:g}-{epsilon:g}")
'''

YAML = '''
_target_: my_potentials.lennard_jones
sigma: 3.4       # Å
epsilon: 0.0104  # eV
rc: 8.5          # Å
'''


def test_add_a_potential_with_one_module_and_one_yaml(tmp_path, monkeypatch):
    from gencrystal.cli import main
    from gencrystal.potentials import build_potential
    from gencrystal.relax import relax_structures

    # 1. the module, anywhere on the Python path (workers inherit PYTHONPATH)
    (tmp_path / "my_potentials.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("my_potentials", None)
    # 2. the YAML, in a potential/ folder of a config directory Hydra searches
    (tmp_path / "myconf" / "potential").mkdir(parents=True)
    (tmp_path / "myconf" / "potential" / "lj_argon.yaml").write_text(textwrap.dedent(YAML))

    ar = bulk("Ar", "fcc", a=5.3, cubic=True)
    ar.rattle(0.05, seed=0)
    structures = [ar, bulk("Ar", "fcc", a=5.6)]
    write(tmp_path / "ar.extxyz", structures)
    summaries = {}
    for workers in (1, 2):  # 2: Dask workers rebuild the potential from its config
        out = tmp_path / f"out{workers}"
        code = main(["relax", f"input={tmp_path / 'ar.extxyz'}", "pressure=1", f"out={out}",
                     f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "potential=lj_argon",
                     f"cluster.workers={workers}", "fmax=0.01", "steps=200"])
        assert code == 0
        summaries[workers] = json.loads((out / "summary.json").read_text())
        frames = read(out / "relaxed.extxyz", index=":")
        assert len(frames) == 2 and all(f.info["converged"] for f in frames)
        assert all(abs(f.info["stress_pressure_gpa"] - 1.0) < 0.05 for f in frames)
    assert summaries[1]["potential"] == summaries[2]["potential"] == "lj-3.4-0.0104"
    # the same potential from Python, by the YAML's config: same enthalpies as the CLI's
    pot = build_potential({"_target_": "my_potentials.lennard_jones", "sigma": 3.4, "epsilon": 0.0104, "rc": 8.5})
    direct = relax_structures(structures, 1.0, pot, fmax=0.01, steps=200, progress=False)
    h_cli = sorted(f.info["enthalpy_per_atom"] for f in read(tmp_path / "out2" / "relaxed.extxyz", index=":"))
    assert np.allclose(sorted(r.enthalpy_per_atom for r in direct), h_cli, atol=1e-6)
