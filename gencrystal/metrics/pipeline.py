"""What each stage of the CSP pipeline buys: raw samples -> MLP pre-relaxation -> DFT relaxation.

:func:`run_stages` takes samples (ASE Atoms whose ``info['ref_id']`` names their reference)
and the references, relaxes the samples of the ``mlp_n`` smallest references with an ML
potential at the pressure (GPa), then the MLP-relaxed samples of the ``dft_n`` smallest with
DFT, and scores each stage on the same references with :func:`score`: the standard match
rate / RMSE (with and without the validity filter), cRMSE, and METRe with its cRMSE
(:mod:`gencrystal.metrics.metre`). Each relaxation is cached per structure under
``run_dir`` (``mlp_cache/``, ``dft_cache/``: one extxyz per structure, keyed by the input
structure and the settings), so a killed run resumes where it stopped and a re-run
recomputes nothing. ``dft_budget_s`` bounds the DFT stage's wall time: a relaxation still
running when it is spent is stopped (and not cached) and no new one starts; the DFT table
then covers the references finished, and says so.

Samples flagged by the sampler's checks (``info['flagged']``: atoms < 0.5 Å apart, volume
per atom outside 1–200 Å³) and samples with more than ``max_neighbours`` atoms within 3 Å
of one atom (far denser than any real crystal; the relaxation's input guard) are kept as
sampled and count as they score.

Command line: ``gencrystal evaluate pipeline pred=samples.extxyz ref=test.csv out=DIR``
(``conf/evaluate_pipeline.yaml``); ``scripts/bench_mp20.py`` calls it for its stage table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from gencrystal.errors import GencrystalError
from gencrystal.fanout import progress_bar
from gencrystal.metrics.io import Entry


@dataclass
class StageSettings:
    """Settings of :func:`run_stages`.

    Attributes:
        pressure_gpa: relaxation pressure, GPa.
        potential: ML potential name (``chgnet``/``sevenn``), checkpoint path or loaded potential.
        relax_steps, fmax: MLP optimiser limits (FIRE, FrechetCellFilter; fmax in eV/Å).
        max_neighbours: samples with more atoms than this within 3 Å of one atom are not relaxed (0: never).
        mlp_n: relax the samples of the ``mlp_n`` smallest references (by atoms, then id); 0 skips.
        dft_n: DFT-relax the MLP-relaxed samples of the ``dft_n`` smallest; 0 skips.
        dft_budget_s: stop starting DFT relaxations after this many seconds (0: no limit).
        validity_mode, workers, timeout_s: scoring (:func:`gencrystal.metrics.csp.csp_metrics`).
        metre: also compute METRe/cRMSE for each stage.
        cutoff_check: > 1: also compute the stress of the first DFT-relaxed structure at this multiple
            of the DFT cutoff (:func:`cutoff_check`); 0 skips.
    """

    pressure_gpa: float = 0.0
    potential: Any = "chgnet"
    relax_steps: int = 300
    fmax: float = 0.05
    max_neighbours: int = 60
    mlp_n: int = 100
    dft_n: int = 20
    dft_budget_s: float = 0.0
    validity_mode: str = "paper"
    workers: int = 1
    timeout_s: float = 30.0
    metre: bool = True
    cutoff_check: float = 0.0


def as_entries(frames_or_entries: Sequence) -> list[Entry]:
    """Metric entries from ASE Atoms (id = ``info['ref_id']``, else the index) or entries as they are."""
    from gencrystal.structures import to_structure

    out = []
    for j, x in enumerate(frames_or_entries):
        if isinstance(x, Entry):
            out.append(x)
            continue
        try:
            s = to_structure(x)
        except Exception:  # a degenerate generated cell: scored as a miss
            s = None
        out.append(Entry(str(x.info.get("ref_id", j)), s, dict(x.info)))
    return out


def score(
    refs: Sequence[Entry],
    frames_or_entries: Sequence,
    label: str,
    validity_mode: str = "paper",
    workers: int = 1,
    timeout_s: float = 30.0,
    metre: bool = True,
) -> dict[str, Any]:
    """One table row: CSP metrics of samples paired to ``refs`` by ``ref_id``/``material_id``/``id``.

    Keys: ``match_rate``/``rmse``/``crmse`` (validity filter), ``*_unfiltered`` (none),
    ``metre``/``metre_crmse`` (when ``metre``), counts.
    """
    from gencrystal.metrics.csp import csp_metrics
    from gencrystal.metrics.io import pair_predictions

    preds = as_entries(frames_or_entries)
    cands, unpaired = pair_predictions(refs, preds, mode="id")
    m, _ = csp_metrics(refs, preds, cands, validity_mode=validity_mode, workers=workers, timeout_s=timeout_s, progress=False)
    w, wo = m["with_validity_filter"], m["without_validity_filter"]
    row = {
        "label": label,
        "n_ref": m["n_ref"],
        "n_pred": m["n_pred"],
        "k": m["protocol"]["k"],
        "match_rate": w["match_rate"],
        "rmse": w["rmse"],
        "crmse": w["crmse"],
        "match_rate_unfiltered": wo["match_rate"],
        "rmse_unfiltered": wo["rmse"],
        "crmse_unfiltered": wo["crmse"],
        "n_pred_valid": m["n_pred_valid"],
        "n_ref_valid": m["n_ref_valid"],
        "n_timeouts": m["n_timeouts"],
        "n_unpaired": len(unpaired),
    }
    if metre:
        from gencrystal.metrics.metre import metre_metrics

        me, _ = metre_metrics(refs, preds, workers=workers, timeout_s=timeout_s, progress=False)
        row.update(metre=me["metre"], metre_crmse=me["crmse"], metre_n_pairs=me["n_pairs"])
    return row


def smallest(refs: Sequence[Entry], n: int) -> list[Entry]:
    """The ``n`` references with the fewest atoms (ties by id)."""
    return sorted(refs, key=lambda e: (e.n_atoms, e.id))[: max(0, int(n))]


def niggli_copy(atoms):
    """A copy with the Niggli-reduced cell (same crystal). Samples keep skewed cells (angles near 10° seen) that
    make plane-wave DFT need many more grid points and k-points: a 2-atom NdAs sample ran > 25 min in GPAW."""
    from ase.build import niggli_reduce

    b = atoms.copy()
    niggli_reduce(b)
    return b


def _cache_path(run_dir: Path, stage: str, atoms, settings: Mapping) -> Path:
    from gencrystal.metrics.stability import structure_key

    key = structure_key(atoms, dict(settings))
    return run_dir / f"{stage}_cache" / f"{atoms.info['ref_id']}_{key[:16]}.extxyz"


def _cached(path: Path, ref_id: str) -> dict | None:
    """A relaxation stored by an earlier invocation, or None."""
    if not path.is_file():
        return None
    from ase import Atoms
    from ase.io import read

    b = read(str(path))
    if not isinstance(b, Atoms):  # one structure per cache file
        return None
    return {
        "atoms": b,
        "ref_id": ref_id,
        "converged": bool(b.info.get("converged")),
        "error": str(b.info.get("error", "")) or None,
        "wall_s": float(b.info.get("wall_s", 0.0)),
        "cached": True,
        "level_of_theory": str(b.info.get("level_of_theory", "")),
    }


def _store(path: Path, ref_id: str, result) -> dict:
    """Write one relaxation result atomically (extxyz) and return it in the cached form.

    The structure returned is the one read back from the file (extxyz keeps 8 decimals), so
    that a run scores exactly what a resumed run reading the cache scores."""
    from gencrystal.io import write_extxyz

    b = result.atoms.copy()
    b.info = {
        "ref_id": ref_id,
        "converged": bool(result.converged),
        "wall_s": float(result.wall_s),
        "level_of_theory": str(result.level_of_theory),
    }
    if result.error:  # (an empty string does not survive the extxyz comment line)
        b.info["error"] = str(result.error)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_extxyz([b], path)
    stored = _cached(path, ref_id)
    assert stored is not None, path
    return {
        "atoms": stored["atoms"],
        "ref_id": ref_id,
        "converged": bool(result.converged),
        "error": result.error,
        "wall_s": float(result.wall_s),
        "cached": False,
        "level_of_theory": str(result.level_of_theory),
    }


def _potential_name(potential) -> str:
    if isinstance(potential, (str, Path)):
        return str(potential)
    if isinstance(potential, Mapping):
        return str(potential.get("name") or potential.get("path") or "potential")
    return str(getattr(potential, "level_of_theory", type(potential).__name__))


def run_mlp_stage(refs: Sequence[Entry], frames: Sequence, run_dir: Path, s: StageSettings) -> tuple[dict, list, list]:
    """MLP pre-relaxation of the samples of the ``s.mlp_n`` smallest references; returns
    ``(summary, raw samples, relaxed samples)`` (same order; unrelaxed ones kept as sampled)."""
    from gencrystal.relax import RelaxGuard, relax_structures

    mlp_refs = smallest(refs, s.mlp_n)
    ids = {r.id for r in mlp_refs}
    raw = [a for a in frames if str(a.info.get("ref_id")) in ids]
    settings = {
        "stage": "mlp",
        "potential": _potential_name(s.potential),
        "pressure_gpa": s.pressure_gpa,
        "steps": s.relax_steps,
        "fmax": s.fmax,
        "optimizer": "FIRE",
    }
    todo = [i for i, a in enumerate(raw) if not a.info.get("flagged")]
    done: dict[int, dict] = {}
    for i in todo:
        hit = _cached(_cache_path(run_dir, "mlp", raw[i], settings), str(raw[i].info["ref_id"]))
        if hit is not None:
            done[i] = hit
    pending = [i for i in todo if i not in done]
    guard = RelaxGuard(max_neighbors=s.max_neighbours or None, neighbor_cutoff=3.0)
    t0 = time.time()

    def keep(k: int, result) -> None:  # cache each structure as soon as it is relaxed (resumable)
        i = pending[k]
        done[i] = _store(_cache_path(run_dir, "mlp", raw[i], settings), str(raw[i].info["ref_id"]), result)

    if pending:
        results = relax_structures(
            [raw[i].copy() for i in pending],
            s.pressure_gpa,
            s.potential,
            steps=s.relax_steps,
            fmax=s.fmax,
            guard=guard,
            workers=1,
            progress=True,
            ids=[f"{raw[i].info['ref_id']}#{i}" for i in pending],
            on_result=keep,
        )
        for k, result in enumerate(results):
            if pending[k] not in done:
                keep(k, result)
    too_dense = [i for i in todo if done[i]["error"] and "neighbours within" in str(done[i]["error"])]
    relaxed = {i: h for i, h in done.items() if i not in too_dense}
    mlp = []
    for i, a in enumerate(raw):
        b = relaxed[i]["atoms"].copy() if i in relaxed else a.copy()
        b.info = {"ref_id": a.info["ref_id"], "flagged": bool(a.info.get("flagged"))}
        mlp.append(b)
    res = list(relaxed.values())
    level = next((h["level_of_theory"] for h in res if h["level_of_theory"]), settings["potential"])
    summary = {
        "potential": level,
        "n_ref": len(mlp_refs),
        "steps": s.relax_steps,
        "fmax_eV_per_A": s.fmax,
        "pressure_gpa": s.pressure_gpa,
        "n_samples": len(raw),
        "n_relaxed": len(relaxed),
        "n_flagged_not_relaxed": len(raw) - len(todo),
        "n_too_dense_not_relaxed": len(too_dense),
        "max_neighbours_3A": s.max_neighbours,
        "converged": sum(bool(h["converged"]) for h in res),
        "failed": sum(bool(h["error"]) and not h["converged"] for h in res),
        "n_cached": sum(bool(h["cached"]) for h in res),
        "wall_s": round(sum(h["wall_s"] for h in res), 1),
        "wall_s_this_invocation": round(time.time() - t0, 1),
    }
    return summary, raw, mlp


class _BudgetSpent(BaseException):
    """Raised by SIGALRM when the DFT budget runs out (a BaseException, so library code cannot swallow it)."""


def _within(seconds: float | None, func, *args, **kwargs):
    """``func(*args, **kwargs)``, or None when it is still running after ``seconds`` (SIGALRM in the main
    thread, re-armed every second; no limit for None or off the main thread)."""
    import signal
    import threading

    if seconds is None or threading.current_thread() is not threading.main_thread():
        return func(*args, **kwargs)

    def alarm(signum, frame):
        raise _BudgetSpent()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 1.0)
    try:
        return func(*args, **kwargs)
    except _BudgetSpent:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _dft_loop(
    requested, mlp, run_dir: Path, s: StageSettings, backend, settings: Mapping, advance
) -> tuple[dict[str, list], list[str]]:
    """Relax (or read from the cache) the MLP-relaxed samples of each requested reference in turn. Once the
    DFT budget is spent nothing new starts, but references whose samples are all cached (by an earlier
    invocation or a second worker) still count. Returns ``({ref_id: relaxations}, references left out)``."""
    t0 = time.time()
    done: dict[str, list] = {}
    left_out: list[str] = []
    spent = False
    for ref in requested:
        rows, missing = [], False
        for a in (a for a in mlp if a.info["ref_id"] == ref.id and not a.info.get("flagged")):
            path = _cache_path(run_dir, "dft", a, settings)
            hit = _cached(path, ref.id)
            if hit is None and not spent:
                left = (s.dft_budget_s - (time.time() - t0)) if s.dft_budget_s else None
                if left is not None and left <= 0:
                    spent = True
                else:
                    result = _within(left, backend.relax, niggli_copy(a), s.pressure_gpa, sid=ref.id)
                    if result is None:  # the budget ran out inside this relaxation: nothing cached, a re-run redoes it
                        spent = True
                    else:
                        hit = _store(path, ref.id, result)
            if hit is None:
                missing = True
                continue
            rows.append(hit)
        if missing:
            left_out.append(ref.id)
            continue
        done[ref.id] = rows
        if advance is not None:
            advance(1)
    return done, left_out


def run_dft_stage(
    refs: Sequence[Entry], mlp: Sequence, run_dir: Path, s: StageSettings, backend, settings: Mapping
) -> tuple[dict, list[Entry], list]:
    """DFT relaxation of the MLP-relaxed samples of the ``s.dft_n`` smallest references (smallest
    first, each cached); returns ``(summary, references done, DFT-relaxed samples)``."""
    requested = smallest(refs, s.dft_n)
    settings = {**dict(settings), "input_cell": "niggli", "pressure_gpa": s.pressure_gpa}
    t0 = time.time()
    with progress_bar(len(requested), True, f"DFT [{backend.level_of_theory}]") as advance:
        done, left_out = _dft_loop(requested, mlp, run_dir, s, backend, settings, advance)
    dft_refs = [r for r in requested if r.id in done]
    ids = {r.id for r in dft_refs}
    flagged = [a.copy() for a in mlp if a.info["ref_id"] in ids and a.info.get("flagged")]
    dres = [h for r in dft_refs for h in done[r.id]]
    dft = []
    for h in dres:
        b = h["atoms"].copy()
        b.info = {"ref_id": h["ref_id"]}
        dft.append(b)
    dft += flagged  # not computed: kept as sampled
    summary = {
        "level_of_theory": backend.level_of_theory,
        "settings": dict(settings),
        "n_ref": len(dft_refs),
        "n_requested": len(requested),
        "budget_s": s.dft_budget_s,
        "stopped_by_budget_before": left_out[0] if left_out else None,
        "left_out_by_budget": left_out,
        "ref_ids": [r.id for r in dft_refs],
        "converged": sum(bool(h["converged"]) for h in dres),
        "n_computed": len(dres),
        "n_cached": sum(bool(h["cached"]) for h in dres),
        "errors": [h["error"] for h in dres if h["error"]],
        "n_flagged_not_computed": len(flagged),
        "wall_s": round(sum(h["wall_s"] for h in dres), 1),
        "wall_s_this_invocation": round(time.time() - t0, 1),
    }
    return summary, dft_refs, dft


def cutoff_check(backend, atoms, factor: float, cache: Path) -> dict | None:
    """Basis-set check of a plane-wave DFT backend on one structure: the stress pressure (GPa) and
    energy (eV/atom) of ``atoms`` as given, at the backend's cutoff and at ``factor`` times it with the
    same k-point grid; ``delta_gpa`` = P(ecut) − P(factor·ecut) estimates the Pulay error of the stresses
    that drive the DFT relaxations. Cached as JSON in ``cache``; None when ``factor`` <= 1 or the
    backend has no ``ecut``."""
    import dataclasses
    import json

    from gencrystal.io import write_json
    from gencrystal.units import ev_per_a3_to_gpa

    replaceable = bool(dataclasses.is_dataclass(backend)) and not isinstance(backend, type)
    if factor <= 1.0 or not hasattr(backend, "ecut") or not replaceable:
        return None
    hi = dataclasses.replace(backend, ecut=float(backend.ecut) * factor, kpts=backend.kgrid(atoms))
    key = f"{atoms.info.get('ref_id', '')}:{backend.ecut:g}->{hi.ecut:g}"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in done:
        out: dict[str, Any] = {"ref_id": str(atoms.info.get("ref_id", "")), "formula": atoms.get_chemical_formula()}
        for name, be in (("low", backend), ("high", hi)):
            a = atoms.copy()
            a.calc = be.calculator(a)
            t0 = time.perf_counter()
            out[f"pressure_{name}_gpa"] = float(ev_per_a3_to_gpa(-a.get_stress()[:3].mean()))
            out[f"energy_{name}_ev_per_atom"] = float(a.get_potential_energy() / len(a))
            out[f"wall_{name}_s"] = round(time.perf_counter() - t0, 1)
        out.update(
            ecut_low_ev=float(backend.ecut),
            ecut_high_ev=float(hi.ecut),
            delta_gpa=out["pressure_low_gpa"] - out["pressure_high_gpa"],
        )
        done[key] = out
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(done, cache)
    return done[key]


def run_stages(
    refs: Sequence[Entry],
    frames: Sequence,
    run_dir: str | Path,
    settings: StageSettings | None = None,
    dft: Mapping | Any | None = None,
    progress_label: str = "",
) -> dict[str, Any]:
    """Raw -> MLP -> DFT on the same references, scored at each stage (module doc).

    ``frames``: ASE Atoms with ``info['ref_id']``. ``dft``: a composed ``conf/dft/*.yaml`` node
    (instantiated with Hydra) or a backend with ``relax(atoms, pressure_gpa, sid)`` and
    ``level_of_theory``; None skips the DFT stage. Returns ``{"settings", "mlp", "dft"}``,
    each stage with its ``rows`` (one per stage scored) and wall times (s); writes
    ``samples_mlp_relaxed.extxyz`` and ``samples_dft_relaxed.extxyz`` under ``run_dir``.
    """
    from gencrystal.io import write_extxyz

    s = settings or StageSettings()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    missing = [i for i, a in enumerate(frames) if "ref_id" not in a.info]
    if missing:
        raise GencrystalError(f"sample {missing[0]} has no info['ref_id'] naming its reference")
    for a in frames:  # extxyz reads numeric ids (perov-5's) back as int
        a.info["ref_id"] = str(a.info["ref_id"])
    out: dict[str, Any] = {
        "settings": {k: (v if isinstance(v, (int, float, str, bool)) else _potential_name(v)) for k, v in asdict(s).items()}
    }
    if s.mlp_n <= 0:
        return out
    sc: dict[str, Any] = dict(validity_mode=s.validity_mode, workers=s.workers, timeout_s=s.timeout_s, metre=s.metre)
    mlp_sum, raw, mlp = run_mlp_stage(refs, frames, run_dir, s)
    write_extxyz(mlp, run_dir / "samples_mlp_relaxed.extxyz")
    mlp_refs = smallest(refs, s.mlp_n)
    mlp_sum["rows"] = [
        score(mlp_refs, raw, "raw samples", **sc),
        score(mlp_refs, mlp, f"after MLP pre-relax ({mlp_sum['potential']})", **sc),
    ]
    out["mlp"] = mlp_sum
    if s.dft_n <= 0 or dft is None:
        return out
    if isinstance(dft, Mapping) or hasattr(dft, "_target_") or type(dft).__name__ == "DictConfig":
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        node = OmegaConf.create(dict(dft)) if isinstance(dft, Mapping) and type(dft).__name__ != "DictConfig" else dft
        container = OmegaConf.to_container(node, resolve=True)
        assert isinstance(container, dict)  # node is a mapping
        backend, dft_settings = instantiate(node), container
    else:
        backend, dft_settings = dft, {"level_of_theory": str(getattr(dft, "level_of_theory", type(dft).__name__))}
    dsum, dft_refs, dft_frames = run_dft_stage(refs, mlp, run_dir, s, backend, dft_settings)
    if s.cutoff_check > 1.0 and dsum["n_computed"]:  # on the first DFT-relaxed structure (not a raw sample)
        try:
            dsum["cutoff_check"] = cutoff_check(
                backend, niggli_copy(dft_frames[0]), s.cutoff_check, run_dir / "cutoff_check.json"
            )
        except Exception as exc:  # reported, not fatal: the stage table stands without it
            dsum["cutoff_check"] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    write_extxyz(dft_frames, run_dir / "samples_dft_relaxed.extxyz")
    ids = {r.id for r in dft_refs}
    if dft_refs:
        dsum["rows"] = [
            score(dft_refs, [a for a in raw if a.info["ref_id"] in ids], "raw samples", **sc),
            score(dft_refs, [a for a in mlp if a.info["ref_id"] in ids], "after MLP pre-relax", **sc),
            score(dft_refs, dft_frames, f"after DFT relax ({dsum['level_of_theory']})", **sc),
        ]
    else:
        dsum["rows"] = []
    out["dft"] = dsum
    return out
