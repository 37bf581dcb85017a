"""Training a shared-trunk committee end to end on a few EMT-labelled cells (the recipe of the
shipped hp_committee, scripts/train_hp_committee.py, at toy size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from tests.scripts import load_script


def _label_db(path, n=4):
    from gencrystal.db.schema import connect
    from gencrystal.learn.labels import add_label_to_db, structure_hash

    db = connect(str(path))
    for i in range(n):
        a = bulk("Cu", "fcc", a=3.3 + 0.1 * i).repeat((2, 1, 1))
        a.rattle(0.03, seed=i)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        lab = a.copy()
        lab.calc = SinglePointCalculator(lab, energy=e, forces=f, stress=s)
        lab.info.update({"label_hash": structure_hash(lab, "emt"), "level_of_theory": "emt", "pressure_gpa": 10.0 * i,
                         "dft_code": "emt", "dft_ecut_ev": 0.0})
        add_label_to_db(db, lab, source="test")
    return path


@pytest.mark.slow
def test_train_hp_committee_script_builds_a_loadable_committee_with_coverage(tmp_path):
    mod = load_script("train_hp_committee")
    src = _label_db(tmp_path / "labels_src.db")
    out = tmp_path / "committee"
    assert mod.main(["--labels", str(src), "--out", str(out), "--heads", "2", "--epochs", "1", "--head-epochs", "1",
                     "--name", "test-committee"]) == 0
    meta = json.loads((out / "committee.json").read_text())
    assert meta["format"] == "shared-trunk" and meta["n_heads"] == 2 and meta["n_labels"] == 4
    assert meta["coverage"]["elements"] == ["Cu"] and meta["labels_by_system"] == {"Cu": 4}
    assert not list(out.glob("head*.pth.tar")) and (out / "labels.db").is_file()
    from gencrystal.potentials import load_potential

    pot = load_potential(str(out), device="cpu")
    atoms = bulk("Cu", "fcc", a=3.5)
    e, f, s = pot.committee.predict_members(atoms)
    assert e.shape == (2,) and np.all(np.isfinite(e)) and np.all(np.isfinite(s))
    # the trunk is shared: only the readout differs between heads, so head energies differ a little
    assert np.ptp(e) < 1.0
    stamp = (out / "heads.pt").stat().st_mtime_ns
    assert mod.main(["--labels", str(src), "--out", str(out), "--heads", "2", "--epochs", "1",
                     "--head-epochs", "1", "--name", "test-committee"]) == 0  # the same run again: nothing trained
    assert (out / "heads.pt").stat().st_mtime_ns == stamp
