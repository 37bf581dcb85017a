"""``gencrystal evaluate csp`` and ``gencrystal evaluate dng``.

Both read predictions and references with :func:`gencrystal.metrics.io.read_entries`
(extxyz/traj, CIF file or folder, ASE db; references also as a CDVAE CSV), compute the
metrics, and only then write ``out/``: ``metrics.json``, a per-structure CSV and PNG
plots, each file atomically. Bad input raises :class:`GencrystalError` before anything
is written.
"""

from __future__ import annotations

import csv
import io as _io
import math
import time
from pathlib import Path
from typing import Any, Sequence

from gencrystal.errors import GencrystalError


def _req(cfg, key: str) -> str:
    v = cfg.get(key)
    if v is None or str(v) == "":
        raise GencrystalError(f"missing {key}=...; usage: gencrystal evaluate <csp|dng> pred=PATH ref=PATH out=DIR")
    return str(v)


def _int_or_none(v, name: str) -> int | None:
    if v is None:
        return None
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name} must be an integer, got {v!r}") from None
    if n <= 0:
        raise GencrystalError(f"{name} must be positive, got {v!r}")
    return n


def _nonneg_int(v, name: str) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name} must be an integer, got {v!r}") from None
    if n < 0:
        raise GencrystalError(f"{name} must be >= 0, got {v!r}")
    return n


def _instantiate_potential(node):
    """The configured potential (conf/potential/*.yaml), built once per process."""
    if node is None:
        raise GencrystalError("hull.relax_energies=true needs a potential (potential=chgnet|sevenn|committee)")
    from gencrystal.potentials import build_potential

    return build_potential(node)


def _check_input(path: str, what: str) -> str:
    """Fail fast (before any expensive reading) on a missing input path."""
    from gencrystal.io import is_db_url

    if not (is_db_url(path) and str(path).startswith("postgres")) and not Path(path).exists():
        raise GencrystalError(f"{what}={path!r} does not exist")
    return path


def _check_choices(cfg, validity_cfg) -> None:
    from gencrystal.matching import MATCHER_SETTINGS
    from gencrystal.metrics.csp import VALIDITY_MODES
    from gencrystal.metrics.validity import OX_SETS

    checks = [("pair", cfg.get("pair", "id"), ("id", "order")),
              ("validity_mode", cfg.get("validity_mode", "paper"), VALIDITY_MODES),
              ("matcher", cfg.get("matcher", "csp"), tuple(MATCHER_SETTINGS)),
              ("validity.oxidation_states_set", validity_cfg.get("oxidation_states_set", "smact14"), tuple(OX_SETS))]
    for name, value, allowed in checks:
        if str(value) not in allowed:
            raise GencrystalError(f"unknown {name}={value!r}; choose from {', '.join(allowed)}")
    for key in ("timeout_s",):
        try:
            x = float(cfg.get(key, 30))
        except (TypeError, ValueError):
            raise GencrystalError(f"{key} must be a number, got {cfg.get(key)!r}") from None
        if not x > 0:
            raise GencrystalError(f"{key} must be positive, got {cfg.get(key)!r}")


def _check_out(out: str) -> Path:
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise GencrystalError(f"out={out!r} exists and is not a folder")
    return p


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write dict rows to CSV atomically (floats as repr, None as empty)."""
    from gencrystal.io import atomic_write

    buf = _io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _read(path: str, selection, limit, what: str):
    from gencrystal.metrics.io import read_entries

    entries = read_entries(path, selection=selection, limit=limit)
    if not entries:
        raise GencrystalError(f"{what}={path!r} holds no structures")
    return entries


def evaluate_csp(cfg) -> int:
    """Score CSP predictions against references; writes metrics.json, per_structure.csv and plots."""
    from gencrystal.metrics.csp import csp_metrics, match_rate_by_atoms, rows_as_dicts
    from gencrystal.metrics.io import pair_predictions
    from gencrystal.metrics.plots import match_rate_by_atoms as plot_by_atoms
    from gencrystal.metrics.plots import rmse_histogram

    pred, ref, out = _req(cfg, "pred"), _req(cfg, "ref"), _req(cfg, "out")
    outp = _check_out(out)
    limit = _int_or_none(cfg.get("limit"), "limit")
    _check_choices(cfg, cfg.get("validity") or {})
    _check_input(pred, "pred")
    _check_input(ref, "ref")
    t0 = time.time()
    refs = _read(ref, cfg.get("ref_selection"), limit, "ref")
    preds = _read(pred, cfg.get("pred_selection"), None, "pred")
    cands, unpaired = pair_predictions(refs, preds, mode=str(cfg.get("pair", "id")),
                                       id_keys=tuple(cfg.get("pair_keys") or ("ref_id", "material_id", "id")))
    v = cfg.get("validity") or {}
    metrics, rows = csp_metrics(
        refs, preds, cands, validity_mode=str(cfg.get("validity_mode", "paper")), matcher=str(cfg.get("matcher", "csp")),
        workers=int(cfg.get("workers", 0)), timeout_s=float(cfg.get("timeout_s", 30)),
        min_distance=float(v.get("min_distance", 0.5)), min_volume=float(v.get("min_volume", 0.1)),
        oxidation_states_set=str(v.get("oxidation_states_set", "smact14")), progress=bool(cfg.get("progress", True)))
    metrics.update({
        "pred": pred, "ref": ref, "pairing": str(cfg.get("pair", "id")),
        "n_pred_unpaired": len(unpaired), "unpaired_pred_ids": [preds[j].id for j in unpaired[:20]],
        "limit": limit, "wall_time_s": round(time.time() - t0, 2),
    })
    metrics["match_rate_by_atoms"] = {
        "with_validity_filter": {str(k): v for k, v in match_rate_by_atoms(rows, True).items()},
        "without_validity_filter": {str(k): v for k, v in match_rate_by_atoms(rows, False).items()},
    }
    _write_csp(outp, metrics, rows_as_dicts(rows), rows, bool(cfg.get("plots", True)), rmse_histogram, plot_by_atoms,
               match_rate_by_atoms)
    w, wo = metrics["with_validity_filter"], metrics["without_validity_filter"]
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
    print(f"{metrics['protocol']['name']}: match rate {100 * w['match_rate']:.2f} % (RMSE {fmt(w['rmse'])}) with validity filter; "
          f"{100 * wo['match_rate']:.2f} % (RMSE {fmt(wo['rmse'])}) without; n_ref={metrics['n_ref']} n_pred={metrics['n_pred']} -> {outp}")
    return 0


def _write_csp(outp: Path, metrics, row_dicts, rows, plots, rmse_histogram, plot_by_atoms, by_atoms) -> None:
    from gencrystal.io import write_json

    outp.mkdir(parents=True, exist_ok=True)
    write_csv(row_dicts, outp / "per_structure.csv")
    if plots:
        rmse_histogram([r.rmse_filtered for r in rows if r.matched_filtered], [r.rmse for r in rows if r.matched],
                       outp / "rmse_hist.png", title=f"{metrics['protocol']['name']} RMSE, matched references")
        plot_by_atoms(by_atoms(rows, True), by_atoms(rows, False), outp / "match_rate_by_atoms.png",
                      title=f"{metrics['protocol']['name']} match rate by atom count")
    write_json(_jsonable(metrics), outp / "metrics.json")  # last: its presence means the run completed


def evaluate_dng(cfg) -> int:
    """Generation metrics of samples against references (and a training set for novelty/S.U.N.)."""
    import numpy as np

    from gencrystal.io import write_json
    from gencrystal.metrics import dng
    from gencrystal.metrics.hull import DEFAULT_STABILITY_THRESHOLD_EV
    from gencrystal.metrics.plots import distribution_comparison
    from gencrystal.metrics.validity import Validity, crystal_validity

    pred, ref, out = _req(cfg, "pred"), _req(cfg, "ref"), _req(cfg, "out")
    outp = _check_out(out)
    t0 = time.time()
    limit = _int_or_none(cfg.get("limit"), "limit")
    for path, what in ((pred, "pred"), (ref, "ref"), (cfg.get("train"), "train")):
        if path:
            _check_input(str(path), what)
    preds = _read(pred, cfg.get("pred_selection"), limit, "pred")
    refs = _read(ref, cfg.get("ref_selection"), _int_or_none(cfg.get("ref_limit"), "ref_limit"), "ref")
    train_path = cfg.get("train")
    train = _read(str(train_path), cfg.get("train_selection"), _int_or_none(cfg.get("train_limit"), "train_limit"),
                  "train") if train_path else None
    cut_name = str(cfg.get("cutoffs", "mp20"))
    if cut_name not in dng.COV_CUTOFFS:
        raise GencrystalError(f"unknown cutoffs={cut_name!r}; choose from {sorted(dng.COV_CUTOFFS)}")
    sc = float(cfg.get("struct_cutoff") or dng.COV_CUTOFFS[cut_name]["struct"])
    cc = float(cfg.get("comp_cutoff") or dng.COV_CUTOFFS[cut_name]["comp"])
    en = cfg.get("energies") or {}
    ekey = en.get("key")
    threshold = float(cfg.get("stability_threshold", DEFAULT_STABILITY_THRESHOLD_EV))
    hcfg = cfg.get("hull") or {}
    relax_on = bool(hcfg.get("relax_energies", False))
    hull_ref_name = str(hcfg.get("reference", "auto"))
    if hull_ref_name not in ("auto", "train", "ref", "both"):
        raise GencrystalError(f"unknown hull.reference={hull_ref_name!r}; choose from auto, train, ref, both")
    if hull_ref_name == "auto":
        hull_ref_name = "train" if train is not None else "ref"
    if hull_ref_name in ("train", "both") and train is None:
        raise GencrystalError(f"hull.reference={hull_ref_name} needs train=... (the reference hull is built from it)")
    hull_sources = {"train": train, "ref": refs, "both": (train or []) + refs}.get(hull_ref_name) or []
    from gencrystal.units import check_pressure

    hull_pressure = check_pressure(hcfg.get("pressure", 0.0), "hull.pressure")
    for key in ("steps", "element_steps"):
        _nonneg_int(hcfg.get(key, 300), f"hull.{key}")
    workers = int(cfg.get("workers", 0))
    progress = bool(cfg.get("progress", True))
    v = cfg.get("validity") or {}
    vkw = dict(min_distance=float(v.get("min_distance", 0.5)), min_volume=float(v.get("min_volume", 0.1)),
               oxidation_states_set=str(v.get("oxidation_states_set", "smact14")))

    val = [crystal_validity(e.structure, **vkw) if e.structure is not None else Validity(False, False) for e in preds]
    n = len(preds)
    metrics: dict[str, Any] = {
        "n_pred": n, "n_ref": len(refs), "n_train": len(train) if train else 0,
        "struct_valid": float(np.mean([x.struct_valid for x in val])),
        "comp_valid": float(np.mean([x.comp_valid for x in val])),
        "valid": float(np.mean([x.valid for x in val])),
        "validity": {**vkw, "max_ox_combinations": 1e7},
    }
    valid_structs = [e.structure for e, x in zip(preds, val) if x.valid]
    ref_structs = [e.structure for e in refs if e.structure is not None]
    metrics.update(dng.wasserstein_metrics(valid_structs, ref_structs, n_samples=int(cfg.get("n_wdist", 1000)),
                                           seed=int(cfg.get("seed", 0))))
    if bool(cfg.get("coverage", True)):
        ps, pc = dng.fingerprints([e.structure for e in preds], workers=workers, progress=progress, desc="sample fingerprints")
        rs, rc = dng.fingerprints(ref_structs, workers=workers, progress=progress, desc="reference fingerprints")
        cov = dng.coverage(ps, pc, rs, rc, sc, cc, n_generated=n, joint=bool(cfg.get("cov_joint", False)))
        cov["cutoffs"] = cut_name
        metrics["coverage"] = cov
        metrics["cov_recall"], metrics["cov_precision"] = cov["cov_recall"], cov["cov_precision"]

    nm = str(cfg.get("novelty_matcher", "novelty"))
    labels = dng.duplicate_groups([e.structure for e in preds], matcher=nm)
    first = dng.first_of_group(labels)
    novel = dng.novelty_flags([e.structure for e in preds], [t.structure for t in train], matcher=nm) if train else None
    e_hull, e_pred = None, None
    if ekey or relax_on:
        from gencrystal.metrics.stability import stability

        hull_refs = list(hull_sources)
        extra = en.get("elements")
        if extra:
            hull_refs += _read(str(extra), None, None, "energies.elements")
        pot_cfg = cfg.get("potential") if relax_on else None
        pot_settings = ({k: (str(v) if v is not None else None) for k, v in pot_cfg.items() if k in ("name", "path", "modal")}
                        if pot_cfg is not None else None)
        potential = _instantiate_potential(pot_cfg) if relax_on else None
        e_hull, e_pred, hull_summary = stability(
            preds, hull_refs, energy_key=ekey, level_of_theory_key=str(en.get("level_of_theory_key", "level_of_theory")),
            default_level=en.get("level_of_theory"), compute=relax_on, potential=potential, potential_settings=pot_settings,
            pressure_gpa=hull_pressure, steps=int(hcfg.get("steps", 300)), fmax=float(hcfg.get("fmax", 0.05)),
            optimizer=str(hcfg.get("optimizer", "FIRE")), require_converged=bool(hcfg.get("require_converged", False)),
            element_prototypes=tuple(hcfg.get("element_prototypes") or ()), element_steps=int(hcfg.get("element_steps", 300)),
            cache_path=(outp / "hull_energies.jsonl") if (relax_on and bool(hcfg.get("cache", True))) else None,
            progress=progress)
        hull_summary["reference_set"] = hull_ref_name
        metrics["hull"] = hull_summary
    metrics.update(dng.sun_summary([x.valid for x in val], first, novel, e_hull, threshold))
    metrics["matcher_unique_novel"] = nm
    metrics["pred"], metrics["ref"], metrics["train"] = pred, ref, (str(train_path) if train_path else None)
    metrics["wall_time_s"] = round(time.time() - t0, 2)

    rows = []
    for i, e in enumerate(preds):
        s = e.structure
        rows.append({
            "id": e.id, "formula": s.composition.reduced_formula if s is not None else "",
            "n_atoms": e.n_atoms, "struct_valid": val[i].struct_valid, "comp_valid": val[i].comp_valid,
            "valid": val[i].valid, "density_g_cm3": float(s.density) if s is not None else None,
            "n_elements": len(s.composition.elements) if s is not None else None,
            "duplicate_group": labels[i], "unique_first": first[i],
            "novel": (novel[i] if novel is not None else None),
            "hull_enthalpy_eV_per_atom": (e_pred[i] if e_pred is not None and math.isfinite(e_pred[i]) else None),
            "e_above_hull_eV_per_atom": (e_hull[i] if e_hull is not None and math.isfinite(e_hull[i]) else None),
        })
    outp.mkdir(parents=True, exist_ok=True)
    write_csv(rows, outp / "per_structure.csv")
    if bool(cfg.get("plots", True)) and valid_structs:
        distribution_comparison([s.density for s in valid_structs], [s.density for s in ref_structs],
                                outp / "density.png", "density (g/cm$^3$)")
        distribution_comparison([len(s.composition.elements) for s in valid_structs],
                                [len(s.composition.elements) for s in ref_structs], outp / "num_elements.png",
                                "number of elements", discrete=True)
    write_json(_jsonable(metrics), outp / "metrics.json")
    print(f"DNG: valid {100 * metrics['valid']:.1f} % (struct {100 * metrics['struct_valid']:.1f}, comp "
          f"{100 * metrics['comp_valid']:.1f}); COV-R {metrics.get('cov_recall', float('nan')):.3f} COV-P "
          f"{metrics.get('cov_precision', float('nan')):.3f}; unique {metrics['unique_rate']:.3f}"
          + (f"; novel {metrics['novel_rate']:.3f}" if 'novel_rate' in metrics else "")
          + (f"; S.U.N. {metrics['sun_rate']:.3f}" if 'sun_rate' in metrics else "") + f" -> {outp}")
    return 0
