"""Structure-matcher settings used across the project (one place).

- ``csp``: the CDVAE/DiffCSP/FlowMM CSP protocol, stol 0.5, ltol 0.3, angle_tol 10°.
- ``novelty``: MatterGen's unique/novel matcher, ltol 0.2, stol 0.3, angle_tol 5°.
- ``loose``/``medium``/``strict``: Cond-CDVAE's three tolerances for "located a known phase".
"""

from __future__ import annotations

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
    kw = dict(MATCHER_SETTINGS[kind])
    kw.update(overrides)
    return StructureMatcher(**kw)
