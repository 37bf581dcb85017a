"""De-novo generation (DNG) metrics: validity, coverage, Wasserstein distances,
uniqueness, novelty and an S.U.N.-style rate (``../shared/ANCHORS.md`` §2.2–2.3).

- validity: :mod:`gencrystal.metrics.validity`, averaged over *all* samples;
- COV-R / COV-P: CrystalNN site fingerprints (matminer ``CrystalNNFingerprint``
  preset ``ops``) averaged over sites, and Magpie composition features (matminer
  ``ElementProperty`` preset ``magpie``), standardised; Euclidean distances.
  As in the CDVAE code, recall takes the nearest sample in structure space and in
  composition space *separately* (``joint=False``); ``joint=True`` requires one sample
  within both cutoffs. COV-P divides by all samples, invalid ones included.
  The originals standardise Magpie features with fixed statistics of their training
  set; here they are standardised with the statistics of the reference set
  (NaN -> 0), which is stated in the output;
- Wasserstein distances (scipy) of density (g/cm³) and number of distinct elements
  between ``n_wdist`` (1000) randomly chosen valid samples and all references;
- uniqueness and novelty with the ``novelty`` matcher (ltol 0.2, stol 0.3, 5°);
  only structures with the same reduced formula are compared;
- S.U.N.: a sample counts when it is valid, stable (energy above the reference hull
  <= threshold, 0.1 eV/atom), the first of its group of duplicates, and novel;
  the rate is over all samples.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
from pymatgen.core import Structure

from gencrystal.matching import make_matcher, reduced_like_matcher

COV_CUTOFFS: dict[str, dict[str, float]] = {
    "mp20": {"struct": 0.4, "comp": 10.0},
    "carbon24": {"struct": 0.2, "comp": 4.0},
    "perov5": {"struct": 0.2, "comp": 4.0},
}

_CNN = None
_MAGPIE = None


def _featurizers():
    global _CNN, _MAGPIE
    if _CNN is None:
        from matminer.featurizers.composition.composite import ElementProperty
        from matminer.featurizers.site.fingerprint import CrystalNNFingerprint

        _CNN = CrystalNNFingerprint.from_preset("ops")
        _MAGPIE = ElementProperty.from_preset("magpie")
    return _CNN, _MAGPIE


def structure_fingerprint(structure: Structure | None) -> np.ndarray | None:
    """Site-averaged CrystalNN ``ops`` fingerprint (61 numbers), or None when CrystalNN fails."""
    if structure is None:
        return None
    cnn, _ = _featurizers()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = np.mean([cnn.featurize(structure, i) for i in range(len(structure))], axis=0)
    except Exception:
        return None
    fp = np.asarray(fp, dtype=float)
    return fp if np.isfinite(fp).all() else None


def composition_fingerprint(structure: Structure | None) -> np.ndarray | None:
    """Magpie ``ElementProperty`` features (132 numbers, may hold NaN), or None."""
    if structure is None:
        return None
    _, magpie = _featurizers()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(magpie.featurize(structure.composition), dtype=float)
    except Exception:
        return None


def _fingerprints_one(structure):
    return structure_fingerprint(structure), composition_fingerprint(structure)


def fingerprints(
    structures: Sequence[Structure | None], workers: int = 1, progress: bool = True, desc: str = "fingerprints"
) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """Structure and composition fingerprints of each structure (None where they fail)."""
    from gencrystal.fanout import parallel_map

    _featurizers()  # load once before forking
    res = parallel_map(_fingerprints_one, list(structures), workers=workers, progress=progress, desc=desc)
    return [r[0] for r in res], [r[1] for r in res]


def coverage(
    pred_struct: Sequence[np.ndarray | None],
    pred_comp: Sequence[np.ndarray | None],
    ref_struct: Sequence[np.ndarray | None],
    ref_comp: Sequence[np.ndarray | None],
    struct_cutoff: float,
    comp_cutoff: float,
    n_generated: int | None = None,
    joint: bool = False,
) -> dict[str, Any]:
    """COV-R and COV-P (fractions) plus mean nearest distances.

    Samples or references whose fingerprints failed are dropped; COV-P is still divided
    by ``n_generated`` (default: all samples given).
    """
    from scipy.spatial.distance import cdist

    n_gen = len(pred_struct) if n_generated is None else int(n_generated)
    pk = [i for i in range(len(pred_struct)) if pred_struct[i] is not None and pred_comp[i] is not None]
    rk = [i for i in range(len(ref_struct)) if ref_struct[i] is not None and ref_comp[i] is not None]
    if not pk or not rk:
        return {"cov_recall": 0.0, "cov_precision": 0.0, "n_pred_fp": len(pk), "n_ref_fp": len(rk)}
    ps = np.array([pred_struct[i] for i in pk])
    rs = np.array([ref_struct[i] for i in rk])
    pc = np.array([pred_comp[i] for i in pk])
    rc = np.array([ref_comp[i] for i in rk])
    mean = np.nanmean(rc, axis=0)
    std = np.nanstd(rc, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    pc = np.nan_to_num((pc - mean) / std, nan=0.0)
    rc = np.nan_to_num((rc - mean) / std, nan=0.0)
    ds = cdist(ps, rs)
    dc = cdist(pc, rc)
    if joint:
        within = (ds <= struct_cutoff) & (dc <= comp_cutoff)
        recall = within.any(axis=0)
        precision = within.any(axis=1)
    else:
        recall = (ds.min(axis=0) <= struct_cutoff) & (dc.min(axis=0) <= comp_cutoff)
        precision = (ds.min(axis=1) <= struct_cutoff) & (dc.min(axis=1) <= comp_cutoff)
    return {
        "cov_recall": float(recall.mean()),
        "cov_precision": float(precision.sum() / n_gen) if n_gen else 0.0,
        "amsd_recall": float(ds.min(axis=0).mean()),
        "amsd_precision": float(ds.min(axis=1).mean()),
        "amcd_recall": float(dc.min(axis=0).mean()),
        "amcd_precision": float(dc.min(axis=1).mean()),
        "n_pred_fp": len(pk),
        "n_ref_fp": len(rk),
        "joint": bool(joint),
        "struct_cutoff": float(struct_cutoff),
        "comp_cutoff": float(comp_cutoff),
        "comp_scaler": "mean/std of the reference set's Magpie features (NaN -> 0)",
    }


def wasserstein_metrics(
    pred: Sequence[Structure], ref: Sequence[Structure], n_samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """W1 distances of density (g/cm³) and number of elements; ``pred`` are valid samples.

    Draws ``n_samples`` of them without replacement (all when fewer, which is stated).
    """
    from scipy.stats import wasserstein_distance

    pred = list(pred)
    if not pred or not ref:
        return {"wdist_density": None, "wdist_num_elems": None, "n_wdist": 0}
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pred), size=min(n_samples, len(pred)), replace=False)
    sub = [pred[i] for i in idx]
    return {
        "wdist_density": float(wasserstein_distance([s.density for s in sub], [s.density for s in ref])),
        "wdist_num_elems": float(
            wasserstein_distance([len(s.composition.elements) for s in sub], [len(s.composition.elements) for s in ref])
        ),
        "n_wdist": len(sub),
        "n_wdist_requested": int(n_samples),
    }


def _formula_key(s: Structure) -> str:
    return s.composition.reduced_formula


def duplicate_groups(structures: Sequence[Structure | None], matcher: str = "novelty") -> list[int]:
    """Group label per structure: equal labels = duplicates under the matcher (None: label -1);
    :func:`gencrystal.matching.group_duplicates` (``StructureMatcher.group_structures``)."""
    from gencrystal.matching import group_duplicates

    return group_duplicates(structures, matcher)


def _reduced(sm, s: Structure) -> Structure | None:
    """The cell ``sm.fit`` compares (pymatgen's own reduction: Niggli, then primitive when the matcher asks
    for it); None for a cell pymatgen cannot reduce."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reduced_like_matcher(sm, s)
    except Exception:
        return None


def novelty_flags(structures: Sequence[Structure | None], train: Sequence[Structure], matcher: str = "novelty") -> list[bool]:
    """True for each structure that matches no training structure (same reduced formula compared only).

    Each structure is reduced once (``fit(..., skip_structure_reduction=True)``: pymatgen's own cache holds
    300 cells, so a large training pool was reduced again for every comparison), and without supercell or
    subset matching only reduced cells with equal site counts are compared (``fit`` refuses the others).
    """
    sm = make_matcher(matcher)
    same_size_only = not sm._supercell and not sm._subset
    by_key: dict[tuple, list[Structure]] = defaultdict(list)
    for t in train:
        if t is not None and (r := _reduced(sm, t)) is not None:
            by_key[(_formula_key(t), len(r) if same_size_only else 0)].append(r)
    out = []
    for s in structures:
        if s is None:
            out.append(False)
            continue
        r = _reduced(sm, s)
        novel = True
        if r is not None:
            for t in by_key.get((_formula_key(s), len(r) if same_size_only else 0), []):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        if sm.fit(r, t, skip_structure_reduction=True):
                            novel = False
                            break
                except Exception:
                    continue
        out.append(novel)
    return out


def first_of_group(labels: Sequence[int]) -> list[bool]:
    """True for the first structure of each duplicate group (label -1 is never first)."""
    seen: set[int] = set()
    out = []
    for lab in labels:
        out.append(lab >= 0 and lab not in seen)
        if lab >= 0:
            seen.add(lab)
    return out


def sun_summary(
    valid: Sequence[bool],
    unique_first: Sequence[bool],
    novel: Sequence[bool] | None,
    e_hull: Sequence[float] | None,
    threshold: float,
) -> dict[str, Any]:
    """Stable / unique / novel fractions and the S.U.N. rate, all over every sample."""
    n = len(valid)
    out: dict[str, Any] = {"unique_rate": float(np.mean(unique_first)) if n else None}
    if novel is not None:
        out["novel_rate"] = float(np.mean(novel)) if n else None
    if e_hull is not None:
        eh = np.asarray(e_hull, dtype=float)
        stable = np.isfinite(eh) & (eh <= threshold)
        out["stable_rate"] = float(stable.mean()) if n else None
        out["n_no_hull"] = int((~np.isfinite(eh)).sum())
        out["stability_threshold_eV_per_atom"] = threshold
        if novel is not None:
            sun = stable & np.asarray(valid, bool) & np.asarray(unique_first, bool) & np.asarray(novel, bool)
            out["sun_rate"] = float(sun.mean()) if n else None
            out["n_sun"] = int(sun.sum())
    return out
