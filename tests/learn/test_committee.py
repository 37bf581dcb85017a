"""The committee as an ASE calculator and as a gencrystal.relax Potential (no DFT, no training)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase.build import bulk


@pytest.fixture(scope="module")
def twin_committee(tmp_path_factory):
    """A committee whose two members are both the shipped CHGNet 0.3.0 (zero spread)."""
    import torch

    from gencrystal.potentials.committee import write_committee_meta
    from gencrystal.learn.finetune import load_base_model

    d = tmp_path_factory.mktemp("twins")
    model = load_base_model("0.3.0")
    for m in range(2):
        torch.save({"model": model.as_dict()}, d / f"member{m}.pth.tar")
    write_committee_meta(d, ["member0.pth.tar", "member1.pth.tar"], energy_offsets={}, n_labels=0)
    return d


def test_committee_of_identical_members_has_zero_spread_and_matches_chgnet(twin_committee):
    from gencrystal.potentials.committee import load_committee
    from gencrystal.potentials import load_potential

    atoms = bulk("Li", "bcc", a=3.0, cubic=True)
    atoms.rattle(0.05, seed=3)
    atoms.calc = load_committee(twin_committee).calculator()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    assert atoms.calc.results["forces_std"] == pytest.approx(0.0, abs=1e-6)
    assert atoms.calc.results["stress_std"] == pytest.approx(0.0, abs=1e-6)
    ref = load_potential("chgnet", device="cpu").predict([atoms])[0]
    assert e == pytest.approx(ref.energy, abs=1e-4)
    assert np.allclose(f, ref.forces, atol=1e-4)
    assert np.allclose(s, ref.stress, atol=1e-6)


def test_committee_is_a_relax_potential_and_members_load_by_path(twin_committee):
    from gencrystal.potentials.committee import load_committee_potential
    from gencrystal.potentials import Potential, load_potential
    from gencrystal.relax import relax_structures

    pot = load_committee_potential(twin_committee, device="cpu")
    assert isinstance(pot, Potential)
    assert pot.level_of_theory.startswith("chgnet-committee")
    back = pickle.loads(pickle.dumps(pot))  # Dask workers re-load it by path
    assert isinstance(back, Potential) and back.spec == pot.spec
    atoms = bulk("Li", "bcc", a=3.3, cubic=True)
    res = relax_structures([atoms], pressure_gpa=10.0, potential=pot, optimizer="BFGS", fmax=0.05, steps=50)
    assert res[0].ok and abs(res[0].stress_pressure_gpa - 10.0) < 1.0
    member = load_potential(str(twin_committee / "member0.pth.tar"), device="cpu")
    assert member.name == "chgnet"
