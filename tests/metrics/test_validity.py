"""Validity as CDVAE/DiffCSP define it: SMACT composition, 0.5 Å / 0.1 Å³ structure."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure

from gencrystal.errors import GencrystalError
from gencrystal.metrics.validity import crystal_validity, smact_validity, structure_validity


@pytest.mark.parametrize("formula", ["NaCl", "Fe2O3", "Li3N", "MgAl2O4", "LiFePO4", "GaAs"])
def test_charge_balanced_compositions_pass(formula):
    assert smact_validity(formula)


@pytest.mark.parametrize("formula", ["NaCl2", "Na2O3", "LiO3", "CaF3", "KCl4"])
def test_known_smact_invalid_compositions_are_flagged(formula):
    # no combination of SMACT oxidation states balances these charges
    assert not smact_validity(formula)


def test_single_elements_and_all_metal_alloys_pass():
    assert smact_validity("Si")
    assert smact_validity("Xe")  # one element: passes by definition, even without oxidation states
    assert smact_validity("Cu3Zn")
    assert smact_validity("Fe7Ni3Co")


def test_noble_gas_compound_fails():
    assert not smact_validity("XeNa")  # Na is a metal, Xe is not: no alloy pass; Xe has no oxidation state


def test_pauling_test_matters():
    # Na3Cl balances only as Cl(+3) Na(-1)x3: the charges add up, but the more
    # electronegative Cl would be the cation, which the Pauling test rejects
    assert smact_validity("Na3Cl", use_pauling_test=False)
    assert not smact_validity("Na3Cl", use_pauling_test=True)


def test_reduced_counts_are_used():
    assert smact_validity("Na4Cl4") == smact_validity("NaCl")
    assert smact_validity("Na2Cl4") == smact_validity("NaCl2") is False


def test_combination_cap():
    # the cap counts oxidation-state combinations: 7 elements with several states each
    f = "MnCrVFeCoNiO8"
    assert smact_validity(f, include_alloys=False, max_combinations=10) is False


def test_structure_validity_distance_and_volume():
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    assert structure_validity(nacl)
    squeezed = nacl.copy()
    squeezed.positions[1] = squeezed.positions[0] + [0.3, 0.0, 0.0]
    assert not structure_validity(squeezed)
    assert structure_validity(squeezed, min_distance=0.25)
    tiny = Structure(Lattice.cubic(0.4), ["Si"], [[0, 0, 0]])
    assert not structure_validity(tiny)  # 0.064 Å^3 < 0.1
    assert structure_validity(Structure(Lattice.cubic(0.5), ["Si"], [[0, 0, 0]]))  # 0.125 Å^3, single site


def test_crystal_validity_combines_both():
    v = crystal_validity(bulk("NaCl", "rocksalt", a=5.64))
    assert v.struct_valid and v.comp_valid and v.valid
    bad = Atoms("NaCl2", cell=np.eye(3) * 6, scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5]], pbc=True)
    v = crystal_validity(bad)
    assert v.struct_valid and not v.comp_valid and not v.valid


def test_unknown_oxidation_set_is_an_error():
    with pytest.raises(GencrystalError, match="oxidation_states_set"):
        smact_validity("NaCl", oxidation_states_set="nope")
