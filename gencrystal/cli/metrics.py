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
    v = cfg[key]
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

    checks = [
        ("pair", cfg.pair, ("id", "order")),
        ("protocol", cfg.protocol, ("standard", "metre")),
        ("validity_mode", cfg.validity_mode, VALIDITY_MODES),
        ("matcher", cfg.matcher, tuple(MATCHER_SETTINGS)),
        ("validity.oxidation_states_set", validity_cfg.oxidation_states_set, tuple(OX_SETS)),
    ]
    for name, value, allowed in checks:
        if str(value) not in allowed:
            raise GencrystalError(f"unknown {name}={value!r}; choose from {', '.join(allowed)}")
    for key in ("timeout_s",):
        try:
            x = float(cfg[key])
        except (TypeError, ValueError):
            raise GencrystalError(f"{key} must be a number, got {cfg[key]!r}") from None
        if not x > 0:
            raise GencrystalError(f"{key} must be positive, got {cfg[key]!r}")


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
    limit = _int_or_none(cfg.limit, "limit")
    _check_choices(cfg, cfg.validity)
    _check_input(pred, "pred")
    _check_input(ref, "ref")
    t0 = time.time()
    refs = _read(ref, cfg.ref_selection, limit, "ref")
    preds = _read(pred, cfg.pred_selection, None, "pred")
    cands, unpaired = pair_predictions(refs, preds, mode=str(cfg.pair), id_keys=tuple(cfg.pair_keys))
    v = cfg.validity
    metrics, rows = csp_metrics(
        refs,
        preds,
        cands,
        validity_mode=str(cfg.validity_mode),
        matcher=str(cfg.matcher),
        workers=int(cfg.workers),
        timeout_s=float(cfg.timeout_s),
        min_distance=float(v.min_distance),
        min_volume=float(v.min_volume),
        oxidation_states_set=str(v.oxidation_states_set),
        progress=bool(cfg.progress),
    )
    metrics.update(
        {
            "pred": pred,
            "ref": ref,
            "pairing": str(cfg.pair),
            "n_pred_unpaired": len(unpaired),
            "unpaired_pred_ids": [preds[j].id for j in unpaired[:20]],
            "limit": limit,
            "wall_time_s": round(time.time() - t0, 2),
        }
    )
    metrics["match_rate_by_atoms"] = {
        "with_validity_filter": {str(k): v for k, v in match_rate_by_atoms(rows, True).items()},
        "without_validity_filter": {str(k): v for k, v in match_rate_by_atoms(rows, False).items()},
    }
    metre_rows = None
    if str(cfg.protocol) == "metre":
        metre_rows = _metre(cfg, refs, preds, metrics)
    _write_csp(
        outp,
        metrics,
        rows_as_dicts(rows),
        rows,
        bool(cfg.plots),
        rmse_histogram,
        plot_by_atoms,
        match_rate_by_atoms,
        metre_rows,
    )
    w, wo = metrics["with_validity_filter"], metrics["without_validity_filter"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.4f}"

    print(
        f"{metrics['protocol']['name']}: match rate {100 * w['match_rate']:.2f} % (RMSE {fmt(w['rmse'])}) with validity filter; "
        f"{100 * wo['match_rate']:.2f} % (RMSE {fmt(wo['rmse'])}, cRMSE {fmt(wo['crmse'])}) without; "
        f"n_ref={metrics['n_ref']} n_pred={metrics['n_pred']} -> {outp}"
    )
    if metre_rows is not None:
        me = metrics["metre"]
        print(f"METRe {100 * me['metre']:.2f} % (cRMSE {fmt(me['crmse'])}; {me['n_pairs']} same-composition pairs)")
    return 0


def _metre(cfg, refs, preds, metrics: dict) -> list:
    """Add ``metrics["metre"]`` (METRe, cRMSE: :mod:`gencrystal.metrics.metre`); returns its per-reference rows."""
    from gencrystal.metrics.metre import metre_metrics

    mcfg = cfg.metre
    max_pairs = _int_or_none(mcfg.max_pairs, "metre.max_pairs")
    v = cfg.validity
    m, rows = metre_metrics(
        refs,
        preds,
        matcher=str(cfg.matcher),
        workers=int(cfg.workers),
        timeout_s=float(cfg.timeout_s),
        progress=bool(cfg.progress),
        valid_only=bool(mcfg.valid_only),
        max_pairs=max_pairs,
        validity_kwargs=dict(
            min_distance=float(v.min_distance),
            min_volume=float(v.min_volume),
            oxidation_states_set=str(v.oxidation_states_set),
        ),
    )
    metrics["metre"] = m
    return rows


def _write_csp(outp: Path, metrics, row_dicts, rows, plots, rmse_histogram, plot_by_atoms, by_atoms, metre_rows=None) -> None:
    from gencrystal.io import write_json
    from gencrystal.metrics.metre import metre_rows_as_dicts

    outp.mkdir(parents=True, exist_ok=True)
    write_csv(row_dicts, outp / "per_structure.csv")
    if metre_rows is not None:
        write_csv(metre_rows_as_dicts(metre_rows), outp / "per_structure_metre.csv")
    if plots:
        rmse_histogram(
            [r.rmse_filtered for r in rows if r.matched_filtered],
            [r.rmse for r in rows if r.matched],
            outp / "rmse_hist.png",
            title=f"{metrics['protocol']['name']} RMSE, matched references",
        )
        plot_by_atoms(
            by_atoms(rows, True),
            by_atoms(rows, False),
            outp / "match_rate_by_atoms.png",
            title=f"{metrics['protocol']['name']} match rate by atom count",
        )
    write_json(_jsonable(metrics), outp / "metrics.json")  # last: its presence means the run completed


def evaluate_dng(cfg) -> int:
    """Generation metrics of samples against references (and a training set for novelty/S.U.N.)."""
    import numpy as np

    from gencrystal.io import write_json
    from gencrystal.metrics import dng
    from gencrystal.metrics.plots import distribution_comparison
    from gencrystal.metrics.validity import Validity, crystal_validity

    pred, ref, out = _req(cfg, "pred"), _req(cfg, "ref"), _req(cfg, "out")
    outp = _check_out(out)
    t0 = time.time()
    limit = _int_or_none(cfg.limit, "limit")
    for path, what in ((pred, "pred"), (ref, "ref"), (cfg.train, "train")):
        if path:
            _check_input(str(path), what)
    preds = _read(pred, cfg.pred_selection, limit, "pred")
    refs = _read(ref, cfg.ref_selection, _int_or_none(cfg.ref_limit, "ref_limit"), "ref")
    train_path = cfg.train
    train = (
        _read(str(train_path), cfg.train_selection, _int_or_none(cfg.train_limit, "train_limit"), "train") if train_path else None
    )
    cut_name = str(cfg.cutoffs)
    if cut_name not in dng.COV_CUTOFFS:
        raise GencrystalError(f"unknown cutoffs={cut_name!r}; choose from {sorted(dng.COV_CUTOFFS)}")
    sc = float(cfg.struct_cutoff or dng.COV_CUTOFFS[cut_name]["struct"])
    cc = float(cfg.comp_cutoff or dng.COV_CUTOFFS[cut_name]["comp"])
    en = cfg.energies
    ekey = en.key
    threshold = float(cfg.stability_threshold)
    hcfg = cfg.hull
    relax_on = bool(hcfg.relax_energies)
    hull_ref_name = str(hcfg.reference)
    if hull_ref_name not in ("auto", "train", "ref", "both"):
        raise GencrystalError(f"unknown hull.reference={hull_ref_name!r}; choose from auto, train, ref, both")
    if hull_ref_name == "auto":
        hull_ref_name = "train" if train is not None else "ref"
    if hull_ref_name in ("train", "both") and train is None:
        raise GencrystalError(f"hull.reference={hull_ref_name} needs train=... (the reference hull is built from it)")
    hull_sources = {"train": train, "ref": refs, "both": (train or []) + refs}.get(hull_ref_name) or []
    from gencrystal.units import check_pressure

    hull_pressure = check_pressure(hcfg.pressure, "hull.pressure")
    for key in ("steps", "element_steps"):
        _nonneg_int(hcfg[key], f"hull.{key}")
    workers = int(cfg.workers)
    progress = bool(cfg.progress)
    v = cfg.validity
    vkw: dict[str, Any] = dict(
        min_distance=float(v.min_distance),
        min_volume=float(v.min_volume),
        oxidation_states_set=str(v.oxidation_states_set),
    )

    val = [crystal_validity(e.structure, **vkw) if e.structure is not None else Validity(False, False) for e in preds]
    n = len(preds)
    metrics: dict[str, Any] = {
        "n_pred": n,
        "n_ref": len(refs),
        "n_train": len(train) if train else 0,
        "struct_valid": float(np.mean([x.struct_valid for x in val])),
        "comp_valid": float(np.mean([x.comp_valid for x in val])),
        "valid": float(np.mean([x.valid for x in val])),
        "validity": {**vkw, "max_ox_combinations": 1e7},
    }
    valid_structs = [e.structure for e, x in zip(preds, val) if x.valid]
    ref_structs = [e.structure for e in refs if e.structure is not None]
    metrics.update(dng.wasserstein_metrics(valid_structs, ref_structs, n_samples=int(cfg.n_wdist), seed=int(cfg.seed)))
    if bool(cfg.coverage):
        ps, pc = dng.fingerprints([e.structure for e in preds], workers=workers, progress=progress, desc="sample fingerprints")
        rs, rc = dng.fingerprints(ref_structs, workers=workers, progress=progress, desc="reference fingerprints")
        cov = dng.coverage(ps, pc, rs, rc, sc, cc, n_generated=n, joint=bool(cfg.cov_joint))
        cov["cutoffs"] = cut_name
        metrics["coverage"] = cov
        metrics["cov_recall"], metrics["cov_precision"] = cov["cov_recall"], cov["cov_precision"]

    nm = str(cfg.novelty_matcher)
    labels = dng.duplicate_groups([e.structure for e in preds], matcher=nm)
    first = dng.first_of_group(labels)
    novel = dng.novelty_flags([e.structure for e in preds], [t.structure for t in train], matcher=nm) if train else None
    e_hull, e_pred = None, None
    if ekey or relax_on:
        from gencrystal.metrics.stability import stability

        hull_refs = list(hull_sources)
        extra = en.elements
        if extra:
            hull_refs += _read(str(extra), None, None, "energies.elements")
        pot_cfg = cfg.potential if relax_on else None  # None under ~potential
        pot_settings = (
            {k: (str(v) if v is not None else None) for k, v in pot_cfg.items() if k in ("name", "path", "modal")}
            if pot_cfg is not None
            else None
        )
        potential = _instantiate_potential(pot_cfg) if relax_on else None
        e_hull, e_pred, hull_summary = stability(
            preds,
            hull_refs,
            energy_key=ekey,
            level_of_theory_key=str(en.level_of_theory_key),
            default_level=en.level_of_theory,
            compute=relax_on,
            potential=potential,
            potential_settings=pot_settings,
            pressure_gpa=hull_pressure,
            steps=int(hcfg.steps),
            fmax=float(hcfg.fmax),
            optimizer=str(hcfg.optimizer),
            require_converged=bool(hcfg.require_converged),
            element_prototypes=tuple(hcfg.element_prototypes),
            element_steps=int(hcfg.element_steps),
            cache_path=(outp / "hull_energies.jsonl") if (relax_on and bool(hcfg.cache)) else None,
            progress=progress,
        )
        hull_summary["reference_set"] = hull_ref_name
        metrics["hull"] = hull_summary
    metrics.update(dng.sun_summary([x.valid for x in val], first, novel, e_hull, threshold))
    metrics["matcher_unique_novel"] = nm
    metrics["pred"], metrics["ref"], metrics["train"] = pred, ref, (str(train_path) if train_path else None)
    metrics["wall_time_s"] = round(time.time() - t0, 2)

    rows = []
    for i, e in enumerate(preds):
        s = e.structure
        rows.append(
            {
                "id": e.id,
                "formula": s.composition.reduced_formula if s is not None else "",
                "n_atoms": e.n_atoms,
                "struct_valid": val[i].struct_valid,
                "comp_valid": val[i].comp_valid,
                "valid": val[i].valid,
                "density_g_cm3": float(s.density) if s is not None else None,
                "n_elements": len(s.composition.elements) if s is not None else None,
                "duplicate_group": labels[i],
                "unique_first": first[i],
                "novel": (novel[i] if novel is not None else None),
                "hull_enthalpy_eV_per_atom": (e_pred[i] if e_pred is not None and math.isfinite(e_pred[i]) else None),
                "e_above_hull_eV_per_atom": (e_hull[i] if e_hull is not None and math.isfinite(e_hull[i]) else None),
            }
        )
    outp.mkdir(parents=True, exist_ok=True)
    write_csv(rows, outp / "per_structure.csv")
    if bool(cfg.plots) and valid_structs:
        distribution_comparison(
            [s.density for s in valid_structs], [s.density for s in ref_structs], outp / "density.png", "density (g/cm$^3$)"
        )
        distribution_comparison(
            [len(s.composition.elements) for s in valid_structs],
            [len(s.composition.elements) for s in ref_structs],
            outp / "num_elements.png",
            "number of elements",
            discrete=True,
        )
    write_json(_jsonable(metrics), outp / "metrics.json")
    print(
        f"DNG: valid {100 * metrics['valid']:.1f} % (struct {100 * metrics['struct_valid']:.1f}, comp "
        f"{100 * metrics['comp_valid']:.1f}); COV-R {metrics.get('cov_recall', float('nan')):.3f} COV-P "
        f"{metrics.get('cov_precision', float('nan')):.3f}; unique {metrics['unique_rate']:.3f}"
        + (f"; novel {metrics['novel_rate']:.3f}" if "novel_rate" in metrics else "")
        + (f"; S.U.N. {metrics['sun_rate']:.3f}" if "sun_rate" in metrics else "")
        + f" -> {outp}"
    )
    return 0


def _frames_with_ref_id(path: str, selection) -> list:
    """Samples as ASE Atoms whose ``info['ref_id']`` names their reference (ref_id/material_id/id info, else file id)."""
    from gencrystal.io import read_structures
    from gencrystal.metrics.io import PAIR_ID_KEYS

    frames = []
    for sid, atoms in read_structures(path, selection=selection):
        ref_id = next((str(atoms.info[k]) for k in PAIR_ID_KEYS if str(atoms.info.get(k, "")) != ""), str(sid))
        atoms.info["ref_id"] = ref_id
        frames.append(atoms)
    if not frames:
        raise GencrystalError(f"pred={path!r} holds no structures")
    return frames


def evaluate_pipeline(cfg) -> int:
    """``gencrystal evaluate pipeline``: raw -> MLP -> DFT stage table (:func:`gencrystal.metrics.pipeline.run_stages`);
    writes ``out/stages.json`` and the relaxed samples, caching every relaxation under ``out/``."""
    from gencrystal.io import write_json
    from gencrystal.metrics.csp import VALIDITY_MODES
    from gencrystal.metrics.pipeline import StageSettings, run_stages
    from gencrystal.units import check_pressure

    pred, ref, out = _req(cfg, "pred"), _req(cfg, "ref"), _req(cfg, "out")
    outp = _check_out(out)
    _check_input(pred, "pred")
    _check_input(ref, "ref")
    if str(cfg.validity_mode) not in VALIDITY_MODES:
        raise GencrystalError(f"unknown validity_mode={cfg.validity_mode!r}; choose from {', '.join(VALIDITY_MODES)}")
    for key in ("mlp_n", "dft_n", "max_neighbours", "relax_steps"):
        _nonneg_int(cfg[key], key)
    try:
        budget, fmax, timeout = float(cfg.dft_budget_s or 0), float(cfg.fmax), float(cfg.timeout_s)
    except (TypeError, ValueError):
        raise GencrystalError("dft_budget_s, fmax and timeout_s must be numbers") from None
    if budget < 0 or not fmax > 0 or not timeout > 0:
        raise GencrystalError(f"need dft_budget_s >= 0, fmax > 0 and timeout_s > 0 (got {budget}, {fmax}, {timeout})")
    pot = cfg.potential or {}  # None under ~potential
    settings = StageSettings(
        pressure_gpa=check_pressure(cfg.pressure, "pressure"),
        potential={k: (str(v) if v is not None else None) for k, v in pot.items() if k in ("name", "path", "device")},
        relax_steps=int(cfg.relax_steps),
        fmax=fmax,
        max_neighbours=int(cfg.max_neighbours),
        mlp_n=int(cfg.mlp_n),
        dft_n=int(cfg.dft_n),
        dft_budget_s=budget,
        validity_mode=str(cfg.validity_mode),
        workers=int(cfg.workers),
        timeout_s=timeout,
        metre=bool(cfg.metre),
    )
    refs = _read(ref, cfg.ref_selection, _int_or_none(cfg.limit, "limit"), "ref")
    frames = _frames_with_ref_id(pred, cfg.pred_selection)
    t0 = time.time()
    res = run_stages(refs, frames, outp, settings, dft=cfg.dft if settings.dft_n > 0 else None)
    res.update(pred=pred, ref=ref, n_ref=len(refs), n_pred=len(frames), wall_time_s=round(time.time() - t0, 1))
    write_json(_jsonable(res), outp / "stages.json")

    def fmt(x, pct=False):
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        return f"{100 * x:.2f}" if pct else f"{x:.4f}"

    for stage in ("mlp", "dft"):
        for r in (res.get(stage) or {}).get("rows", []):
            print(
                f"[{stage} table, n={r['n_ref']}] {r['label']}: match rate {fmt(r['match_rate'], True)} % "
                f"(no filter {fmt(r['match_rate_unfiltered'], True)} %), RMSE {fmt(r['rmse'])}, cRMSE {fmt(r['crmse'])}, "
                f"METRe {fmt(r.get('metre'), True)} %, METRe cRMSE {fmt(r.get('metre_crmse'))}"
            )
    print(f"wrote {outp / 'stages.json'}")
    return 0
