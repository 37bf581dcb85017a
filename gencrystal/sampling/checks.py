"""Sanity checks on sampled cells: flag, never drop.

A generative model can return atoms on top of each other or a cell that is absurdly
small or large. Such samples are kept (the user may still relax them) but marked in
their frame info and in ``summary.json``, so that nothing is silently discarded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.structures import min_interatomic_distance


@dataclass(frozen=True)
class SampleChecks:
    """Thresholds for flagging a sampled structure (Hydra target of ``sample.checks``).

    Attributes:
        min_distance: smallest allowed interatomic distance in Å (periodic images
            included); closer pairs give the flag ``short_distance``.
        min_volume_per_atom: smallest plausible volume per atom in Å³ (flag
            ``small_volume``).
        max_volume_per_atom: largest plausible volume per atom in Å³ (flag
            ``large_volume``).
    """

    min_distance: float = 0.5
    min_volume_per_atom: float = 1.0
    max_volume_per_atom: float = 200.0

    def __post_init__(self) -> None:
        for name in ("min_distance", "min_volume_per_atom", "max_volume_per_atom"):
            v = getattr(self, name)
            try:
                ok = math.isfinite(float(v)) and float(v) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise GencrystalError(f"checks.{name}={v!r} must be a finite number >= 0")
        if self.min_volume_per_atom >= self.max_volume_per_atom:
            raise GencrystalError(
                f"checks.min_volume_per_atom={self.min_volume_per_atom:g} Å³ must be below "
                f"checks.max_volume_per_atom={self.max_volume_per_atom:g} Å³"
            )

    def evaluate(self, atoms: Atoms) -> dict:
        """Measure ``atoms`` and return ``{"flags": [...], "min_distance": Å, "volume_per_atom": Å³}``.

        Flags: ``non_finite`` (NaN/inf in cell or positions), ``degenerate_cell``
        (zero volume), ``short_distance``, ``small_volume``, ``large_volume``. Distances
        are not measured for non-finite or degenerate cells (reported as NaN).
        """
        flags: list[str] = []
        cell = np.asarray(atoms.cell[:], dtype=float)
        pos = atoms.get_positions()
        if not (np.isfinite(cell).all() and np.isfinite(pos).all()):
            return {"flags": ["non_finite"], "min_distance": float("nan"), "volume_per_atom": float("nan")}
        volume = abs(float(np.linalg.det(cell)))
        vpa = volume / max(len(atoms), 1)
        if volume <= 1e-8:
            return {"flags": ["degenerate_cell", "small_volume"], "min_distance": float("nan"), "volume_per_atom": vpa}
        if vpa < self.min_volume_per_atom:
            flags.append("small_volume")
        if vpa > self.max_volume_per_atom:
            flags.append("large_volume")
        dmin = float(min_interatomic_distance(atoms))
        if dmin < self.min_distance:
            flags.insert(0, "short_distance")
        return {"flags": flags, "min_distance": dmin, "volume_per_atom": vpa}
