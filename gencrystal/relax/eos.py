"""``gencrystal relax eos``: how far can a potential be trusted at a pressure?

For each structure and each pressure of a list, relax with every potential and with DFT
(variable cell, H = E + PV), then compare:

- volume per atom, MLP against DFT (error in %);
- the enthalpy change H(P) − H(P₀) along the pressure list (absolute energies of
  different methods are not comparable; differences are);
- the pressure the potential assigns to the DFT-relaxed geometry (a potential that is
  right gives back the target pressure);
- with several structures, the enthalpy of each relative to the first one (phase
  ordering) per method and pressure.

Pressures are visited in ascending order and each relaxation starts from the previous
pressure's result for the same method (``chain: true``), which keeps DFT cheap.
Outputs: ``eos.json``, ``eos.md``, ``eos.png`` in ``out`` and, with ``report=NAME``,
``reports/NAME.{json,md,png}`` with provenance.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Sequence

from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.relax.result import RelaxResult


def _dft_chain(backend, atoms: Atoms, pressures: Sequence[float], sid: str, chain: bool) -> list[RelaxResult]:
    """DFT relaxations of one structure over ascending pressures (module level for Dask)."""
    out: list[RelaxResult] = []
    start = atoms
    for p in pressures:
        r = backend.relax(start, p, sid=sid)
        out.append(r)
        if chain and r.error is None:
            start = r.atoms
    return out


def _mlp_chain(
    potential, atoms: Atoms, pressures: Sequence[float], sid: str, chain: bool, fmax: float, steps: int, guard
) -> list[RelaxResult]:
    from gencrystal.relax.engine import relax_structures

    out: list[RelaxResult] = []
    start = atoms
    for p in pressures:
        r = relax_structures([start], p, potential, fmax=fmax, steps=steps, guard=guard, ids=[sid], progress=False)[0]
        out.append(r)
        if chain and r.error is None:
            start = r.atoms
    return out


def _pressure_at(potential, atoms: Atoms) -> float:
    """−tr(σ)/3 in GPa that ``potential`` gives for ``atoms`` as they are."""
    from gencrystal.units import ev_per_a3_to_gpa

    try:
        pred = potential.predict([atoms])[0]
        return -ev_per_a3_to_gpa(float(sum(pred.stress[:3]) / 3.0))
    except Exception:
        return math.nan


def _nan_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def build_rows(
    ids: Sequence[str],
    pressures: Sequence[float],
    mlp: dict[str, dict[str, list[RelaxResult]]],
    dft: dict[str, list[RelaxResult]] | None,
    mlp_p_at_dft: dict[str, dict[str, list[float]]],
) -> list[dict]:
    """One row per (structure, pressure, method) with volumes, enthalpy differences and errors vs DFT."""
    rows: list[dict] = []
    methods: list[tuple[str, dict[str, list[RelaxResult]]]] = list(mlp.items())
    if dft is not None:
        methods.append(("dft", dft))
    for sid in ids:
        for method, per in methods:
            res = per[sid]
            h0 = res[0].enthalpy_per_atom
            for k, p in enumerate(pressures):
                r = res[k]
                row: dict[str, Any] = {
                    "structure": sid,
                    "pressure_gpa": p,
                    "method": method,
                    "level_of_theory": r.level_of_theory,
                    "volume_per_atom": r.volume_per_atom,
                    "enthalpy_per_atom": r.enthalpy_per_atom,
                    "dH_from_first_pressure": r.enthalpy_per_atom - h0,
                    "stress_pressure_gpa": r.stress_pressure_gpa,
                    "converged": bool(r.converged),
                    "error": r.error,
                    "space_group": r.space_group,
                }
                if dft is not None and method != "dft":
                    d = dft[sid][k]
                    row["volume_error_pct"] = 100.0 * (r.volume_per_atom - d.volume_per_atom) / d.volume_per_atom
                    row["dH_from_first_pressure_error"] = row["dH_from_first_pressure"] - (
                        d.enthalpy_per_atom - dft[sid][0].enthalpy_per_atom
                    )
                    row["pressure_at_dft_geometry_gpa"] = mlp_p_at_dft[method][sid][k]
                rows.append(row)
    if len(ids) > 1:  # phase ordering relative to the first structure
        ref = ids[0]
        index = {(row["structure"], row["method"], row["pressure_gpa"]): row for row in rows}
        for row in rows:
            row["dH_vs_first_structure"] = (
                row["enthalpy_per_atom"] - index[(ref, row["method"], row["pressure_gpa"])]["enthalpy_per_atom"]
            )
    return [{k: _nan_none(v) for k, v in r.items()} for r in rows]


def _fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def markdown(rows: Sequence[dict], ids: Sequence[str], title: str) -> str:
    """The comparison as markdown tables."""
    lines = [
        f"# {title}",
        "",
        "Volumes in Å³/atom, enthalpies in eV/atom, pressures in GPa. ΔH = H(P) − H(P₀) along the pressure list; "
        "'P at DFT geom.' is the pressure the potential assigns to the DFT-relaxed structure.",
        "",
        "| structure | P | method | V | V err % | ΔH(P−P₀) | ΔH err (meV/at) | P at DFT geom. | space group | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        err = r.get("dH_from_first_pressure_error")
        lines.append(
            f"| {r['structure']} | {r['pressure_gpa']:g} | {r['level_of_theory']} | {_fmt(r['volume_per_atom'], '.3f')} | "
            f"{_fmt(r.get('volume_error_pct'), '+.1f')} | {_fmt(r['dH_from_first_pressure'], '.4f')} | "
            f"{_fmt(None if err is None else 1000 * err, '+.0f')} | {_fmt(r.get('pressure_at_dft_geometry_gpa'), '.1f')} | "
            f"{r['space_group'] or '–'} | {r['error'] or 'ok'} |"
        )
    if len(ids) > 1:
        lines += ["", f"## Enthalpy relative to {ids[0]} (meV/atom)", "", "| structure | P | method | ΔH |", "|---|---|---|---|"]
        for r in rows:
            if r["structure"] != ids[0]:
                lines.append(
                    f"| {r['structure']} | {r['pressure_gpa']:g} | {r['level_of_theory']} | "
                    f"{_fmt(None if r.get('dH_vs_first_structure') is None else 1000 * r['dH_vs_first_structure'], '+.0f')} |"
                )
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], ids: Sequence[str], path: Path, title: str) -> None:
    """Left: V/atom against P per method; right: ΔH(P − P₀) (or ΔH vs the first structure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    methods = list(dict.fromkeys(r["level_of_theory"] for r in rows))
    markers = "osd^v<>"
    for si, sid in enumerate(ids):
        for mi, m in enumerate(methods):
            rs = [r for r in rows if r["structure"] == sid and r["level_of_theory"] == m]
            ls = "-" if m.startswith(("gpaw", "vasp", "qe")) else "--"
            label = m if len(ids) == 1 else f"{sid} {m}"
            axes[0].plot(
                [r["pressure_gpa"] for r in rs],
                [r["volume_per_atom"] if r["volume_per_atom"] is not None else math.nan for r in rs],
                ls,
                marker=markers[mi % len(markers)],
                color=f"C{mi}",
                alpha=1.0 if si == 0 else 0.6,
                label=label,
            )
            if len(ids) > 1 and si > 0:
                y = [1000 * r["dH_vs_first_structure"] if r.get("dH_vs_first_structure") is not None else math.nan for r in rs]
                axes[1].plot(
                    [r["pressure_gpa"] for r in rs], y, ls, marker=markers[mi % len(markers)], color=f"C{mi}", label=label
                )
            elif len(ids) == 1:
                y = [r["dH_from_first_pressure"] if r["dH_from_first_pressure"] is not None else math.nan for r in rs]
                axes[1].plot(
                    [r["pressure_gpa"] for r in rs], y, ls, marker=markers[mi % len(markers)], color=f"C{mi}", label=label
                )
    axes[0].set_xlabel("pressure (GPa)")
    axes[0].set_ylabel("volume (Å³/atom)")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("pressure (GPa)")
    if len(ids) > 1:
        axes[1].axhline(0, color="k", lw=0.6)
        axes[1].set_ylabel(f"H − H({ids[0]}) (meV/atom)")
    else:
        axes[1].set_ylabel("H(P) − H(P₀) (eV/atom)")
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def eos_check(cfg) -> dict:
    """MLP (and optionally DFT) relaxations of ``cfg.structure`` over ``cfg.pressures`` (GPa), from
    the composed ``conf/relax_eos.yaml``: writes ``eos.json``, ``eos.md`` and ``eos.png`` into
    ``cfg.out`` (and ``reports/<report>.*`` when ``report`` is set) and returns the ``eos.json``
    content plus ``markdown`` and ``relax_results`` (every :class:`RelaxResult`, MLP then DFT)."""
    from omegaconf import OmegaConf

    from gencrystal.config import instantiate
    from gencrystal.fanout import run_tasks
    from gencrystal.io import atomic_write, read_structures, write_json
    from gencrystal.potentials import as_potential
    from gencrystal.units import check_pressure

    if cfg.get("structure") in (None, "", "???"):  # .get: None while it is still ???
        raise GencrystalError("structure= is required (a CIF/extxyz file with one or more structures)")
    pressures = sorted(check_pressure(p, "pressures") for p in (cfg.pressures or []))
    if not pressures:
        raise GencrystalError("pressures= is empty; give e.g. pressures=[0,25,50] (GPa)")
    structures = read_structures(cfg.structure)
    ids = [sid for sid, _ in structures]
    if len(set(ids)) != len(ids):
        ids = [f"{sid}-{i}" for i, sid in enumerate(ids)]
    potentials = [as_potential(p) for p in (cfg.potentials or [])]
    backend = instantiate(cfg.dft, "dft") if cfg.dft else None
    if backend is not None and not getattr(backend, "runs_locally", True):
        raise GencrystalError(f"dft={backend.name} only writes inputs; the EOS check needs a DFT code that runs here (gpaw)")
    if not potentials and backend is None:
        raise GencrystalError("nothing to compare: give potentials=[...] and/or dft=gpaw")
    guard = instantiate(cfg.guard, "guard")
    fan = instantiate(cfg.cluster, "cluster")
    chain = bool(cfg.chain)
    out = Path(cfg.out)

    mlp: dict[str, dict[str, list[RelaxResult]]] = {}
    for pot in potentials:
        print(f"[eos] {pot.level_of_theory}: relaxing {len(ids)} structure(s) at {pressures} GPa")
        mlp[pot.level_of_theory] = {
            sid: _mlp_chain(pot, a, pressures, sid, chain, cfg.fmax, cfg.steps, guard) for sid, (_, a) in zip(ids, structures)
        }
    dft = None
    if backend is not None:
        chains = run_tasks(
            _dft_chain,
            [(backend, a, pressures, sid, chain) for sid, (_, a) in zip(ids, structures)],
            fan,
            label=f"eos DFT [{backend.level_of_theory}]",
        )
        dft = dict(zip(ids, chains))
    p_at_dft: dict[str, dict[str, list[float]]] = {}
    if dft is not None:
        for pot in potentials:
            p_at_dft[pot.level_of_theory] = {
                sid: [_pressure_at(pot, r.atoms) if r.error is None else math.nan for r in dft[sid]] for sid in ids
            }
    rows = build_rows(ids, pressures, mlp, dft, p_at_dft)
    title = f"EOS trust check: {', '.join(ids)} at {', '.join(f'{p:g}' for p in pressures)} GPa"
    md = markdown(rows, ids, title)
    settings = OmegaConf.to_container(cfg, resolve=True)
    result = {
        "structures": ids,
        "pressures_gpa": pressures,
        "methods": list(mlp) + ([backend.level_of_theory] if backend else []),
        "settings": settings,
        "rows": rows,
    }
    write_json(result, out / "eos.json")
    with atomic_write(out / "eos.md") as fh:
        fh.write(md)
    plot(rows, ids, out / "eos.png", title)
    if cfg.report:
        from gencrystal.reporting import REPORTS_DIR, write_report

        write_report(str(cfg.report), result, md + f"\n![EOS plot]({cfg.report}.png)\n")
        shutil.copyfile(out / "eos.png", REPORTS_DIR / f"{cfg.report}.png")
    allres = [r for per in mlp.values() for rs in per.values() for r in rs] + (
        [r for rs in dft.values() for r in rs] if dft else []
    )
    return {**result, "markdown": md, "relax_results": allres}
