"""Holding the known phases out of a generative model's training data.

The known-phase benchmark asks how many samples a model needs to find a known phase; a
model that trained on that phase answers from memory. :func:`known_phase_structures`
collects the references — every structure of :mod:`gencrystal.known_structures` (the
benchmark targets, the seed prototypes of Li, Si, SiO2 and B, the demo's phases) — and
:func:`find_known_phases` names every structure that pymatgen's ``StructureMatcher``
(``csp`` settings of :mod:`gencrystal.matching`: stol 0.5, ltol 0.3, angle_tol 10°)
equates with one of them. Structures are compared only with references of the same
reduced formula (the matcher would reject the others anyway), so scanning a database of
thousands of rows is quick.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ase import Atoms

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: ``split`` value given to database rows held out because they are a known phase
HELDOUT_SPLIT = "heldout_known"


def known_phase_structures() -> dict[str, Atoms]:
    """The known-phase references by name, ``known:<id>``: every structure of the one
    catalogue :data:`gencrystal.known_structures.STRUCTURES` (the benchmark targets, the seed
    prototypes and the demo's reference phases; ASE Atoms, Å)."""
    from gencrystal.known_structures import STRUCTURES

    return {f"known:{sid}": ks.atoms() for sid, ks in STRUCTURES.items()}


def _reduced_formula(atoms: Atoms) -> str:
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula(mode="metal")).reduced_formula


def find_known_phases(
    structures: Iterable[tuple[str, Atoms]], references: dict[str, Atoms] | None = None, kind: str = "csp"
) -> dict[str, str]:
    """``{structure id: reference name}`` for every structure the matcher equates with a
    known phase (the first matching reference, in :func:`known_phase_structures` order).

    Args:
        structures: ``(id, Atoms)`` pairs (cells in Å; any volume: the matcher rescales).
        references: name → Atoms; default :func:`known_phase_structures`.
        kind: matcher settings of :func:`gencrystal.matching.make_matcher`.
    """
    from gencrystal.matching import make_matcher
    from gencrystal.structures import to_structure

    refs = known_phase_structures() if references is None else references
    by_formula: dict[str, list[tuple[str, Structure]]] = {}
    for name, atoms in refs.items():
        by_formula.setdefault(_reduced_formula(atoms), []).append((name, to_structure(atoms)))
    matcher = make_matcher(kind)
    found: dict[str, str] = {}
    for sid, atoms in structures:
        candidates = by_formula.get(_reduced_formula(atoms))
        if not candidates:
            continue
        s = to_structure(atoms)
        for name, ref in candidates:
            if matcher.fit(s, ref):
                found[str(sid)] = name
                break
    return found
