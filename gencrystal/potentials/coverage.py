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


def split_by_coverage(
    frames: Sequence[Atoms], potential: str, fallback: str, pressure_gpa: float
) -> tuple[list[Atoms], list[Atoms], list[str]]:
    """Split ``frames`` into those ``potential`` covers (every element among its
    labels' elements, ``pressure_gpa`` inside their range) and those relaxed with the named
    ``fallback`` instead; returns ``(covered, fallback_frames, messages)``, one message per
    reduced formula saying which potential relaxes it and, for a fallback, why."""
    from pymatgen.core import Composition

    cov = potential_coverage(potential)
    lo, hi = (cov or {}).get("pressure_gpa") or (-math.inf, math.inf)
    elements = set((cov or {}).get("elements") or [])
    covered: list[Atoms] = []
    rest: list[Atoms] = []
    messages: dict[str, str] = {}
    for a in frames:
        red = Composition(a.get_chemical_formula(mode="metal")).reduced_formula
        outside = sorted(set(a.get_chemical_symbols()) - elements) if cov and elements else []
        p_out = not (float(lo) <= float(pressure_gpa) <= float(hi))
        if outside or p_out:
            rest.append(a)
            why = (
                f"element {', '.join(outside)} is outside {potential}'s DFT labels ({', '.join(sorted(elements))})"
                if outside
                else f"{pressure_gpa:g} GPa is outside {potential}'s labels ({lo:g}-{hi:g} GPa)"
            )
            messages[red] = f"{red}: {why}; relaxed with the fallback potential {fallback} instead (no uncertainty)"
        else:
            covered.append(a)
            messages.setdefault(red, f"{red}: relaxed with {potential}")
    return covered, rest, [messages[k] for k in sorted(messages)]
