"""Structure-matcher settings used across the project (one place).

- ``csp``: the CDVAE/DiffCSP/FlowMM CSP protocol, stol 0.5, ltol 0.3, angle_tol 10°.
- ``novelty``: MatterGen's unique/novel matcher, ltol 0.2, stol 0.3, angle_tol 5°.
- ``loose``/``medium``/``strict``: Cond-CDVAE's three tolerances for "located a known phase".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymatgen.analysis.structure_matcher import StructureMatcher

MATCHER_SETTINGS: dict[str, dict[str, float]] = {
    "csp": {"stol": 0.5, "ltol": 0.3, "angle_tol": 10.0},
    "novelty": {"stol": 0.3, "ltol": 0.2, "angle_tol": 5.0},
    "loose": {"stol": 0.5, "ltol": 0.3, "angle_tol": 10.0},
    "medium": {"stol": 0.3, "ltol": 0.2, "angle_tol": 5.0},
    "strict": {"stol": 0.2, "ltol": 0.1, "angle_tol": 5.0},
}


def make_matcher(kind: str = "csp", **overrides) -> StructureMatcher:
    """A pymatgen StructureMatcher with the named tolerance set (other pymatgen defaults kept)."""
    if kind not in MATCHER_SETTINGS:
        raise KeyError(f"unknown matcher setting {kind!r}; choose from {sorted(MATCHER_SETTINGS)}")
    kw: dict[str, Any] = dict(MATCHER_SETTINGS[kind])
    kw.update(overrides)
    return StructureMatcher(**kw)


def reduced_like_matcher(sm: StructureMatcher, structure):
    """The cell ``sm.fit`` / ``sm.get_rms_dist`` compare: pymatgen's own Niggli reduction, then the
    primitive cell when the matcher asks for it (reuse with ``skip_structure_reduction``). Raises
    what pymatgen raises."""
    return sm._get_reduced_structure(structure, sm._primitive_cell, niggli=True)


def group_duplicates(structures: Sequence[Any], kind: str = "csp") -> list[int]:
    """The one duplicate grouper: a label per structure, equal labels = duplicates.

    Groups with pymatgen's ``StructureMatcher.group_structures`` at the ``kind``
    tolerances (:data:`MATCHER_SETTINGS`); structures of different reduced formulas never
    match. A label is the index of the first structure of its group, in input order (so
    with structures pre-sorted by enthalpy, the group's lowest-enthalpy member); None
    entries get -1. A formula whose structures pymatgen cannot compare (degenerate cells)
    leaves each of them in a group of its own.

    Args:
        structures: ASE ``Atoms``, pymatgen ``Structure`` or None.
        kind: a :data:`MATCHER_SETTINGS` name.
    """
    import warnings
    from collections import defaultdict

    from gencrystal.structures import to_structure

    labels = [-1] * len(structures)
    by_formula: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for i, obj in enumerate(structures):
        if obj is not None:
            s = to_structure(obj)
            by_formula[s.composition.reduced_formula].append((i, s))
    matcher = make_matcher(kind)
    for items in by_formula.values():
        index = {id(s): i for i, s in items}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                groups = [[index[id(s)] for s in g] for g in matcher.group_structures([s for _, s in items])]
        except Exception:
            groups = [[i] for i, _ in items]
        for g in groups:
            first = min(g)
            for i in g:
                labels[i] = first
    return labels
