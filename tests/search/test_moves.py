"""Random structure generation, fingerprints and PSO moves (no relaxation)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from gencrystal.search.fingerprint import fingerprint, fingerprint_distance, is_duplicate
from gencrystal.checks import StructureChecks
from gencrystal.search.generate import RandomStructureGenerator, compatible_space_groups
from gencrystal.search.methods import rng_for
from gencrystal.search.pso import PSOParams, canonical, periodic_displacement, pso_update


def test_random_structures_are_sane_sorted_and_seeded():
    gen = RandomStructureGenerator("SiO2", (2,), pressure_gpa=50.0)
    a, meta = gen.draw(rng_for(0, 3))
    b, _ = gen.draw(rng_for(0, 3))
    c, _ = gen.draw(rng_for(0, 4))
    assert a.get_chemical_formula() == "O4Si2"
    assert list(a.numbers) == sorted(a.numbers)  # species order fixed for PSO
    assert np.allclose(a.positions, b.positions) and np.allclose(a.cell, b.cell)  # same seed, same structure
    assert not (len(a) == len(c) and np.allclose(a.cell, c.cell))
    assert meta["space_group"] in compatible_space_groups(("Si", "O"), (2, 4)) or meta["space_group"] in \
        compatible_space_groups(("O", "Si"), (4, 2))
    assert StructureChecks(min_distance=0.7, min_volume_per_atom=2.0, max_volume_per_atom=100.0).ok(a)
    # compression: the default volume factor shrinks with pressure
    assert RandomStructureGenerator("SiO2", (2,), pressure_gpa=100.0).volume_factor < gen.volume_factor < 1.0


def test_space_groups_respect_wyckoff_multiplicities():
    groups = compatible_space_groups(("Si", "O"), (2, 4))
    assert 136 in groups  # rutile, P4_2/mnm (2a + 4f)
    assert 225 not in groups  # Fm-3m cannot hold 2 + 4 atoms in its conventional cell


def test_unplaceable_composition_is_a_clear_error():
    from gencrystal.errors import GencrystalError

    with pytest.raises(GencrystalError, match="SiO2"):
        RandomStructureGenerator("SiO2", (2,), min_distance=50.0, max_attempts=3).draw(rng_for(0))


def test_fingerprint_separates_phases_and_ignores_noise_and_density():
    fcc = bulk("Cu", "fcc", a=3.6, cubic=True)
    bcc = bulk("Cu", "bcc", a=2.9, cubic=True) * (1, 1, 2)
    noisy = fcc.copy()
    noisy.rattle(0.01, seed=0)
    squeezed = fcc.copy()
    squeezed.set_cell(fcc.cell * 0.9, scale_atoms=True)
    f = fingerprint(fcc, ["Cu"])
    assert fingerprint_distance(f, fingerprint(squeezed, ["Cu"])) < 1e-9  # density-invariant by construction
    assert fingerprint_distance(f, fingerprint(noisy, ["Cu"])) < 0.02
    assert fingerprint_distance(f, fingerprint(bcc, ["Cu"])) > 0.1
    assert is_duplicate(f, 0.0, [(fingerprint(bcc, ["Cu"]), 0.0), (fingerprint(noisy, ["Cu"]), 0.001)]) == 1
    assert is_duplicate(f, 0.0, [(fingerprint(noisy, ["Cu"]), 0.5)]) is None  # different enthalpy


def _rutile():
    from ase.spacegroup import crystal

    return crystal(["Si", "O"], basis=[(0, 0, 0), (0.3, 0.3, 0)], spacegroup=136, cellpar=[4.2, 4.2, 2.7, 90, 90, 90])


def test_displacement_is_zero_for_translated_permuted_copy():
    a = _rutile()
    order = np.argsort(a.numbers, kind="stable")
    a = a[order]
    b = a.copy()
    b.translate(b.cell.array.sum(0) * 0.37)
    b.wrap()
    perm = np.concatenate([np.flatnonzero(b.numbers == z)[::-1] for z in sorted(set(b.numbers))])
    b = b[perm]  # same species order, atoms shuffled within species
    n, sx, fx = canonical(a)
    _, sy, fy = canonical(b)
    move = periodic_displacement(n, sx, fx, sy, fy)
    assert move.cost < 1e-6
    assert np.allclose(move.lattice, 0, atol=1e-8)


def test_displacement_recovers_a_known_periodic_shift():
    a = _rutile()
    a = a[np.argsort(a.numbers, kind="stable")]
    b = a.copy()
    shift = np.zeros((len(a), 3))
    shift[3] = [0.04, -0.03, 0.0]  # move one oxygen a little; the origin stays put
    b.set_scaled_positions((a.get_scaled_positions() + shift) % 1.0)
    n, sx, fx = canonical(a)
    _, sy, fy = canonical(b)
    move = periodic_displacement(n, sx, fx, sy, fy)
    cart = move.frac @ sx
    expected = shift @ a.cell.array
    assert np.isclose(np.linalg.norm(cart), np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(np.abs(move.frac).max(), 0.04 * a.cell.lengths()[0] / np.linalg.norm(sx[0]), atol=1e-6) or \
        np.isclose(np.sqrt((cart ** 2).sum(1)).max(), np.linalg.norm(expected[3]), atol=1e-6)


def test_pso_update_moves_toward_the_best():
    a = _rutile()
    a = a[np.argsort(a.numbers, kind="stable")]
    target = a.copy()
    start = a.copy()
    rng = np.random.default_rng(0)
    frac = start.get_scaled_positions()
    frac[2:] += rng.normal(0, 0.05, size=(4, 3))
    start.set_scaled_positions(frac % 1.0)
    start.set_cell(a.cell.array * 1.05, scale_atoms=True)
    params = PSOParams(c1=0.9, c2=0.9, kick=0.0)
    n, sx, fx = canonical(start)
    _, st, ft = canonical(target)
    before = periodic_displacement(n, sx, fx, st, ft).cost
    new, vf, vl = pso_update(start, None, None, target, target, np.random.default_rng(1), 0.0, params)
    n2, s2, f2 = canonical(new)
    after = periodic_displacement(n2, s2, f2, st, ft).cost
    assert after < before
    assert list(new.numbers) == list(start.numbers)
    assert vf.shape == (len(start), 3) and vl.shape == (3, 3) and np.allclose(vl, vl.T)


def test_pso_update_refuses_mismatched_species():
    a = _rutile()
    b = Atoms("Si6", cell=a.cell, scaled_positions=a.get_scaled_positions(), pbc=True)
    with pytest.raises(ValueError):
        pso_update(a, None, None, b, b, np.random.default_rng(0), 0.5, PSOParams())
