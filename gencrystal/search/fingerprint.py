"""Structure fingerprints for duplicate detection in searches (CALYPSO-style similarity).

The fingerprint is the Oganov–Valle partial radial distribution fingerprint
(J. Chem. Phys. 130, 104504, 2009): for every element pair (A, B), the Gaussian-smeared
histogram of A–B distances up to ``cutoff``, normalised by the ideal-gas count
``4πR²·N_A·N_B/V`` so that it tends to 1 at long range, minus 1. It is computed on a
copy of the structure rescaled to a fixed volume per atom (so that it compares shapes,
not densities), with pymatgen's periodic neighbour list. Two structures are compared by
the cosine distance of their fingerprints (0 = identical); CALYPSO's
bond-characterisation matrix plays the same role. (matminer's PartialRadialDistribution
featurizer computes an unsmoothed variant, but importing matminer's structure
featurizers costs 5–30 s per process on 2 shared cores, more than a whole small search.)
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from ase import Atoms

#: volume per atom (Å³) that structures are rescaled to before fingerprinting
REFERENCE_VOLUME_PER_ATOM = 10.0


def fingerprint(
    atoms: Atoms,
    elements: Sequence[str],
    cutoff: float = 6.0,
    bin_size: float = 0.05,
    sigma: float = 0.1,
) -> np.ndarray:
    """Partial-RDF fingerprint of ``atoms`` (a 1-D float array, one block per element pair).

    ``elements`` fixes the element-pair blocks so that fingerprints of one search are
    comparable. ``cutoff``, ``bin_size`` and the Gaussian width ``sigma`` are in Å at the
    reference volume of :data:`REFERENCE_VOLUME_PER_ATOM` Å³/atom.
    """
    from pymatgen.core import Lattice, Structure

    n = len(atoms)
    factor = (REFERENCE_VOLUME_PER_ATOM * n / atoms.get_volume()) ** (1.0 / 3.0)
    cell = atoms.cell.array * factor
    structure = Structure(Lattice(cell), atoms.get_chemical_symbols(), atoms.get_scaled_positions(wrap=True))
    volume = structure.volume
    centers, points, _, dists = structure.get_neighbor_list(cutoff + 3 * sigma)
    symbols = np.array(atoms.get_chemical_symbols())
    els = sorted(set(elements))
    counts = {el: int((symbols == el).sum()) for el in els}
    edges = np.arange(bin_size, cutoff + 1e-9, bin_size)
    r = edges  # bin centres
    blocks = []
    for a, b in itertools.combinations_with_replacement(els, 2):
        na, nb = counts[a], counts[b]
        if na == 0 or nb == 0:
            blocks.append(np.zeros_like(r))
            continue
        mask = (symbols[centers] == a) & (symbols[points] == b)
        d = dists[mask]
        # Gaussian-smeared pair density, in pairs per Å
        g = np.exp(-0.5 * ((r[None, :] - d[:, None]) / sigma) ** 2).sum(0) / (sigma * np.sqrt(2 * np.pi))
        ideal = 4.0 * np.pi * r**2 * na * nb / volume
        blocks.append(g / ideal - 1.0)
    return np.concatenate(blocks)


def fingerprint_distance(fp_a: np.ndarray, fp_b: np.ndarray) -> float:
    """Cosine distance ``1 - a·b / (|a||b|)`` between two fingerprints (0 ≤ d ≤ 1)."""
    na, nb = float(np.linalg.norm(fp_a)), float(np.linalg.norm(fp_b))
    if na == 0.0 or nb == 0.0:
        return 0.0 if na == nb else 1.0
    return float(max(0.0, 1.0 - float(np.dot(fp_a, fp_b)) / (na * nb)))


def is_duplicate(
    fp: np.ndarray,
    enthalpy: float,
    seen: Sequence[tuple[np.ndarray, float]],
    fp_tol: float = 0.02,
    enthalpy_tol: float = 0.005,
) -> int | None:
    """Index in ``seen`` of the first structure that duplicates (fingerprint distance
    below ``fp_tol`` and enthalpy within ``enthalpy_tol`` eV/atom), else None."""
    for i, (other_fp, other_h) in enumerate(seen):
        if abs(enthalpy - other_h) <= enthalpy_tol and fingerprint_distance(fp, other_fp) <= fp_tol:
            return i
    return None
