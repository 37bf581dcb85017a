"""The one catalogue of known structures: each entry is what it claims, and the targets' Z."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from gencrystal import known_structures as ks
from gencrystal.errors import GencrystalError
from gencrystal.structures import min_interatomic_distance, to_structure


@pytest.mark.parametrize("sid", sorted(ks.STRUCTURES))
def test_each_structure_has_its_formula_and_space_group(sid):
    entry = ks.STRUCTURES[sid]
    atoms = ks.structure(sid)
    assert atoms.info["id"] == sid and atoms.pbc.all()
    assert Composition(atoms.get_chemical_formula()).reduced_formula == entry.formula
    sga = SpacegroupAnalyzer(to_structure(atoms), symprec=1e-3 if "AFLOW" not in entry.source else 0.05)
    assert sga.get_space_group_number() == entry.space_group, sid
    assert min_interatomic_distance(atoms) > 1.0  # no overlapping atoms


@pytest.mark.parametrize("key", sorted(ks.TARGETS))
def test_each_target_primitive_cell_holds_its_formula_units(key):
    t = ks.target(key)
    prim = SpacegroupAnalyzer(to_structure(t.structure()), symprec=0.05).find_primitive()
    per_fu = sum(Composition(t.formula).values())
    assert len(prim) == t.formula_units * per_fu, f"{key}: primitive cell has {len(prim)} atoms"


def test_the_headline_targets_and_their_pressures():
    got = {k: (ks.TARGETS[k].pressure_gpa, ks.TARGETS[k].formula_units) for k in ks.HEADLINE_TARGETS}
    assert got == {"li_ci16": (50.0, 8), "sio2_rutile": (50.0, 2), "sio2_cacl2": (80.0, 2), "sio2_apbo2": (100.0, 4),
                   "sio2_pyrite": (300.0, 4), "b_alpha_ga": (100.0, 4), "b_alpha12": (0.0, 12)}
    assert [k for k, t in ks.TARGETS.items() if t.extrapolation] == ["sio2_pyrite"]
    assert ks.TARGETS["sio2_apbo2"].anchor_text() == "21.6 (74.7)"
    assert ks.TARGETS["sio2_coesite"].anchor_text() == "328 (not found)"


def test_seed_and_demo_lists_name_catalogue_entries_and_matching_tells_phases_apart():
    assert set(ks.SEED_PROTOTYPES) <= set(ks.STRUCTURES)
    assert {s for g in ks.DEMO_REFERENCES.values() for s in g} <= set(ks.SEED_PROTOTYPES)
    stish, cacl2 = ks.structure("SiO2-stishovite"), ks.structure("SiO2-CaCl2")
    squeezed = stish.copy()
    squeezed.set_cell(stish.cell.array * 0.95, scale_atoms=True)
    assert ks.matches(squeezed, stish, "strict")  # the matcher scales volumes
    assert not ks.matches(ks.structure("SiO2-alpha-quartz"), stish, "loose")
    assert ks.matches(cacl2, stish, "loose")  # CaCl2-type is a slightly distorted rutile
    with pytest.raises(GencrystalError, match="unknown known structure 'SiO2-glass'"):
        ks.structure("SiO2-glass")
    with pytest.raises(GencrystalError, match="unknown target 'h2o_ice'"):
        ks.target("h2o_ice")
