"""``gencrystal validate``: DFT check of the best ML-relaxed structures at the same pressure.

Takes the ``top_k`` lowest-enthalpy unique, converged structures of a ``gencrystal
relax`` output (or any structures), relaxes each with DFT (GPAW by default) at the same
pressure, and records per structure: DFT energy and enthalpy, volume change, the
MLP→DFT displacement RMSD, whether the structure stays the same (StructureMatcher),
and over the set the MLP-vs-DFT enthalpy-ranking agreement (Spearman ρ per formula).
With ``dft=vasp`` it writes VASP input folders instead (nothing is computed).

Outputs in ``out``: ``dft_relaxed.extxyz``, ``validation.json``, ``validation.md``,
``mlp_vs_dft.png`` (or ``vasp/<id>/`` folders). Finished DFT jobs are checkpointed in
``out/.partial`` and skipped when the run is repeated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.relax.result import RelaxResult


def _finite(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def load_candidates(path: str, selection: str | None = None) -> list[tuple[str, Atoms]]:
    """Structures of a relax output folder (its ``relaxed.extxyz``) or any structure input."""
    from gencrystal.io import read_structures

    p = Path(path)
    if p.is_dir() and (p / "relaxed.extxyz").is_file():
        p = p / "relaxed.extxyz"
    return read_structures(str(p), selection)


def select_top_k(
    structures: Sequence[tuple[str, Atoms]], top_k: int, include_duplicates: bool = False
) -> list[tuple[str, Atoms]]:
    """The ``top_k`` lowest MLP enthalpies among converged, error-free (and unique) structures.

    Structures without an MLP enthalpy (plain CIFs) keep their input order after those with one.
    """
    keep = []
    for sid, a in structures:
        info = a.info
        if info.get("error") or (("converged" in info) and not bool(info["converged"])):
            continue
        if not include_duplicates and info.get("duplicate_of"):
            continue
        keep.append((sid, a))
    keep.sort(
        key=lambda t: (
            (0, _finite(t[1].info["enthalpy_per_atom"]))
            if math.isfinite(_finite(t[1].info.get("enthalpy_per_atom")))
            else (1, 0.0)
        )
    )
    return keep[:top_k]


def _dft_task(backend, atoms: Atoms, pressure_gpa: float, sid: str) -> RelaxResult:
    """One DFT relaxation (module-level so Dask can ship it)."""
    return backend.relax(atoms, pressure_gpa, sid=sid)


def compare(mlp_atoms: Atoms, dft: RelaxResult, matcher_kind: str = "csp") -> dict[str, Any]:
    """Per-structure MLP-vs-DFT comparison row (eV/atom, Å³/atom, Å, GPa)."""
    from gencrystal.matching import make_matcher
    from gencrystal.relax.analysis import rmsd_same_order, space_group
    from gencrystal.structures import to_structure

    mlp_v = mlp_atoms.get_volume() / len(mlp_atoms)
    row: dict[str, Any] = {
        "id": dft.id,
        "formula": mlp_atoms.get_chemical_formula(mode="metal"),
        "mlp_level_of_theory": str(mlp_atoms.info.get("level_of_theory", mlp_atoms.info.get("potential", ""))),
        "mlp_enthalpy_per_atom": _finite(mlp_atoms.info.get("enthalpy_per_atom")),
        "mlp_volume_per_atom": mlp_v,
        "mlp_space_group": str(mlp_atoms.info.get("space_group") or space_group(mlp_atoms)),
        "dft_level_of_theory": dft.level_of_theory,
        "dft_energy_per_atom": dft.energy_per_atom,
        "dft_enthalpy_per_atom": dft.enthalpy_per_atom,
        "dft_volume_per_atom": dft.volume_per_atom,
        "dft_pressure_gpa": dft.stress_pressure_gpa,
        "dft_space_group": dft.space_group,
        "dft_converged": bool(dft.converged),
        "dft_steps": int(dft.steps),
        "dft_error": dft.error,
        "dft_wall_s": round(float(dft.wall_s), 2),
        "volume_change_pct": 100.0 * (dft.volume_per_atom - mlp_v) / mlp_v,
        "rmsd_mlp_to_dft": rmsd_same_order(mlp_atoms, dft.atoms),
        "same_structure": None,
    }
    if dft.error is None:
        try:
            row["same_structure"] = bool(make_matcher(matcher_kind).fit(to_structure(mlp_atoms), to_structure(dft.atoms)))
        except Exception:
            row["same_structure"] = None
    return row


def ranking_agreement(rows: Sequence[dict]) -> dict[str, Any]:
    """Spearman ρ of MLP vs DFT enthalpies per formula, and whether the MLP's lowest is DFT's lowest."""
    from gencrystal.relax.analysis import spearman

    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["dft_error"] is None and math.isfinite(r["mlp_enthalpy_per_atom"]) and math.isfinite(r["dft_enthalpy_per_atom"]):
            reduced = Atoms(r["formula"]).get_chemical_formula(mode="metal", empirical=True)
            by.setdefault(reduced, []).append(r)
    out: dict[str, Any] = {}
    for formula, rs in sorted(by.items()):
        mlp = [r["mlp_enthalpy_per_atom"] for r in rs]
        dft = [r["dft_enthalpy_per_atom"] for r in rs]
        rho = spearman(mlp, dft)
        out[formula] = {
            "n": len(rs),
            "spearman": None if math.isnan(rho) else rho,
            "mlp_best": rs[min(range(len(rs)), key=lambda i: mlp[i])]["id"],
            "dft_best": rs[min(range(len(rs)), key=lambda i: dft[i])]["id"],
        }
        out[formula]["best_agrees"] = out[formula]["mlp_best"] == out[formula]["dft_best"]
    return out


def plot_mlp_vs_dft(rows: Sequence[dict], path: Path, title: str) -> None:
    """ΔH_MLP against ΔH_DFT (meV/atom, relative to each formula's lowest), one colour per formula."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    fig, ax = plt.subplots(figsize=(5, 5))
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["dft_error"] is None and math.isfinite(r["mlp_enthalpy_per_atom"]):
            by.setdefault(Atoms(r["formula"]).get_chemical_formula(mode="metal", empirical=True), []).append(r)
    for formula, rs in sorted(by.items()):
        m0 = min(r["mlp_enthalpy_per_atom"] for r in rs)
        d0 = min(r["dft_enthalpy_per_atom"] for r in rs)
        ax.plot(
            [1000 * (r["mlp_enthalpy_per_atom"] - m0) for r in rs],
            [1000 * (r["dft_enthalpy_per_atom"] - d0) for r in rs],
            "o",
            label=formula,
        )
    lim = ax.get_xlim()[1] if by else 1.0
    ax.plot([0, lim], [0, lim], "k:", lw=0.8)
    ax.set_xlabel("ΔH MLP (meV/atom)")
    ax.set_ylabel("ΔH DFT (meV/atom)")
    ax.set_title(title)
    if by:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def _markdown(rows: Sequence[dict], agreement: dict, pressure: float, level: str) -> str:
    lines = [
        f"# DFT validation at {pressure:g} GPa ({level})",
        "",
        "| id | formula | H_MLP (eV/at) | H_DFT (eV/at) | V_MLP → V_DFT (Å³/at) | ΔV % | RMSD (Å) | same | SG MLP → DFT | P_DFT (GPa) | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        status = r["dft_error"] or "ok"
        lines.append(
            f"| {r['id']} | {r['formula']} | {r['mlp_enthalpy_per_atom']:.4f} | {r['dft_enthalpy_per_atom']:.4f} | "
            f"{r['mlp_volume_per_atom']:.3f} → {r['dft_volume_per_atom']:.3f} | {r['volume_change_pct']:+.1f} | "
            f"{r['rmsd_mlp_to_dft']:.3f} | {r['same_structure']} | {r['mlp_space_group']} → {r['dft_space_group'] or '-'} | "
            f"{r['dft_pressure_gpa']:.2f} | {status} |"
        )
    lines += [
        "",
        "## Ranking agreement (per formula)",
        "",
        "| formula | n | Spearman ρ | MLP best | DFT best | agree |",
        "|---|---|---|---|---|---|",
    ]
    for f, a in agreement.items():
        rho = "n/a" if a["spearman"] is None else f"{a['spearman']:.3f}"
        lines.append(f"| {f} | {a['n']} | {rho} | {a['mlp_best']} | {a['dft_best']} | {a['best_agrees']} |")
    return "\n".join(lines) + "\n"


def _resolve_pressure(cfg, picked: Sequence[tuple[str, Atoms]]) -> float:
    from gencrystal.units import check_pressure

    if cfg.pressure is not None:
        return check_pressure(cfg.pressure)
    ps = {round(_finite(a.info.get("pressure_gpa")), 6) for _, a in picked}
    if len(ps) != 1 or not all(math.isfinite(p) for p in ps):
        raise GencrystalError("pressure= is required: the input structures carry no single recorded pressure_gpa")
    return check_pressure(ps.pop())


def validate(cfg) -> dict[str, Any]:
    """DFT re-relaxation of the top-k MLP structures of ``cfg.input`` at the same pressure (GPa),
    from the composed ``conf/validate.yaml``; resumable (``out/.partial``).

    Writes ``validation.json``, ``validation.md``, ``dft_relaxed.extxyz`` and ``mlp_vs_dft.png``
    into ``cfg.out`` (or, for a backend that only writes inputs, e.g. VASP, the input folders and
    ``validation.json``) and returns the ``validation.json`` content plus ``markdown`` and
    ``rows_added`` (database rows written, when ``db`` is set)."""
    from omegaconf import OmegaConf

    from gencrystal.config import instantiate
    from gencrystal.db.results import write_to_db
    from gencrystal.fanout import run_tasks
    from gencrystal.io import write_extxyz, write_json
    from gencrystal.relax.runs import Checkpoint, settings_key
    from gencrystal.units import check_pressure

    if cfg.pressure is not None:
        check_pressure(cfg.pressure)
    try:
        top_k = int(cfg.top_k)
    except (TypeError, ValueError):
        raise GencrystalError(f"top_k={cfg.top_k!r} is not an integer") from None
    if top_k < 1:
        raise GencrystalError(f"top_k={top_k} must be >= 1")
    if cfg.get("input") in (None, "", "???"):  # .get: None while input is still ??? (cfg.input would raise)
        raise GencrystalError("input= is required (a relax output folder, a structure file/folder or an ASE .db)")
    structures = load_candidates(str(cfg.input), cfg.selection)
    picked = select_top_k(structures, top_k, bool(cfg.include_duplicates))
    if not picked:
        raise GencrystalError(f"no converged, error-free structure to validate in {str(cfg.input)!r}")
    pressure = _resolve_pressure(cfg, picked)
    backend = instantiate(cfg.dft, "dft")
    fan = instantiate(cfg.cluster, "cluster")
    out = Path(cfg.out)

    if not getattr(backend, "runs_locally", True):  # VASP: write inputs only
        folders = [str(backend.write_inputs(a, pressure, out / backend.name / sid)) for sid, a in picked]
        written = {
            "pressure_gpa": pressure,
            "backend": backend.name,
            "inputs_written": folders,
            "ids": [sid for sid, _ in picked],
        }
        write_json(written, out / "validation.json")
        return {**written, "inputs_dir": str(out / backend.name)}

    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)  # cfg is a DictConfig
    key = settings_key(
        {k: v for k, v in settings.items() if k not in ("out", "db", "resume", "cluster")}, [sid for sid, _ in picked]
    )
    ckpt = Checkpoint(out, key)
    done, todo = ckpt.resume(len(picked), cfg.resume)
    if done:
        print(f"[validate] resuming: {len(done)} of {len(picked)} DFT relaxations already done")

    def on_error(j: int, exc: BaseException) -> RelaxResult:
        sid, a = picked[todo[j]]
        res = RelaxResult(
            atoms=Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True),
            pressure_gpa=pressure,
            error=f"{type(exc).__name__}: {exc}",
            level_of_theory=backend.level_of_theory,
            id=sid,
        )
        res.atoms.info.update(res.info())
        return res

    new = run_tasks(
        _dft_task,
        [(backend, picked[i][1], pressure, picked[i][0]) for i in todo],
        fan,
        label=f"DFT [{backend.level_of_theory}]",
        on_result=lambda j, r: ckpt.save(todo[j], r),
        on_error=on_error,
    )
    dft = ckpt.merge(len(picked), done, todo, new)
    rows = [compare(a, r, cfg.matcher) for (sid, a), r in zip(picked, dft)]
    agreement = ranking_agreement(rows)
    for r, row in zip(dft, rows):
        r.extra.update(
            {
                "same_structure": bool(row["same_structure"]) if row["same_structure"] is not None else "",
                "rmsd_mlp_to_dft": row["rmsd_mlp_to_dft"],
                "mlp_enthalpy_per_atom": row["mlp_enthalpy_per_atom"],
            }
        )
        r.atoms.info.update(r.info())
    write_extxyz([r.atoms for r in dft], out / "dft_relaxed.extxyz")
    clean_rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows]
    result = {
        "pressure_gpa": pressure,
        "dft": settings.get("dft"),
        "level_of_theory": backend.level_of_theory,
        "n_validated": len(rows),
        "n_dft_ok": sum(r.error is None for r in dft),
        "n_same_structure": sum(1 for row in rows if row["same_structure"]),
        "ranking_agreement": agreement,
        "structures": clean_rows,
    }
    write_json(result, out / "validation.json")
    from gencrystal.io import atomic_write

    with atomic_write(out / "validation.md") as fh:
        fh.write(_markdown(rows, agreement, pressure, backend.level_of_theory))
    plot_mlp_vs_dft(rows, out / "mlp_vs_dft.png", f"{backend.level_of_theory} at {pressure:g} GPa")
    added = write_to_db(cfg.db, dft, cfg.source, key) if cfg.db else 0
    ckpt.clear()
    return {**result, "markdown": _markdown(rows, agreement, pressure, backend.level_of_theory), "rows_added": added}
