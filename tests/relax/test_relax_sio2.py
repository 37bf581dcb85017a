"""Acceptance: a perturbed rutile-type SiO2 (stishovite) relaxed with CHGNet at 50 GPa stays rutile."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from gencrystal.matching import make_matcher
from gencrystal.relax import relax_structures
from gencrystal.structures import to_atoms, to_structure


def rutile_sio2() -> Structure:
    """Stishovite, P4_2/mnm: a = 4.177 Å, c = 2.666 Å, O at (x, x, 0) with x = 0.3062."""
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.177, 2.666), ["Si", "O"],
                                     [[0, 0, 0], [0.3062, 0.3062, 0]])


@pytest.mark.slow
def test_perturbed_rutile_sio2_stays_rutile_at_50gpa(chgnet):
    ideal = rutile_sio2()
    atoms = to_atoms(ideal)
    rng = np.random.default_rng(0)
    atoms.set_cell(atoms.cell @ (np.eye(3) + rng.normal(0, 0.04, (3, 3))), scale_atoms=True)
    atoms.rattle(0.15, seed=1)
    from gencrystal.relax.analysis import space_group

    assert not space_group(atoms).startswith("P4_2/mnm")  # the perturbation broke the symmetry
    res = relax_structures([atoms], 50.0, chgnet, fmax=0.02, steps=400, progress=False)[0]
    assert res.error is None and res.converged
    assert abs(res.stress_pressure_gpa - 50.0) < 2.0
    assert res.space_group.startswith("P4_2/mnm")
    relaxed = to_structure(res.atoms)
    assert make_matcher("strict").fit(ideal, relaxed)
    assert relaxed.volume / len(relaxed) < ideal.volume / len(ideal)  # compressed relative to ambient
