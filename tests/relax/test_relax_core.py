"""Variable-cell relaxation under pressure: physics, failure isolation, batched == one-by-one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atom
from ase.build import bulk

from gencrystal.errors import GencrystalError
from gencrystal.relax import RelaxGuard, relax_structures
from gencrystal.relax.analysis import rmsd_same_order, spearman
from gencrystal.units import ev_per_a3_to_gpa



def fcc(symbol: str, a: float, rattle: float = 0.0, seed: int = 0):
    atoms = bulk(symbol, "fcc", a=a, cubic=True)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def test_pressure_compresses_and_stress_matches_target(emt_potential):
    """EMT Cu relaxed at 0 and 20 GPa: volume drops, final -tr(σ)/3 equals the target, H = E + PV."""
    a0 = fcc("Cu", 3.7, rattle=0.02, seed=1)
    r0, r20 = (relax_structures([a0], p, emt_potential, fmax=0.005, steps=400, progress=False)[0] for p in (0.0, 20.0))
    assert r0.converged and r20.converged and r0.error is None
    assert r20.volume_per_atom < r0.volume_per_atom * 0.95
    assert abs(r0.stress_pressure_gpa) < 0.3 and abs(r20.stress_pressure_gpa - 20.0) < 0.3
    n = len(r20.atoms)
    expected_h = (r20.energy + 20.0 * 0.0062415091 * r20.volume_per_atom * n) / n
    assert math.isclose(r20.enthalpy_per_atom, expected_h, rel_tol=1e-6)
    assert r20.atoms.info["pressure_gpa"] == 20.0 and r20.atoms.info["level_of_theory"] == "emt"
    assert r20.space_group.startswith("Fm-3m")


def test_bfgs_and_fire_reach_the_same_minimum(emt_potential):
    a0 = fcc("Cu", 3.5, rattle=0.03, seed=2)
    rf = relax_structures([a0], 10.0, emt_potential, optimizer="FIRE", fmax=0.002, steps=500, progress=False)[0]
    rb = relax_structures([a0], 10.0, emt_potential, optimizer="BFGS", fmax=0.002, steps=500, progress=False)[0]
    assert rf.converged and rb.converged
    assert abs(rf.volume_per_atom - rb.volume_per_atom) < 0.02
    assert abs(rf.enthalpy_per_atom - rb.enthalpy_per_atom) < 1e-4


def test_nan_structure_fails_alone(nan_potential):
    """The poisoned (Au-containing) structure is recorded as failed; the others relax."""
    good1, good2 = fcc("Cu", 3.7, rattle=0.02, seed=3), fcc("Al", 4.1, rattle=0.02, seed=4)
    bad = fcc("Cu", 3.7)
    bad.numbers[0] = 79
    res = relax_structures([good1, bad, good2], 5.0, nan_potential, fmax=0.02, steps=300, progress=False)
    assert [r.id for r in res] == ["0", "1", "2"]
    assert res[1].error is not None and "non-finite" in res[1].error and not res[1].converged
    assert res[0].converged and res[2].converged and res[0].error is None and res[2].error is None


def test_nan_structure_fails_alone_batched(nan_potential):
    good, bad = fcc("Cu", 3.7, rattle=0.02, seed=5), fcc("Cu", 3.7)
    bad.numbers[1] = 79
    res = relax_structures([bad, good], 5.0, nan_potential, batched=True, fmax=0.02, steps=300, progress=False)
    assert res[0].error is not None and "non-finite" in res[0].error
    assert res[1].converged and res[1].error is None


def test_volume_guard_stops_an_exploding_cell(emt_potential):
    """A structure pushed past the guard's volume range is stopped and recorded, not returned as relaxed."""
    a = fcc("Cu", 3.6, rattle=0.01, seed=6)
    guard = RelaxGuard(min_volume_per_atom=11.0, max_volume_per_atom=200.0)  # Cu at 30 GPa goes below 11 Å3
    res = relax_structures([a], 30.0, emt_potential, guard=guard, fmax=0.01, steps=300, progress=False)[0]
    assert res.error is not None and "volume guard" in res.error and not res.converged


def test_not_converged_is_recorded(emt_potential):
    a = fcc("Cu", 3.4, rattle=0.05, seed=7)
    res = relax_structures([a], 0.0, emt_potential, fmax=1e-4, steps=3, progress=False)[0]
    assert not res.converged and res.steps == 3 and "not converged" in res.error


def test_batched_agrees_with_one_by_one(emt_potential):
    """Batched FIRE follows the one-by-one ASE FIRE path: same steps, energies, cells."""
    structs = [fcc("Cu", 3.7, rattle=0.03, seed=s) for s in range(3)] + [fcc("Al", 4.2, rattle=0.03, seed=9)]
    one = relax_structures(structs, 8.0, emt_potential, fmax=0.01, steps=300, progress=False)
    bat = relax_structures(structs, 8.0, emt_potential, batched=True, batch_size=3, fmax=0.01, steps=300, progress=False)
    for a, b in zip(one, bat):
        assert a.converged and b.converged
        assert a.steps == b.steps
        assert abs(a.enthalpy_per_atom - b.enthalpy_per_atom) < 1e-8
        assert np.allclose(a.atoms.cell[:], b.atoms.cell[:], atol=1e-6)
        assert np.allclose(a.atoms.positions, b.atoms.positions, atol=1e-6)


def test_batched_chgnet_agrees_with_one_by_one(chgnet):
    """CHGNet: one model call per iteration for all structures, same minimum as the ASE path."""
    si = bulk("Si", "diamond", a=5.55)
    si.rattle(0.04, seed=1)
    li = bulk("Li", "bcc", a=3.3, cubic=True)
    li.rattle(0.02, seed=2)
    one = relax_structures([si, li], 10.0, chgnet, fmax=0.05, steps=200, progress=False)
    bat = relax_structures([si, li], 10.0, chgnet, batched=True, fmax=0.05, steps=200, progress=False)
    for a, b in zip(one, bat):
        assert a.converged and b.converged
        assert abs(a.enthalpy_per_atom - b.enthalpy_per_atom) < 2e-4
        assert abs(a.volume_per_atom - b.volume_per_atom) < 0.02 * a.volume_per_atom
        assert abs(a.steps - b.steps) <= 3
    assert one[0].level_of_theory == "chgnet-0.3.0"


def test_bad_inputs_raise_one_line(emt_potential):
    a = fcc("Cu", 3.6)
    with pytest.raises(GencrystalError, match="negative"):
        relax_structures([a], -1.0, emt_potential, progress=False)
    with pytest.raises(GencrystalError, match="finite"):
        relax_structures([a], float("nan"), emt_potential, progress=False)
    with pytest.raises(GencrystalError, match="unknown potential 'nonesuch'"):
        relax_structures([a], 1.0, "nonesuch", progress=False)
    with pytest.raises(GencrystalError, match="optimizer"):
        relax_structures([a], 1.0, emt_potential, optimizer="LBFGSX", progress=False)
    with pytest.raises(GencrystalError, match="does not exist"):
        relax_structures([a], 1.0, "/nonexistent/ft.pth.tar", progress=False)


def test_rmsd_and_spearman_closed_forms():
    a = fcc("Cu", 3.6)
    b = a.copy()
    b.positions += 0.7  # rigid translation: no displacement
    assert rmsd_same_order(a, b) < 1e-9
    c = a.copy()
    c.positions[0] += [0.2, 0.0, 0.0]
    # one of 4 atoms moved by 0.2 Å; removing the mean shift (0.05) gives sqrt((0.15²+3·0.05²)/4)
    assert math.isclose(rmsd_same_order(a, c), math.sqrt((0.15**2 + 3 * 0.05**2) / 4), rel_tol=1e-9)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1.0], [2.0]))


def test_ev_per_a3_stress_sign_convention(emt_potential):
    """Compressing a relaxed cell makes ASE stress negative, i.e. a positive pressure."""
    a = relax_structures([fcc("Cu", 3.6)], 0.0, emt_potential, fmax=0.005, progress=False)[0].atoms
    a.set_cell(a.cell * 0.97, scale_atoms=True)
    a.calc = emt_potential.calculator()
    assert -ev_per_a3_to_gpa(a.get_stress()[:3].mean()) > 5.0


@pytest.mark.parametrize("batched", [False, True])
def test_element_outside_the_potential_fails_alone(chgnet, batched):
    """CHGNet covers Z <= 94: an Og cell is recorded as failed with a clear reason, Si still relaxes."""
    og = bulk("Og", "fcc", a=5.0)
    si = bulk("Si", "diamond", a=5.45)
    res = relax_structures([og, si], 0.0, chgnet, batched=batched, progress=False)
    assert res[0].error == "element Og (Z=118) not covered by chgnet-0.3.0" and not res[0].converged
    assert res[1].converged and res[1].error is None and res[1].id == "1"


@pytest.mark.parametrize("batched", [False, True])
def test_input_guard_rejects_overlapping_atoms_before_the_potential(batched, make_looping_potential):
    """Two atoms 0.2 Å apart are rejected without a single potential call; the good cell relaxes."""
    from ase.calculators.emt import EMT

    seen: list[int] = []

    class Counting(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            seen.append(len(atoms))
            super().calculate(atoms, properties, system_changes or ["positions", "numbers", "cell", "pbc"])

    pot = make_looping_potential(Counting, "emt-counting")
    good = fcc("Cu", 3.6, rattle=0.01, seed=8)
    bad = fcc("Cu", 3.6)
    bad.positions[1] = bad.positions[0] + [0.2, 0.0, 0.0]
    bad.append(Atom("Cu", (0.9, 0.9, 0.9)))  # 5 atoms: tells its calls apart from the good 4-atom cell's
    res = relax_structures([bad, good], 0.0, pot, batched=batched, fmax=0.05, steps=100, progress=False)
    assert res[0].error is not None and "input guard" in res[0].error and "0.2 Å apart" in res[0].error
    assert not res[0].converged and res[1].converged
    assert 5 not in seen and 4 in seen


@pytest.mark.parametrize("batched", [False, True])
def test_time_guard_stops_a_slow_structure(emt_potential, batched):
    """max_seconds=0 stops the structure after its first step and says so."""
    a = fcc("Cu", 3.4, rattle=0.05, seed=9)
    guard = RelaxGuard(max_seconds=0.0)
    res = relax_structures([a], 0.0, emt_potential, guard=guard, batched=batched, fmax=1e-4, steps=50,
                           progress=False)[0]
    assert res.error is not None and "time guard" in res.error and res.steps <= 1 and not res.converged


def test_input_guard_closed_forms():
    """check_input: volume per atom and nearest distance (periodic images included) against the limits."""
    g = RelaxGuard(min_distance=1.0)
    cu = fcc("Cu", 3.6)  # nearest neighbour 3.6/√2 = 2.55 Å, 11.66 Å³/atom
    assert g.check_input(cu) is None
    assert "outside" in RelaxGuard(min_volume_per_atom=12.0).check_input(cu)
    tiny = cu.copy()
    tiny.set_cell(cu.cell * 0.35, scale_atoms=True)  # nearest 0.35·2.55 = 0.891 Å, 0.50 Å³/atom
    assert "0.891 Å apart" in RelaxGuard(min_volume_per_atom=0.1, min_distance=1.0).check_input(tiny)
    one = bulk("Cu", "sc", a=0.8)  # one atom, its own image 0.8 Å away
    assert "0.8 Å apart" in RelaxGuard(min_volume_per_atom=0.1, min_distance=1.0).check_input(one)
    # sc, a = 1.2 Å: within 3 Å lie 6 + 12 + 8 + 6 + 24 + 24 + 12 + ... = all lattice points with
    # |n|·1.2 ≤ 3, i.e. n1²+n2²+n3² ≤ 6.25: 6+12+8+6+24+24 = 80 neighbours
    dense = bulk("Cu", "sc", a=1.2)
    assert "80 neighbours within 3 Å" in RelaxGuard(min_volume_per_atom=0.1).check_input(dense)
    assert RelaxGuard(min_volume_per_atom=0.1, max_neighbors=80).check_input(dense) is None
    assert RelaxGuard(min_volume_per_atom=0.1, max_neighbors=None).check_input(dense) is None
