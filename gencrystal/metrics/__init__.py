"""Metrics: CSP match rate / RMSE and generation (DNG) metrics, as the literature computes them.

Public API::

    from gencrystal.metrics import (
        smact_validity, structure_validity, crystal_validity,   # validity
        read_entries, pair_predictions,                          # inputs
        rms_distances, csp_metrics,                               # CSP
        coverage, fingerprints, wasserstein_metrics,              # DNG
        duplicate_groups, novelty_flags, ReferenceHull, EnergyEntry,
    )

Command line: ``gencrystal evaluate csp|dng`` (:mod:`gencrystal.cli.metrics`);
definitions and caveats in ``docs/metrics.md``.
"""

from gencrystal.metrics.csp import csp_metrics
from gencrystal.metrics.dng import coverage, duplicate_groups, fingerprints, novelty_flags, wasserstein_metrics
from gencrystal.metrics.hull import EnergyEntry, ReferenceHull
from gencrystal.metrics.io import Entry, pair_predictions, read_entries
from gencrystal.metrics.matching import rms_distances
from gencrystal.metrics.validity import crystal_validity, smact_validity, structure_validity

__all__ = [
    "Entry", "EnergyEntry", "ReferenceHull", "coverage", "crystal_validity", "csp_metrics", "duplicate_groups",
    "fingerprints", "novelty_flags", "pair_predictions", "read_entries", "rms_distances", "smact_validity",
    "structure_validity", "wasserstein_metrics",
]
