"""Conversions between ASE ``Atoms`` and pymatgen ``Structure``, in one place."""

from __future__ import annotations

from ase import Atoms
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor


def to_structure(obj: Atoms | Structure) -> Structure:
    """Return a pymatgen Structure for an ASE Atoms (periodic) or a Structure."""
    if isinstance(obj, Structure):
        return obj
    return AseAtomsAdaptor.get_structure(obj)


def to_atoms(obj: Atoms | Structure) -> Atoms:
    """Return an ASE Atoms (pbc=True) for a pymatgen Structure or an Atoms (copied, info kept)."""
    if isinstance(obj, Atoms):
        return obj.copy()
    atoms = AseAtomsAdaptor.get_atoms(obj)
    atoms.pbc = True
    # pymatgen attaches its site properties as arrays; keep only what ASE understands.
    for key in list(atoms.arrays):
        if key not in ("numbers", "positions", "momenta", "masses", "initial_magmoms", "initial_charges"):
            del atoms.arrays[key]
    atoms.info = {}
    return atoms


def volume_per_atom(obj: Atoms | Structure) -> float:
    """Volume per atom in Å³."""
    if isinstance(obj, Structure):
        return obj.volume / len(obj)
    return obj.get_volume() / len(obj)


def min_interatomic_distance(obj: Atoms | Structure) -> float:
    """Smallest periodic interatomic distance in Å (inf for a one-atom cell larger than it)."""
    s = to_structure(obj)
    if len(s) == 1:
        return float(min(s.lattice.abc))
    dm = s.distance_matrix
    n = len(s)
    dm = dm + 1e9 * __import__("numpy").eye(n)
    return float(min(dm.min(), min(s.lattice.abc)))


def sort_by_species(atoms: Atoms) -> Atoms:
    """A copy with atoms ordered by atomic number (stable)."""
    import numpy as np

    order = np.argsort(atoms.numbers, kind="stable")
    return atoms[order]
