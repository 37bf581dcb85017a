"""Polymorph-aware CSP metrics: METRe and cRMSE (Martirossyan et al., arXiv 2509.12178).

The standard CSP match rate (:mod:`gencrystal.metrics.csp`) compares prediction *i* only
with reference *i* and averages the RMSE over matches only. When a test set holds several
polymorphs of one composition, a model that generates polymorph B for the reference that
happens to be polymorph A scores a miss although it found a real phase of that
composition; and a model that matches few references with small RMSE looks better than
one that matches many. These two numbers measure it the other way:

- **METRe** (match everyone to reference): every prediction is compared with every
  reference of the same composition — same *reduced* composition, so a prediction in a
  doubled cell (Fe4O6 for Fe2O3) is compared too. A reference counts as matched when any
  prediction matches it (``StructureMatcher.get_rms_dist`` returns a value); METRe =
  matched references / all references.
- **cRMSE** (capped RMSE): the mean over *all* references of the reference's RMSE when
  matched (the smallest over the predictions that match it) and of the matcher's ``stol``
  (0.5 for the CSP matcher) when not, so a miss costs the largest RMSE a match could have.
  :func:`capped_rmse` applies the same rule to the standard one-to-one pairing.

RMSE values are pymatgen's: the RMS displacement normalised by (V/n)^(1/3), dimensionless.
Predictions without a structure (unreadable samples) are never matched. No validity filter
is applied (the published METRe numbers have none); ``valid_only=True`` restricts the
predictions to SMACT/distance-valid ones.

Each structure is reduced once for all its comparisons and pairs whose reduced cells differ in
site count are not handed to the matcher (``rms_distances(..., reduce_once=True)``; same values
as ``get_rms_dist``): 400 carbon-24 samples against 400 references is 160,000 pairs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from gencrystal.errors import GencrystalError
from gencrystal.matching import MATCHER_SETTINGS
from gencrystal.metrics.io import Entry
from gencrystal.metrics.matching import ERROR, MATCH, TIMEOUT, rms_distances

#: Largest number of (prediction, reference) pairs scored by default: a dataset of one
#: composition (carbon-24) makes METRe an all-against-all comparison.
DEFAULT_MAX_PAIRS = 2_000_000


def composition_key(structure) -> str:
    """The reduced formula of a pymatgen Structure (``Fe4O6`` and ``Fe2O3`` give ``Fe2O3``)."""
    return structure.composition.reduced_formula


@dataclass
class MetreRow:
    """Per-reference outcome of METRe."""

    ref_id: str
    formula: str
    n_atoms: int
    n_same_composition_preds: int  # predictions of this reference's reduced composition
    matched: bool
    rmse: float | None  # smallest RMSE over matching predictions
    capped_rmse: float  # rmse when matched, else the matcher's stol
    best_pred_id: str | None
    n_timeouts: int = 0
    n_errors: int = 0


def capped_rmse(rmses: Sequence[float | None], stol: float) -> float:
    """Mean of ``rmses`` with every ``None`` (a miss) counted as ``stol``; NaN for an empty list."""
    if not rmses:
        return float("nan")
    return float(sum(stol if r is None else float(r) for r in rmses) / len(rmses))


def metre_metrics(
    refs: Sequence[Entry],
    preds: Sequence[Entry],
    matcher: str = "csp",
    workers: int = 1,
    timeout_s: float = 30.0,
    progress: bool = True,
    valid_only: bool = False,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    validity_kwargs: dict | None = None,
) -> tuple[dict[str, Any], list[MetreRow]]:
    """METRe and cRMSE of ``preds`` against ``refs`` (module doc); returns ``(metrics, rows)``.

    ``metrics`` holds ``metre`` (matched references / all references), ``crmse``,
    ``rmse_matched`` (mean over matched references only), ``n_ref``, ``n_pred``,
    ``n_pairs`` (comparisons made), ``n_compositions`` and the protocol. Raises
    :class:`GencrystalError` when the comparison would exceed ``max_pairs`` pairs.
    """
    if matcher not in MATCHER_SETTINGS:
        raise GencrystalError(f"unknown matcher {matcher!r}; choose from {', '.join(MATCHER_SETTINGS)}")
    stol = float(MATCHER_SETTINGS[matcher]["stol"])
    use = list(range(len(preds)))
    if valid_only:
        from gencrystal.metrics.validity import crystal_validity

        vkw: dict[str, Any] = dict(validity_kwargs or {})
        use = [j for j in use if (s := preds[j].structure) is not None and crystal_validity(s, **vkw).valid]
    by_comp: dict[str, list[int]] = defaultdict(list)
    for j in use:
        if preds[j].structure is not None:
            by_comp[composition_key(preds[j].structure)].append(j)
    ref_keys = [composition_key(r.structure) if r.structure is not None else None for r in refs]
    flat = [(i, j) for i, k in enumerate(ref_keys) if k is not None for j in by_comp.get(k, ())]
    if max_pairs is not None and len(flat) > max_pairs:
        raise GencrystalError(
            f"METRe needs {len(flat):,} structure comparisons, more than metre.max_pairs={max_pairs:,} "
            "(a dataset with few compositions); raise metre.max_pairs or score a subset (limit=...)"
        )
    res = rms_distances(
        [(preds[j].structure, refs[i].structure) for i, j in flat],
        matcher=matcher,
        workers=workers,
        timeout_s=timeout_s,
        progress=progress,
        desc="METRe StructureMatcher",
        reduce_once=True,
    )
    per_ref: dict[int, list[tuple[int, tuple]]] = defaultdict(list)
    for (i, j), r in zip(flat, res):
        per_ref[i].append((j, r))
    rows: list[MetreRow] = []
    for i, ref in enumerate(refs):
        best, best_id = None, None
        for j, (rms, _, status) in per_ref.get(i, ()):
            if status == MATCH and (best is None or rms < best):
                best, best_id = rms, preds[j].id
        pairs = per_ref.get(i, [])
        rows.append(
            MetreRow(
                ref_id=ref.id,
                formula=ref_keys[i] or "",
                n_atoms=ref.n_atoms,
                n_same_composition_preds=len(pairs),
                matched=best is not None,
                rmse=best,
                capped_rmse=stol if best is None else float(best),
                best_pred_id=best_id,
                n_timeouts=sum(r[2] == TIMEOUT for _, r in pairs),
                n_errors=sum(r[2] == ERROR for _, r in pairs),
            )
        )
    n_ref = len(refs)
    matched = [r.rmse for r in rows if r.matched and r.rmse is not None]  # a matched row has its RMSE
    metrics: dict[str, Any] = {
        "metre": (len(matched) / n_ref) if n_ref else float("nan"),
        "crmse": capped_rmse([r.rmse for r in rows], stol),
        "rmse_matched": (sum(matched) / len(matched)) if matched else None,
        "n_matched": len(matched),
        "n_ref": n_ref,
        "n_pred": len(preds),
        "n_pred_used": sum(len(v) for v in by_comp.values()),
        "n_pairs": len(flat),
        "n_compositions": len({k for k in ref_keys if k is not None}),
        "n_ref_without_same_composition_pred": sum(1 for r in rows if r.n_same_composition_preds == 0),
        "n_timeouts": sum(r.n_timeouts for r in rows),
        "n_errors": sum(r.n_errors for r in rows),
        "protocol": {
            "name": "METRe",
            "matcher": {"kind": matcher, **MATCHER_SETTINGS[matcher]},
            "pairs": "every prediction against every reference of the same reduced composition",
            "metre": "references matched by any prediction / all references",
            "crmse": f"mean over all references of the smallest matching RMSE, or stol={stol:g} when unmatched",
            "prediction_filter": "SMACT/distance-valid predictions only" if valid_only else "none",
            "timeout_s_per_pair": timeout_s,
        },
    }
    return metrics, rows


def metre_rows_as_dicts(rows: Sequence[MetreRow]) -> list[dict[str, Any]]:
    """METRe rows as plain dicts (for CSV)."""
    return [asdict(r) for r in rows]
