"""CSP metrics: match rate and RMSE as CDVAE, DiffCSP and FlowMM compute them.

Protocol (``../shared/ANCHORS.md`` §2.1):

- matcher ``StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10)`` with pymatgen's other
  defaults (:func:`gencrystal.matching.make_matcher` ``"csp"``);
- a pair matches when ``get_rms_dist(pred, ref)`` returns a value; its RMSE is the first
  element, the RMS displacement normalised by ``(V/n)^(1/3)`` (dimensionless);
- **match rate** = matched references / *all* references; **RMSE** = mean over matched
  references only;
- **1-sample**: one prediction per reference; **k-sample**: a reference is matched when
  any of its candidates matches, and its RMSE is the minimum over matching candidates.

Validity filter. The originals score a pair only if it passes the SMACT/distance
validity test (:mod:`gencrystal.metrics.validity`), but inconsistently: the 1-sample
code requires *prediction and reference* to be valid, the k-sample code only the
*prediction* (DiffCSP ``RecEval``/``RecEvalBatch``, copied by FlowMM; CDVAE's own
``RecEval`` checks only the prediction). ``validity_mode="paper"`` reproduces the
DiffCSP/FlowMM rule, whose tables hold the published numbers; ``"pred"`` checks only
the prediction in both protocols (CDVAE's code); ``"both"`` requires prediction and
reference in both. Every result is also reported without the filter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from gencrystal.errors import GencrystalError
from gencrystal.matching import MATCHER_SETTINGS
from gencrystal.metrics.io import Entry
from gencrystal.metrics.matching import ERROR, MATCH, TIMEOUT, rms_distances
from gencrystal.metrics.validity import MIN_DISTANCE_A, MIN_VOLUME_A3, Validity, crystal_validity

VALIDITY_MODES = ("paper", "pred", "both")


@dataclass
class RefResult:
    """Per-reference outcome (one row of the per-structure CSV)."""

    ref_id: str
    formula: str
    n_atoms: int
    ref_struct_valid: bool
    ref_comp_valid: bool
    n_candidates: int
    n_valid_candidates: int
    matched: bool  # without the validity filter
    rmse: float | None  # min over matching candidates, without the filter
    best_pred_id: str | None
    matched_filtered: bool  # with the validity filter of the chosen mode
    rmse_filtered: float | None
    first_matched: bool  # the first candidate only (1-sample on the first round)
    first_rmse: float | None
    first_matched_filtered: bool
    first_rmse_filtered: float | None
    n_timeouts: int = 0
    n_errors: int = 0


def _summary(matched: Sequence[bool], rmses: Sequence[float | None], n_ref: int, stol: float = 0.5) -> dict[str, Any]:
    """Match rate, RMSE over matches, and cRMSE (a miss counts as ``stol``; :mod:`gencrystal.metrics.metre`)."""
    from gencrystal.metrics.metre import capped_rmse

    vals = [r for m, r in zip(matched, rmses) if m and r is not None]
    return {
        "match_rate": (sum(bool(m) for m in matched) / n_ref) if n_ref else float("nan"),
        "rmse": float(np.mean(vals)) if vals else None,
        "crmse": capped_rmse([r if m else None for m, r in zip(matched, rmses)], stol),
        "n_matched": int(sum(bool(m) for m in matched)),
    }


def csp_metrics(
    refs: Sequence[Entry],
    preds: Sequence[Entry],
    candidates: Sequence[Sequence[int]],
    validity_mode: str = "paper",
    matcher: str = "csp",
    workers: int = 1,
    timeout_s: float = 30.0,
    min_distance: float = MIN_DISTANCE_A,
    min_volume: float = MIN_VOLUME_A3,
    oxidation_states_set: str = "smact14",
    progress: bool = True,
) -> tuple[dict[str, Any], list[RefResult]]:
    """Score predictions against references; returns ``(metrics, per-reference rows)``.

    ``candidates[i]`` lists the indices in ``preds`` paired with ``refs[i]`` (see
    :func:`gencrystal.metrics.io.pair_predictions`); an empty list counts as not matched.
    The ``metrics`` dict holds ``match_rate``/``rmse`` with the validity filter (the
    number comparable to the papers), the same ``without_validity_filter``, and for k > 1
    the 1-sample numbers of the first candidate.
    """
    if validity_mode not in VALIDITY_MODES:
        raise GencrystalError(f"unknown validity_mode {validity_mode!r}; choose from {VALIDITY_MODES}")
    if len(candidates) != len(refs):
        raise GencrystalError(f"{len(candidates)} candidate lists for {len(refs)} references")
    n_ref = len(refs)
    vkw: dict[str, Any] = dict(min_distance=min_distance, min_volume=min_volume, oxidation_states_set=oxidation_states_set)

    def validity(e: Entry) -> Validity:
        return crystal_validity(e.structure, **vkw) if e.structure is not None else Validity(False, False)

    ref_val = [validity(r) for r in refs]
    used = sorted({j for c in candidates for j in c})
    pred_val = {j: validity(preds[j]) for j in used}

    flat = [(i, j) for i, c in enumerate(candidates) for j in c]
    res = rms_distances(
        [(preds[j].structure, refs[i].structure) for i, j in flat],
        matcher=matcher,
        workers=workers,
        timeout_s=timeout_s,
        progress=progress,
        desc="StructureMatcher",
    )
    by_pair = {(i, j): r for (i, j), r in zip(flat, res)}

    rows: list[RefResult] = []
    for i, ref in enumerate(refs):
        cand = list(candidates[i])
        rv = ref_val[i]

        def counts(j: int, first: bool, cand: list = cand, rv=rv) -> bool:
            pv = pred_val[j]
            if validity_mode == "pred":
                return pv.valid
            if validity_mode == "both" or first or len(cand) == 1:
                return pv.valid and rv.valid
            return pv.valid  # paper, k-sample: DiffCSP's RecEvalBatch checks only the prediction

        best = best_f = None
        best_id = None
        for j in cand:
            rms, _, status = by_pair[(i, j)]
            if status != MATCH or rms is None:  # a match has its RMS
                continue
            if best is None or rms < best:
                best, best_id = rms, preds[j].id
            if counts(j, first=False) and (best_f is None or rms < best_f):
                best_f = rms
        first_rms = first_f = None
        if cand:
            j0 = cand[0]
            rms0, _, st0 = by_pair[(i, j0)]
            if st0 == MATCH:
                first_rms = rms0
                if counts(j0, first=True):
                    first_f = rms0
        s = ref.structure
        rows.append(
            RefResult(
                ref_id=ref.id,
                formula=s.composition.reduced_formula if s is not None else "",
                n_atoms=ref.n_atoms,
                ref_struct_valid=rv.struct_valid,
                ref_comp_valid=rv.comp_valid,
                n_candidates=len(cand),
                n_valid_candidates=sum(pred_val[j].valid for j in cand),
                matched=best is not None,
                rmse=best,
                best_pred_id=best_id,
                matched_filtered=best_f is not None,
                rmse_filtered=best_f,
                first_matched=first_rms is not None,
                first_rmse=first_rms,
                first_matched_filtered=first_f is not None,
                first_rmse_filtered=first_f,
                n_timeouts=sum(by_pair[(i, j)][2] == TIMEOUT for j in cand),
                n_errors=sum(by_pair[(i, j)][2] == ERROR for j in cand),
            )
        )

    k = max((len(c) for c in candidates), default=0)
    stol = float(MATCHER_SETTINGS[matcher]["stol"])
    with_f = _summary([r.matched_filtered for r in rows], [r.rmse_filtered for r in rows], n_ref, stol)
    without_f = _summary([r.matched for r in rows], [r.rmse for r in rows], n_ref, stol)
    metrics: dict[str, Any] = {
        "match_rate": with_f["match_rate"],
        "rmse": with_f["rmse"],
        "crmse": with_f["crmse"],
        "n_ref": n_ref,
        "n_pred": len(preds),
        "n_pred_scored": len(used),
        "n_ref_with_pred": sum(1 for c in candidates if c),
        "n_ref_valid": sum(v.valid for v in ref_val),
        "n_pred_valid": sum(v.valid for v in pred_val.values()),
        "n_pairs": len(flat),
        "n_timeouts": sum(r.n_timeouts for r in rows),
        "n_errors": sum(r.n_errors for r in rows),
        "protocol": {
            "name": "1-sample" if k <= 1 else f"{k}-sample",
            "k": k,
            "matcher": {
                "kind": matcher,
                **MATCHER_SETTINGS[matcher],
                "primitive_cell": True,
                "scale": True,
                "attempt_supercell": False,
                "allow_subset": False,
            },
            "rmse": "get_rms_dist(pred, ref)[0], normalised by (V/n)^(1/3); mean over matched references",
            "match_rate": "matched references / all references",
            "crmse": f"mean over all references of the RMSE, or stol={stol:g} when unmatched",
            "validity_mode": validity_mode,
            "validity_rule": ("1-sample: prediction and reference valid; k-sample: prediction valid (as the DiffCSP/FlowMM code)")
            if validity_mode == "paper"
            else (
                "prediction valid (as CDVAE's RecEval)"
                if validity_mode == "pred"
                else "prediction and reference valid in both protocols"
            ),
            "validity": {
                "min_distance_A": min_distance,
                "min_volume_A3": min_volume,
                "smact_oxidation_states": oxidation_states_set,
                "max_ox_combinations": 1e7,
            },
            "timeout_s_per_pair": timeout_s,
        },
        "with_validity_filter": with_f,
        "without_validity_filter": without_f,
    }
    if k > 1:
        metrics["first_candidate_1_sample"] = {
            "with_validity_filter": _summary(
                [r.first_matched_filtered for r in rows], [r.first_rmse_filtered for r in rows], n_ref, stol
            ),
            "without_validity_filter": _summary([r.first_matched for r in rows], [r.first_rmse for r in rows], n_ref, stol),
        }
    return metrics, rows


def rows_as_dicts(rows: Sequence[RefResult]) -> list[dict[str, Any]]:
    """Per-reference rows as plain dicts (for CSV/JSON)."""
    return [asdict(r) for r in rows]


def match_rate_by_atoms(rows: Sequence[RefResult], filtered: bool = True) -> dict[int, tuple[int, int]]:
    """``{n_atoms: (n_matched, n_ref)}`` over the per-reference rows."""
    out: dict[int, list[int]] = {}
    for r in rows:
        m = r.matched_filtered if filtered else r.matched
        cell = out.setdefault(int(r.n_atoms), [0, 0])
        cell[0] += int(m)
        cell[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}
