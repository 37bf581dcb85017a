"""The one structure sanity check, with one documented set of defaults (Å, Å³/atom).

:class:`StructureChecks` answers "is this cell physically usable?" for every stage that
asks: sampled structures are *flagged* with it (``conf/sample.yaml: checks``), inputs
to a relaxation are *rejected* before the potential runs (``RelaxGuard.check_input``),
relaxed structures are *kept* in the database only when they pass
(``db.build.KeepCriteria``), random-search draws are *redrawn* until they pass
(``search.generate.RandomStructureGenerator``, with its own stricter draw window), and a
search keeps only passing relaxed structures.

Defaults (:data:`DEFAULTS`), valid for pressures up to a few hundred GPa:

- ``min_distance = 0.5`` Å: the shortest interatomic distance, periodic images of the
  same atom included (the H–H bond, the shortest in chemistry, is 0.74 Å and stays above
  0.6 Å to beyond 300 GPa);
- ``min_volume_per_atom = 1.0`` Å³ and ``max_volume_per_atom = 200`` Å³ (solid hydrogen
  near 500 GPa is ≈ 1.2 Å³/atom; above 200 a "crystal" is a gas);
- ``max_neighbors = 60`` atoms within ``neighbor_cutoff = 3`` Å of one atom: graph
  potentials build bond and angle lists within a few Å; a collapsed sample with 60+
  atoms inside 3 Å of one atom held CHGNet for 15 min and 4 GB (32 neighbours within 3 Å
  is already 3.5 Å³/atom, CHGNet's bcc Li at 100 GPa).

Not this check: the CDVAE/DiffCSP *validity metric*
(:func:`gencrystal.metrics.validity.structure_validity`: distinct sites ≥ 0.5 Å apart,
self-images excluded, cell ≥ 0.1 Å³) keeps the published scorers' protocol so that
numbers compare with theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError

#: Neighbour pairs the check may enumerate for a cell that already fails the volume check: a sample
#: collapsed to a sliver (volume per atom ~1e-4 Å³) has ~10⁸ periodic images within 3 Å, whose
#: neighbour list took 21 GB; such a cell is refused on its volume without listing them.
MAX_PAIRS_OF_A_COLLAPSED_CELL = 2_000_000
#: The densest packing of equal spheres (Kepler–Hales), π/√18: n atoms at least d apart need a
#: volume of at least n·(4/3)·π·(d/2)³ / PACKING_DENSITY.
PACKING_DENSITY = math.pi / math.sqrt(18.0)

#: Flags :meth:`StructureChecks.flags` can return, in this order.
FLAGS = ("non_finite", "degenerate_cell", "short_distance", "small_volume", "large_volume", "crowded")


def periodic_images(cell: np.ndarray, radius: float) -> int:
    """Cells of the periodic lattice within ``radius`` (Å) of one cell along every axis: the
    image count a neighbour list to that radius searches, ∏ (2⌈radius / d_i⌉ + 1) with d_i the
    spacing of the lattice planes spanned by the other two vectors."""
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T  # rows b_i with a_i · b_j = δ_ij
    spacing = 1.0 / np.linalg.norm(recip, axis=1)
    return int(np.prod([2 * math.ceil(radius / d) + 1 for d in spacing]))


@dataclass(frozen=True)
class StructureChecks:
    """Sanity limits of a crystal structure (see the module docstring for the defaults).

    Attributes:
        min_distance: Å; closer pairs (periodic images included) give ``short_distance``.
        min_volume_per_atom: Å³/atom; below: ``small_volume``.
        max_volume_per_atom: Å³/atom; above: ``large_volume``.
        max_neighbors: an atom with more neighbours than this within ``neighbor_cutoff``
            gives ``crowded`` (None: not counted).
        neighbor_cutoff: Å, the radius of the ``max_neighbors`` count.
    """

    min_distance: float = 0.5
    min_volume_per_atom: float = 1.0
    max_volume_per_atom: float = 200.0
    max_neighbors: int | None = 60
    neighbor_cutoff: float = 3.0

    def __post_init__(self) -> None:
        for name in ("min_distance", "min_volume_per_atom", "max_volume_per_atom", "neighbor_cutoff"):
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
        if self.max_neighbors is not None and int(self.max_neighbors) < 0:
            raise GencrystalError(f"checks.max_neighbors={self.max_neighbors!r} must be >= 0 or null")

    def _measure(self, atoms: Atoms) -> tuple[list[tuple[str, str]], float, float]:
        """``([(flag, one-line reason), ...], min distance Å, volume per atom Å³)``."""
        n = len(atoms)
        if n == 0:
            return [("degenerate_cell", "empty structure")], math.nan, math.nan
        cell = np.asarray(atoms.cell[:], dtype=float)
        if not (np.isfinite(cell).all() and np.isfinite(atoms.positions).all()):
            return [("non_finite", "non-finite cell or positions")], math.nan, math.nan
        volume = abs(float(np.linalg.det(cell)))
        vpa = volume / n
        if volume <= 1e-8:
            return [("degenerate_cell", "cell has zero volume"), ("small_volume", "cell has zero volume")], math.nan, vpa
        out: list[tuple[str, str]] = []
        outside = f"{vpa:.3g} Å³/atom outside [{self.min_volume_per_atom:g}, {self.max_volume_per_atom:g}]"
        # one neighbour list to the largest radius needed; periodic images (also of the atom itself) count
        radius = max(self.min_distance, self.neighbor_cutoff if self.max_neighbors is not None else 0.0)
        if vpa < self.min_volume_per_atom and n * n * periodic_images(cell, radius) > MAX_PAIRS_OF_A_COLLAPSED_CELL:
            # too many images to list: refused on its volume; the shortest distance is bounded by packing
            d_bound = 2.0 * (3.0 * PACKING_DENSITY * vpa / (4.0 * math.pi)) ** (1.0 / 3.0)
            if d_bound < self.min_distance:
                out.append(
                    (
                        "short_distance",
                        f"atoms at most {d_bound:.3g} Å apart at {vpa:.3g} Å³/atom (min distance {self.min_distance:g} Å)",
                    )
                )
            out.append(("small_volume", outside))
            return out, math.nan, vpa
        from ase.neighborlist import neighbor_list

        from gencrystal.structures import min_interatomic_distance

        probe = Atoms(atoms.numbers, positions=atoms.positions, cell=cell, pbc=True)
        i, d = neighbor_list("id", probe, radius, self_interaction=False) if radius > 0 else ([], np.zeros(0))
        dmin = float(d.min()) if len(d) else float(min_interatomic_distance(atoms))  # none within the radius
        if dmin < self.min_distance:
            out.append(("short_distance", f"atoms {dmin:.3g} Å apart (min distance {self.min_distance:g} Å)"))
        if vpa < self.min_volume_per_atom:
            out.append(("small_volume", outside))
        if vpa > self.max_volume_per_atom:
            out.append(("large_volume", outside))
        if self.max_neighbors is not None and len(d):
            within = np.asarray(i)[d <= self.neighbor_cutoff]
            most = int(np.bincount(within, minlength=n).max()) if len(within) else 0
            if most > self.max_neighbors:
                why = f"an atom has {most} neighbours within {self.neighbor_cutoff:g} Å (max_neighbors {self.max_neighbors})"
                out.append(("crowded", why))
        return out, dmin, vpa

    def flags(self, atoms: Atoms) -> list[str]:
        """The flags (:data:`FLAGS`) ``atoms`` raises; [] when it passes."""
        return [f for f, _ in self._measure(atoms)[0]]

    def reason(self, atoms: Atoms) -> str | None:
        """A one-line reason when ``atoms`` fails a check (the first failing one), else None."""
        found = self._measure(atoms)[0]
        return found[0][1] if found else None

    def ok(self, atoms: Atoms) -> bool:
        """True when ``atoms`` passes every check."""
        return not self._measure(atoms)[0]

    def evaluate(self, atoms: Atoms) -> dict:
        """``{"flags": [...], "min_distance": Å, "volume_per_atom": Å³}`` of ``atoms``.

        Distances are not measured for non-finite or degenerate cells (reported as NaN).
        """
        found, dmin, vpa = self._measure(atoms)
        return {"flags": [f for f, _ in found], "min_distance": dmin, "volume_per_atom": vpa}


#: The documented defaults.
DEFAULTS = StructureChecks()


def require_finite(cell, positions, source: str, index: int | str) -> None:
    """Raise when a structure's cell (Å) or positions (Cartesian Å or fractional) hold NaN or Inf.

    The reader's side of the ``non_finite`` flag: ``source`` names the file or database and
    ``index`` the frame or row in it (``"frame 3"``, ``"row id=7"``, ``"row 12 (mp-1234)"``).
    Every structure reader calls this before any work starts, so a non-finite structure
    never reaches a potential, a matcher or a model.
    """
    for what, arr in (("cell", cell), ("positions", positions)):
        a = np.asarray(arr, dtype=float)
        if not np.isfinite(a).all():
            bad = "NaN" if np.isnan(a).any() else "Inf"
            raise GencrystalError(f"{source!r} {index}: {what} contains {bad} (non-finite structures are refused)")


def require_finite_atoms(atoms: Atoms, source: str, index: int | str) -> None:
    """:func:`require_finite` for an ASE ``Atoms`` (cell and Cartesian positions, Å)."""
    require_finite(atoms.cell.array, atoms.positions, source, index)
