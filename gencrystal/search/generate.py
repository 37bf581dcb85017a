"""Symmetric random structures (AIRSS / CALYPSO initialisation) with pyxtal.

A structure is drawn by picking a number of formula units Z, a space group whose
Wyckoff positions can hold the cell composition, and letting pyxtal place the atoms
with its distance tolerances at a volume of ``volume_factor`` × pyxtal's estimate.
Each draw is then checked for sanity (minimum interatomic distance in Å, volume per
atom in Å³) and redrawn if it fails. Atoms are ordered by atomic number, so every
structure of one composition has the same species order (needed by PSO moves).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from pymatgen.core import Composition

from gencrystal.checks import StructureChecks
from gencrystal.errors import GencrystalError
from gencrystal.structures import sort_by_species  # noqa: F401  (re-exported)


@functools.lru_cache(maxsize=256)
def compatible_space_groups(symbols: tuple[str, ...], counts: tuple[int, ...]) -> tuple[int, ...]:
    """Space groups (2–230, plus 1) whose Wyckoff positions can hold ``counts`` atoms of
    each species in the conventional cell pyxtal uses."""
    from pyxtal.symmetry import Group

    out = []
    for sg in range(1, 231):
        try:
            ok = Group(sg).check_compatible(list(counts))[0]
        except Exception:
            ok = False
        if ok:
            out.append(sg)
    if not out:
        raise GencrystalError(f"no space group can hold the composition {dict(zip(symbols, counts))}")
    return tuple(out)


def default_volume_factor(pressure_gpa: float) -> float:
    """Volume factor applied to pyxtal's ambient volume estimate: ``(1 + P/100 GPa)^(-1/3)``,
    a rough compression that lets relaxations at pressure start near the right density."""
    return float((1.0 + pressure_gpa / 100.0) ** (-1.0 / 3.0))


@dataclass
class RandomStructureGenerator:
    """Draws symmetric random structures of one formula.

    Args:
        formula: reduced formula or cell composition (``"SiO2"``); its reduced form is used.
        formula_units: the Z values to draw from, e.g. ``[2]`` or ``[1, 2, 3, 4]``.
        pressure_gpa: target pressure in GPa (sets the default volume factor).
        volume_factor: multiplies pyxtal's ambient volume estimate (None → pressure default).
        min_distance: smallest allowed interatomic distance of a draw, Å.
        volume_range: allowed volume per atom of a draw, Å³. These two are a *draw window*,
            stricter than the sanity defaults of :mod:`gencrystal.checks` on purpose (a
            random draw that close to the limits is a poor start); :attr:`checks` is the
            one structure check with these limits.
        space_groups: restrict the draw to these space groups (None → all compatible).
        max_attempts: redraws before giving up on one structure.
    """

    formula: str
    formula_units: tuple[int, ...] = (1,)
    pressure_gpa: float = 0.0
    volume_factor: float | None = None
    min_distance: float = 0.7
    volume_range: tuple[float, float] = (2.0, 100.0)
    space_groups: tuple[int, ...] | None = None
    max_attempts: int = 50

    def __post_init__(self) -> None:
        from gencrystal.composition import parse_composition

        self.reduced: Composition = parse_composition(self.formula).reduced_composition
        self.formula_units = tuple(int(z) for z in self.formula_units)
        if self.volume_factor is None:
            self.volume_factor = default_volume_factor(self.pressure_gpa)
        self.volume_range = (float(self.volume_range[0]), float(self.volume_range[1]))
        self.checks = StructureChecks(
            min_distance=float(self.min_distance),
            min_volume_per_atom=self.volume_range[0],
            max_volume_per_atom=self.volume_range[1],
        )

    def cell_composition(self, z: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Element symbols (sorted by Z) and counts for ``z`` formula units."""
        items = sorted(self.reduced.items(), key=lambda kv: kv[0].Z)
        return tuple(el.symbol for el, _ in items), tuple(int(round(n * z)) for _, n in items)

    def draw(self, rng: np.random.Generator) -> tuple[Atoms, dict]:
        """One sane random structure and its provenance (``space_group``, ``formula_units``).

        Raises :class:`GencrystalError` if no sane structure is found in ``max_attempts``.
        """
        from pyxtal import pyxtal

        last = "no attempt"
        for _ in range(self.max_attempts):
            z = int(rng.choice(self.formula_units))
            symbols, counts = self.cell_composition(z)
            groups = compatible_space_groups(symbols, counts)
            if self.space_groups:
                groups = tuple(g for g in groups if g in set(self.space_groups)) or groups
            sg = int(rng.choice(groups))
            crystal = pyxtal()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    crystal.from_random(
                        3,
                        sg,
                        list(symbols),
                        list(counts),
                        factor=float(
                            default_volume_factor(self.pressure_gpa) if self.volume_factor is None else self.volume_factor
                        ),
                        random_state=int(rng.integers(2**31 - 1)),
                    )
                if not crystal.valid:
                    last = f"pyxtal could not place atoms in space group {sg}"
                    continue
                atoms = sort_by_species(crystal.to_ase())
            except Exception as exc:  # pyxtal raises various errors for impossible draws
                last = f"pyxtal failed for space group {sg}: {type(exc).__name__}"
                continue
            atoms.pbc = True
            if not self.checks.ok(atoms):
                last = f"structure in space group {sg} failed the distance/volume check"
                continue
            return atoms, {"space_group": sg, "formula_units": z}
        raise GencrystalError(f"no sane random {self.reduced.reduced_formula} structure in {self.max_attempts} attempts ({last})")
