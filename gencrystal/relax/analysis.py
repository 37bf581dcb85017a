"""Post-relaxation analysis: displacement RMSD, space group, rank correlation (duplicates: :func:`gencrystal.matching.group_duplicates`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from ase import Atoms

from gencrystal.structures import to_structure


def rmsd_same_order(initial: Atoms, final: Atoms) -> float:
    """RMS displacement (Å) between two structures with the same atoms in the same order.

    Fractional displacements are wrapped to [-0.5, 0.5), their mean (a rigid translation)
    is removed, and they are measured in the final cell. Cell shape changes are not
    counted (compare volumes for those). NaN when the atom lists differ.
    """
    if len(initial) != len(final) or (initial.numbers != final.numbers).any():
        return math.nan
    f0 = initial.cell.scaled_positions(initial.positions)
    f1 = final.cell.scaled_positions(final.positions)
    d = f1 - f0
    d -= np.round(d)
    d -= d.mean(axis=0)
    d -= np.round(d)
    cart = d @ np.asarray(final.cell)
    return float(np.sqrt((cart**2).sum(axis=1).mean()))


def space_group(atoms: Atoms, symprec: float = 0.1) -> str:
    """International space-group symbol with its number (e.g. ``P4_2/mnm (136)``); '' on failure."""
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(to_structure(atoms), symprec=symprec)
        return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
    except Exception:
        return ""


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two sequences (NaN when fewer than 2 finite pairs)."""
    from scipy.stats import spearmanr

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < 2:
        return math.nan
    r = spearmanr(x[m], y[m]).statistic
    return float(r) if np.isfinite(r) else math.nan
