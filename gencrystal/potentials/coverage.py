"""Which structures a potential's labels cover (elements, pressure range in GPa), and the split of
a structure set into those it covers and those a named fallback potential relaxes instead.

Used by the demo and by ``gencrystal db build fallback_potential=...``: a committee trained on
Li and Si labels relaxes the Li and Si structures, a universal potential the rest, and every row
keeps the level of theory of the potential that relaxed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ase import Atoms

from gencrystal.errors import GencrystalError


def potential_coverage(potential: str) -> dict | None:
    """The ``coverage`` (``{"elements": [...], "pressure_gpa": [lo, hi]}``) a potential name or
    committee folder declares in its ``committee.json``; None for a universal potential
    (``chgnet``, ``sevenn``: every element). Reads the JSON only; no model is loaded."""
    import json

    from gencrystal.potentials.names import SHIPPED_COMMITTEES
    from gencrystal.potentials.shared_trunk import COMMITTEE_FILE, resolve_committee_dir

    folder = resolve_committee_dir(SHIPPED_COMMITTEES.get(str(potential).lower(), potential))
    meta = folder / COMMITTEE_FILE
    if not meta.is_file():
        if str(potential).lower() in SHIPPED_COMMITTEES:
            raise GencrystalError(
                f"potential={potential}: {str(meta)!r} is missing (build it: python scripts/train_hp_committee.py)"
            )
        return None
    return json.loads(meta.read_text()).get("coverage")


def coverage_gaps(
    symbols: Sequence[str], pressure_gpa: float, coverage: dict | None, owner: str = "its"
) -> list[tuple[str, str]]:
    """``(kind, message)`` per way (kind ``element``, ``system`` or ``pressure``) a structure of these chemical ``symbols`` at ``pressure_gpa`` (GPa) leaves a potential's
    ``coverage`` (empty: covered). A committee whose labels name their systems
    (``dft_pressure_gpa_by_system``: element set → DFT pressure span) covers a structure only
    when its element set is one labelled system (Li and Si labels do not make a Li–Si compound
    covered), at a pressure inside that system's span (floored at 0 GPa, rounded outward to 1 GPa);
    otherwise the elements and the common ``pressure_gpa`` range decide. ``owner`` names whose
    labels the messages speak of ("its", "hp_committee's")."""
    if not coverage:
        return []
    gaps = []
    known = set(coverage.get("elements") or [])
    have = set(symbols)
    outside = sorted(have - known) if known else []
    if outside:
        gaps.append(("element", f"element {', '.join(outside)} is outside {owner} DFT labels ({', '.join(sorted(known))})"))
    systems = coverage.get("dft_pressure_gpa_by_system") or {}
    system = "-".join(sorted(have))
    lo_hi = coverage.get("pressure_gpa")
    if systems and not outside:
        if system not in systems:
            gaps.append(
                ("system", f"element combination {system} is not one of {owner} labelled systems ({'; '.join(sorted(systems))})")
            )
            return gaps
        span = systems[system]
        lo_hi = [math.floor(max(float(span[0]), 0.0)), math.ceil(float(span[1]))]
    if lo_hi and not float(lo_hi[0]) - 1e-9 <= float(pressure_gpa) <= float(lo_hi[1]) + 1e-9:
        where = f" for {system}" if systems and not outside else ""
        gaps.append(
            (
                "pressure",
                f"pressure {float(pressure_gpa):g} GPa is outside {owner} DFT labels{where} "
                f"({float(lo_hi[0]):g}-{float(lo_hi[1]):g} GPa)",
            )
        )
    return gaps


def split_by_coverage(
    frames: Sequence[Atoms], potential: str, fallback: str, pressure_gpa: float
) -> tuple[list[Atoms], list[Atoms], list[str]]:
    """Split ``frames`` into those ``potential`` covers (no gap of :func:`coverage_gaps`) and
    those relaxed with the named
    ``fallback`` instead; returns ``(covered, fallback_frames, messages)``, one message per
    reduced formula saying which potential relaxes it and, for a fallback, why."""
    from pymatgen.core import Composition

    cov = potential_coverage(potential)
    covered: list[Atoms] = []
    rest: list[Atoms] = []
    messages: dict[str, str] = {}
    for a in frames:
        red = Composition(a.get_chemical_formula(mode="metal")).reduced_formula
        gaps = coverage_gaps(a.get_chemical_symbols(), pressure_gpa, cov, owner=f"{potential}'s")
        if gaps:
            rest.append(a)
            why = gaps[0][1]
            messages[red] = f"{red}: {why}; relaxed with the fallback potential {fallback} instead (no uncertainty)"
        else:
            covered.append(a)
            messages.setdefault(red, f"{red}: relaxed with {potential}")
    return covered, rest, [messages[k] for k in sorted(messages)]
