"""The shared-trunk committee: closed-form spreads of hand-made heads, the Potential interface,
pickling by path, coverage warnings (no DFT, no training)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from ase.build import bulk

DELTA = 0.01  # eV/atom: head 1 = head 0 + DELTA (tests/potentials/conftest.py)


def _li():
    atoms = bulk("Li", "bcc", a=3.1, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    return atoms


def test_heads_give_closed_form_spread_and_the_mean_is_one_pass(committee_dir):
    from gencrystal.potentials.shared_trunk import load_shared_trunk
    from gencrystal.potentials import load_potential

    committee = load_shared_trunk(committee_dir, "cpu")
    assert len(committee) == 3
    atoms = _li()
    e, f, s = committee.predict_members(atoms)
    ref = load_potential("chgnet", device="cpu").predict([atoms])[0]
    assert e[0] == pytest.approx(ref.energy / len(atoms), abs=1e-5)        # head 0 is CHGNet
    assert e[1] - e[0] == pytest.approx(DELTA, abs=1e-5)                    # a constant site-energy shift
    assert np.allclose(f[1], f[0], atol=1e-5) and not np.allclose(f[2], f[0], atol=1e-4)
    e_mean, f_mean, s_mean, members = committee.predict_mean(atoms)
    assert e_mean == pytest.approx(e.mean(), abs=1e-5)
    assert np.allclose(members, e, atol=1e-5)                               # per-head energies from one pass
    assert np.allclose(f_mean, f.mean(axis=0), atol=1e-4)                   # forces of the mean = mean forces
    assert np.allclose(s_mean, s.mean(axis=0), atol=1e-3)
    atoms.calc = committee.calculator(spread="full")
    atoms.get_potential_energy()
    assert atoms.calc.results["energy_std"] == pytest.approx(np.std(e), abs=1e-6)
    assert atoms.calc.results["forces_std"] > 0 and atoms.calc.results["stress_std"] > 0


def test_potential_by_name_and_path_pickles_and_relaxes(committee_dir):
    from gencrystal.potentials import Potential, load_potential
    from gencrystal.relax import relax_structures

    pot = load_potential(str(committee_dir), device="cpu")
    assert isinstance(pot, Potential) and pot.level_of_theory == "chgnet-committee-test"
    assert pot.committee is not None and pot.coverage["elements"] == ["Li", "Si"]
    back = pickle.loads(pickle.dumps(pot))  # what a Dask worker receives
    assert back.level_of_theory == pot.level_of_theory and back.spec == pot.spec
    res = relax_structures([bulk("Li", "bcc", a=3.3, cubic=True)], pressure_gpa=10.0, potential=pot,
                           optimizer="BFGS", fmax=0.05, steps=60, progress=False)
    assert res[0].ok and abs(res[0].stress_pressure_gpa - 10.0) < 1.0


def test_coverage_warnings_name_the_element_and_the_pressure(committee_dir, capsys):
    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures

    pot = load_potential(str(committee_dir), device="cpu")
    quartz_like = bulk("Si", "diamond", a=5.43)
    assert pot.coverage_warnings([quartz_like], 50.0) == []
    msgs = pot.coverage_warnings([bulk("NaCl", "rocksalt", a=5.6)], 150.0)
    assert any("element Cl, Na" in m for m in msgs) and any("pressure 150 GPa" in m for m in msgs)
    relax_structures([bulk("Cu", "fcc", a=3.6)], pressure_gpa=0.0, potential=pot, steps=2, progress=False)
    assert "warning: chgnet-committee-test: element Cu is outside its DFT labels" in capsys.readouterr().err


def test_bad_committee_dirs_are_one_line_errors(tmp_path, committee_dir):
    from gencrystal.errors import GencrystalError
    from gencrystal.potentials.shared_trunk import load_shared_trunk

    with pytest.raises(GencrystalError, match="has no committee.json"):
        load_shared_trunk(tmp_path, "cpu")
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((committee_dir / "committee.json").read_text())
    (bad / "committee.json").write_text(json.dumps(meta))  # trunk and heads missing
    with pytest.raises(GencrystalError, match="does not exist"):
        load_shared_trunk(bad, "cpu")
