"""Stability proxy: energy above a reference convex hull built from one potential's energies.

The hull is a pymatgen :class:`~pymatgen.analysis.phase_diagram.PhaseDiagram` per
chemical system, built from reference entries (training structures relaxed with a
potential, plus elemental references computed with the same potential). Energies are
per atom in eV — at a pressure P they should be enthalpies per atom
``(E + P V)/N`` (``gencrystal.units.enthalpy``), so that the hull is the P-dependent
one. Every entry carries a ``level_of_theory`` label; mixing labels in one hull raises.

Energies may come from anywhere: a potential (:func:`relax_energies`, through
``gencrystal.relax``), or info keys / a CSV column of precomputed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from pymatgen.core import Composition

from gencrystal.errors import GencrystalError

if TYPE_CHECKING:  # pymatgen.analysis.phase_diagram imports plotly at module level: loaded when a hull is built
    from pymatgen.analysis.phase_diagram import PhaseDiagram

DEFAULT_STABILITY_THRESHOLD_EV = 0.1  # eV/atom, MatterGen's S.U.N. threshold


@dataclass(frozen=True)
class EnergyEntry:
    """A composition with its energy (or enthalpy) per atom in eV, and who computed it."""

    composition: Composition
    energy_per_atom: float
    level_of_theory: str
    id: str = ""


def check_single_theory(entries: Iterable[EnergyEntry], what: str = "hull") -> str:
    """The one ``level_of_theory`` of ``entries``; raises when they mix potentials."""
    labels = {e.level_of_theory for e in entries}
    if len(labels) > 1:
        raise GencrystalError(
            f"{what} mixes energies from different levels of theory: {sorted(labels)}; "
            "use one potential for reference and samples"
        )
    if not labels:
        raise GencrystalError(f"{what} has no energies")
    return labels.pop()


class ReferenceHull:
    """Energy above the hull of a fixed set of reference entries (one level of theory).

    Phase diagrams are built lazily per chemical system from the references whose
    elements lie inside it, so that 89-element data sets never need an 89-dimensional hull.
    """

    def __init__(self, references: Sequence[EnergyEntry]):
        from pymatgen.analysis.phase_diagram import PDEntry

        refs = [r for r in references if math.isfinite(r.energy_per_atom)]
        self.level_of_theory = check_single_theory(refs, "reference hull")
        self._entries = [PDEntry(r.composition, r.energy_per_atom * r.composition.num_atoms, name=r.id or None) for r in refs]
        self._elements_with_ref = {el.symbol for r in refs if len(r.composition.elements) == 1 for el in r.composition.elements}
        self._cache: dict[tuple[str, ...], PhaseDiagram] = {}

    def missing_elements(self, composition: Composition) -> list[str]:
        """Elements of ``composition`` with no elemental reference (the hull is undefined there)."""
        return sorted({el.symbol for el in composition.elements} - self._elements_with_ref)

    def _diagram(self, chemsys: tuple[str, ...]) -> PhaseDiagram:
        from pymatgen.analysis.phase_diagram import PhaseDiagram

        pd = self._cache.get(chemsys)
        if pd is None:
            allowed = set(chemsys)
            sub = [e for e in self._entries if {el.symbol for el in e.composition.elements} <= allowed]
            pd = PhaseDiagram(sub)
            self._cache[chemsys] = pd
        return pd

    def e_above_hull(self, entry: EnergyEntry) -> float:
        """Energy above the reference hull in eV/atom (negative: below it); NaN without elemental references."""
        if entry.level_of_theory != self.level_of_theory:
            raise GencrystalError(
                f"sample energy from {entry.level_of_theory!r} cannot be compared with a hull from {self.level_of_theory!r}"
            )
        if not math.isfinite(entry.energy_per_atom) or self.missing_elements(entry.composition):
            return float("nan")
        chemsys = tuple(sorted(el.symbol for el in entry.composition.elements))
        pd = self._diagram(chemsys)
        from pymatgen.analysis.phase_diagram import PDEntry

        e = PDEntry(entry.composition, entry.energy_per_atom * entry.composition.num_atoms)
        _, ehull = pd.get_decomp_and_e_above_hull(e, allow_negative=True)
        assert ehull is not None  # on_error="raise" (the default) raises rather than returning None
        return float(ehull)


def relax_energies(
    structures, pressure_gpa: float, potential: str = "chgnet", relax_kwargs: dict | None = None, use_enthalpy: bool = True
) -> tuple[list[float], str]:
    """Per-atom enthalpies (or energies) in eV of structures relaxed with a potential at ``pressure_gpa``.

    Uses :func:`gencrystal.relax.relax_structures` (``potential``: ``"chgnet"``,
    ``"sevenn"``, a checkpoint path, ...); failed or unconverged relaxations give NaN.
    Returns ``(values, level_of_theory)`` so that the hull can refuse mixed potentials.
    """
    try:
        from gencrystal.relax import relax_structures
    except ImportError as exc:
        raise GencrystalError(f"gencrystal.relax is not available ({exc}); pass energies via an info key instead") from exc
    from gencrystal.units import check_pressure

    p = check_pressure(pressure_gpa)
    results = relax_structures(list(structures), pressure_gpa=p, potential=potential, **(relax_kwargs or {}))
    out = []
    for r in results:
        if getattr(r, "error", None) or not getattr(r, "converged", True):
            out.append(float("nan"))
        else:
            out.append(float(r.enthalpy_per_atom if use_enthalpy else r.energy_per_atom))
    levels = {r.level_of_theory for r in results}
    return out, (levels.pop() if len(levels) == 1 else str(potential))
