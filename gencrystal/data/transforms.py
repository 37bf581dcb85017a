"""Preprocessing of one crystal: Niggli reduction, optional primitive cell, polar lattice.

The result is the canonical form every dataset stores: a lattice whose rows are the
lattice vectors (Å) replaced by its symmetric polar factor ``S = (L Lᵀ)^(1/2)`` (the
rotation removed, as MatterGen does; see :mod:`gencrystal.geometry`), fractional
coordinates wrapped to ``[0, 1)`` and atomic numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms
from pymatgen.core import Structure

from gencrystal.elements import MAX_Z
from gencrystal.errors import GencrystalError
from gencrystal.geometry import polar_symmetric_np
from gencrystal.structures import to_structure


def wrap_frac(frac: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Fractional coordinates wrapped to ``[0, 1)`` *after* the cast to ``dtype``.

    A value like ``0.99999999`` rounds to ``1.0`` in float32; it is mapped to ``0.0``
    (the same point), so the result is strictly below 1 in the stored precision.
    """
    f = np.asarray(frac, dtype=np.float64)
    f = f - np.floor(f)
    out = f.astype(dtype)
    out[out >= 1.0] = 0.0
    out[out < 0.0] = 0.0
    return out


def _same_metric(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> bool:
    """True when two lattices have the same metric ``L Lᵀ`` (to ``rtol`` of its largest entry)."""
    ga, gb = a @ a.T, b @ b.T
    return bool(np.abs(ga - gb).max() <= rtol * max(np.abs(ga).max(), 1.0))


@dataclass(frozen=True)
class CrystalTransform:
    """Canonicalise a crystal (Hydra: ``data.transform._target_``).

    Args:
        niggli: Niggli-reduce the cell (pymatgen ``get_reduced_structure("niggli")``).
        primitive: replace the cell by its primitive cell first (pymatgen
            ``get_primitive_structure``); off by default as in CDVAE/DiffCSP.
        polar: replace the lattice by its symmetric polar factor (rotation removed).
    """

    niggli: bool = True
    primitive: bool = False
    polar: bool = True

    def config(self) -> dict:
        """The settings as a plain dict (part of the cache key)."""
        return asdict(self)

    def structure(self, obj: Structure | Atoms) -> Structure:
        """The transformed pymatgen Structure (lattice in Å, rows = vectors)."""
        lattice, frac, numbers = self.arrays(obj)
        return Structure(lattice, numbers.tolist(), frac.astype(np.float64), coords_are_cartesian=False)

    def arrays(self, obj: Structure | Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lattice [3,3] float64 Å, frac [n,3] float64 in [0,1), atomic numbers [n] int64)``.

        Raises :class:`GencrystalError` for a disordered (partially occupied) structure,
        an empty cell or an element beyond Z = 100.
        """
        s = to_structure(obj)
        if len(s) == 0:
            raise GencrystalError("structure has no atoms")
        if not s.is_ordered:
            raise GencrystalError(f"structure {s.composition.formula!r} is disordered (partial occupancies)")
        if self.primitive:
            s = s.get_primitive_structure()
        if self.niggli:
            reduced = s.get_reduced_structure(reduction_algo="niggli")
            # The Niggli metric is unique, the basis is not: for a cell that is already
            # reduced (same metric) pymatgen may still return e.g. (-a, -b, c), which the
            # polar factor cannot tell apart from (a, b, c) but which moves every atom.
            # Keeping the input basis then makes the transform idempotent.
            if not _same_metric(s.lattice.matrix, reduced.lattice.matrix):
                s = reduced
        lattice = np.array(s.lattice.matrix, dtype=np.float64)
        frac = np.array(s.frac_coords, dtype=np.float64)
        if self.polar:
            # L = S Q with Q orthogonal: the fractional coordinates are unchanged.
            lattice = polar_symmetric_np(lattice)
        numbers = np.array([site.specie.Z for site in s], dtype=np.int64)
        if numbers.max() > MAX_Z or numbers.min() < 1:
            raise GencrystalError(f"structure {s.composition.formula!r} has an element outside Z = 1..{MAX_Z}")
        frac = frac - np.floor(frac)
        frac[frac >= 1.0] = 0.0
        return lattice, frac, numbers
