"""DNG metrics and the reference hull, on closed-form cases (no potential needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.core.operations import SymmOp

from gencrystal.errors import GencrystalError
from gencrystal.metrics.dng import (coverage, duplicate_groups, first_of_group, novelty_flags, sun_summary,
                                    wasserstein_metrics)
from gencrystal.metrics.hull import EnergyEntry, ReferenceHull, check_single_theory

LOT = "chgnet-0.3.0@0GPa"


def E(formula: str, e: float, lot: str = LOT) -> EnergyEntry:
    return EnergyEntry(Composition(formula), e, lot, formula)


def _hull():
    # A-B binary: elements at 0 eV/atom, AB at -1 eV/atom, AB3 at -0.2 eV/atom (above the A..AB..B hull)
    return ReferenceHull([E("Li", 0.0), E("F", 0.0), E("LiF", -1.0), E("LiF3", -0.2)])


def test_energy_above_hull_closed_form():
    h = _hull()
    assert h.e_above_hull(E("LiF", -1.0)) == pytest.approx(0.0, abs=1e-9)
    assert h.e_above_hull(E("LiF", -0.9)) == pytest.approx(0.1)
    assert h.e_above_hull(E("LiF", -1.3)) == pytest.approx(-0.3)  # below the hull: negative
    # LiF3 = 1/2 LiF (per atom weight 2/4) + 1/2 F: hull energy at x_F = 3/4 is -0.5 eV/atom
    assert h.e_above_hull(E("LiF3", -0.2)) == pytest.approx(0.3)
    assert h.e_above_hull(E("Li3F", -0.5)) == pytest.approx(0.0, abs=1e-9)
    assert h.e_above_hull(E("Li", 0.25)) == pytest.approx(0.25)


def test_hull_is_per_chemical_system_and_needs_elements():
    h = ReferenceHull([E("Li", 0.0), E("F", 0.0), E("O", 0.0), E("LiF", -1.0), E("Li2O", -2.0)])
    # Li-F sample ignores the Li-O entries
    assert h.e_above_hull(E("LiF", -1.0)) == pytest.approx(0.0, abs=1e-9)
    # no elemental reference for Na -> undefined, reported as NaN (counts as not stable)
    assert math.isnan(h.e_above_hull(E("NaF", -3.0)))
    assert h.missing_elements(Composition("NaF")) == ["Na"]


def test_never_mix_potentials():
    with pytest.raises(GencrystalError, match="levels of theory"):
        ReferenceHull([E("Li", 0.0), E("F", 0.0, "sevennet-0@0GPa")])
    with pytest.raises(GencrystalError, match="cannot be compared"):
        _hull().e_above_hull(E("LiF", -1.0, "sevennet-0@0GPa"))
    assert check_single_theory([E("Li", 0.0), E("LiF", -1.0)]) == LOT


def test_sun_summary_counts():
    valid = [True, True, True, True, False]
    first = [True, False, True, True, True]
    novel = [True, True, False, True, True]
    ehull = [0.05, 0.0, 0.0, 0.2, 0.0]
    s = sun_summary(valid, first, novel, ehull, threshold=0.1)
    # only sample 0 is valid, first of its group, novel and within 0.1 eV/atom
    assert s["n_sun"] == 1 and s["sun_rate"] == pytest.approx(0.2)
    assert s["stable_rate"] == pytest.approx(0.8)
    assert s["unique_rate"] == pytest.approx(0.8) and s["novel_rate"] == pytest.approx(0.8)
    s = sun_summary(valid, first, novel, [float("nan")] * 5, threshold=0.1)
    assert s["sun_rate"] == 0.0 and s["n_no_hull"] == 5


def _rocksalt(a: float, a_el="Na", b_el="Cl") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [a_el, b_el], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_uniqueness_and_novelty():
    s1 = _rocksalt(5.64)
    s1_rot = s1.copy()
    s1_rot.apply_operation(SymmOp.from_axis_angle_and_translation([1, 1, 0], 33))
    s2 = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # CsCl type
    s3 = _rocksalt(4.2, "Mg", "O")
    labels = duplicate_groups([s1, s1_rot, s2, s3, None])
    assert labels[0] == labels[1] != labels[2] and labels[3] not in (labels[0], labels[2]) and labels[4] == -1
    assert first_of_group(labels) == [True, False, True, True, False]
    novel = novelty_flags([s1, s2, s3], train=[_rocksalt(5.7)])  # rock-salt NaCl, 1 % larger: same structure
    assert novel == [False, True, True]


def test_novelty_agrees_with_pymatgen_fit_across_cells_and_sizes():
    """Reducing each structure once and comparing equal-size cells only must not change a verdict: a
    conventional cell and a 2x2x1 supercell of the pool's primitive rock salt still match it, a CsCl cell
    and a 4-site distorted cell match their own pool members, a rattled cell matches none, exactly as a plain ``fit`` on the originals says."""
    from gencrystal.matching import make_matcher

    prim = _rocksalt(5.64).get_primitive_structure()
    supercell = prim.copy()
    supercell.make_supercell([2, 2, 1])
    rattled = _rocksalt(5.64)
    rattled.perturb(0.9, min_distance=0.6, seed=0)
    cscl = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    doubled = prim.copy()  # a 2x1x1 rock salt with one Na displaced: 4 sites after reduction, not 2
    doubled.make_supercell([2, 1, 1])
    doubled.translate_sites([0], [0.03, 0.0, 0.0])
    doubled_rotated = doubled.copy()
    doubled_rotated.apply_operation(SymmOp.from_axis_angle_and_translation([0, 0, 1], 50))
    queries = [_rocksalt(5.7), supercell, cscl, rattled, doubled_rotated, None]
    pool = [cscl.copy().scale_lattice(60.0), prim, doubled]
    sm = make_matcher("novelty")
    plain = [q is not None and not any(sm.fit(q, t) for t in pool) for q in queries]
    assert novelty_flags(queries, pool) == plain == [False, False, False, True, False, False]


def test_coverage_definitions():
    ref_s = [np.zeros(3), np.ones(3) * 10]
    ref_c = [np.zeros(2), np.array([1.0, 1.0])]
    # sample 0 is close to ref 0 in both spaces; sample 1 is far in structure space
    pred_s = [np.zeros(3) + 0.01, np.ones(3) * 5]
    pred_c = [np.zeros(2), np.array([1.0, 1.0])]
    c = coverage(pred_s, pred_c, ref_s, ref_c, struct_cutoff=0.4, comp_cutoff=1.0, n_generated=4)
    assert c["cov_recall"] == pytest.approx(0.5)
    assert c["cov_precision"] == pytest.approx(1 / 4)  # divided by all generated, incl. failed ones
    # CDVAE takes the two nearest distances separately; "joint" needs one sample within both
    pred_s = [np.zeros(3), np.ones(3) * 10]
    pred_c = [np.array([1.0, 1.0]), np.zeros(2)]
    sep = coverage(pred_s, pred_c, ref_s, ref_c, 0.4, 0.5)
    joint = coverage(pred_s, pred_c, ref_s, ref_c, 0.4, 0.5, joint=True)
    assert sep["cov_recall"] == 1.0 and joint["cov_recall"] == 0.0
    # failed fingerprints (None) are dropped but still count in COV-P's denominator
    c = coverage([None, np.zeros(3)], [None, np.zeros(2)], ref_s, ref_c, 0.4, 1.0)
    assert c["cov_precision"] == pytest.approx(0.5) and c["n_pred_fp"] == 1


def test_wasserstein_closed_form():
    a = [_rocksalt(5.64)] * 4
    w = wasserstein_metrics(a, a)
    assert w["wdist_density"] == pytest.approx(0.0) and w["wdist_num_elems"] == pytest.approx(0.0)
    b = [Structure(Lattice.cubic(3.0), ["Si"], [[0, 0, 0]])] * 3
    w = wasserstein_metrics(b, a)
    assert w["wdist_num_elems"] == pytest.approx(1.0)  # 1 element vs 2 elements everywhere
    assert w["wdist_density"] == pytest.approx(abs(b[0].density - a[0].density))
    assert w["n_wdist"] == 3


def test_fingerprints_of_known_structures():
    from gencrystal.metrics.dng import composition_fingerprint, structure_fingerprint

    fp1 = structure_fingerprint(_rocksalt(5.64))
    fp2 = structure_fingerprint(_rocksalt(6.0, "K", "Cl"))
    assert fp1.shape == (61,) and np.allclose(fp1, fp2)  # same octahedral environment at any size
    cscl = Structure.from_spacegroup("Pm-3m", Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert np.linalg.norm(structure_fingerprint(cscl) - fp1) > 0.4  # cubic 8-fold differs beyond MP-20's cutoff
    c1 = composition_fingerprint(_rocksalt(5.64))
    assert c1.shape == (132,)
