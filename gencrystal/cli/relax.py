"""``gencrystal relax``: MLP variable-cell relaxation of many structures at one pressure.

Writes, into ``out``:

- ``relaxed.extxyz`` — every structure, ranked by enthalpy per atom within its formula
  (failures last); info keys: energy, enthalpy_per_atom, pressure_gpa, converged, steps,
  potential, rmsd_from_input, space_group, rank, duplicate_of, error, ...
- ``summary.json`` — settings, counts and one row per structure;
- ``enthalpy_rank.png`` — enthalpy against rank per formula.

A killed run resumes: finished structures are checkpointed one file each in
``out/.partial/`` and skipped on the next run with the same settings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from gencrystal.config import instantiate
from gencrystal.errors import GencrystalError
from gencrystal.relax.result import RelaxResult


def run(cfg) -> int:
    """``gencrystal relax input=DIR|FILE|DB pressure=50 potential=chgnet out=DIR [db=data/hp.db]``."""
    from omegaconf import OmegaConf

    from gencrystal.db.results import write_to_db
    from gencrystal.io import read_structures, write_extxyz, write_json
    from gencrystal.potentials import build_potential
    from gencrystal.relax.engine import relax_structures
    from gencrystal.relax.runs import Checkpoint, plot_enthalpy_rank, rank_and_group, settings_key
    from gencrystal.runtime import thread_count
    from gencrystal.units import check_pressure

    pressure = check_pressure(cfg.pressure)
    if cfg.get("input") in (None, "", "???"):  # .get: None while input is still ??? (cfg.input would raise)
        raise GencrystalError("input= is required (a CIF/extxyz file, a folder of CIFs or an ASE .db)")
    if str(cfg.optimizer).upper() not in ("FIRE", "BFGS"):
        raise GencrystalError(f"optimizer={cfg.optimizer!r} is unknown; choose FIRE or BFGS")
    structures = read_structures(cfg.input, cfg.selection)
    potential = build_potential(cfg.potential)
    guard = instantiate(cfg.guard, "guard")
    fan = instantiate(cfg.cluster, "cluster")
    ids = [sid for sid, _ in structures]
    if len(set(ids)) != len(ids):
        ids = [f"{sid}-{i}" for i, sid in enumerate(ids)]
    out = Path(cfg.out)
    settings: dict = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    settings.pop("cluster", None)
    key = settings_key({k: v for k, v in settings.items() if k not in ("out", "db", "resume")}, ids)
    ckpt = Checkpoint(out, key)
    done, todo = ckpt.resume(len(structures), cfg.resume)
    if done:
        print(f"[relax] resuming: {len(done)} of {len(structures)} structures already relaxed")
    new = relax_structures(
        [structures[i][1] for i in todo],
        pressure,
        potential,
        optimizer=cfg.optimizer,
        fmax=cfg.fmax,
        steps=cfg.steps,
        guard=guard,
        batched=cfg.batched,
        batch_size=cfg.batch_size,
        workers=fan.workers,
        scheduler=fan.scheduler,
        chunk_size=fan.chunk_size,
        ids=[ids[i] for i in todo],
        torch_threads=fan.torch_threads,
        symprec=cfg.symprec,
        progress=True,
        on_result=lambda j, r: ckpt.save(todo[j], r),
    )
    results = ckpt.merge(len(structures), done, todo, new)
    order = rank_and_group(results, cfg.matcher)
    ranked = [results[i] for i in order]
    write_extxyz([r.atoms for r in ranked], out / "relaxed.extxyz")
    n_ok = sum(r.error is None for r in results)
    summary = {
        "pressure_gpa": pressure,
        "potential": ranked[0].level_of_theory if ranked else "",
        "threads": thread_count(),
        "n_structures": len(results),
        "n_converged": n_ok,
        "n_failed": len(results) - n_ok,
        "n_unique": sum(1 for r in results if r.error is None and not r.extra.get("duplicate_of")),
        "settings": settings,
        "structures": [_json_row(r) for r in ranked],
    }
    write_json(summary, out / "summary.json")
    plot_enthalpy_rank(ranked, out / "enthalpy_rank.png", f"{summary['potential']} at {pressure:g} GPa")
    added = 0
    if cfg.db:
        added = write_to_db(cfg.db, ranked, cfg.source, key)
    ckpt.clear()
    _print_table(ranked, summary, out, cfg.db, added)
    return 0


def _json_row(r: RelaxResult) -> dict:
    row = r.info()
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _print_table(ranked: Sequence[RelaxResult], summary: dict, out: Path, db, added: int) -> None:
    print(
        f"[relax] {summary['n_converged']}/{summary['n_structures']} converged, {summary['n_unique']} unique, "
        f"{summary['potential']} at {summary['pressure_gpa']:g} GPa -> {out}/relaxed.extxyz, summary.json"
        + (f"; {added} rows added to {db}" if db else "")
    )
    print(
        f"{'rank':>4}  {'id':<24} {'formula':<10} {'H (eV/atom)':>12} {'V (Å3/atom)':>11} {'steps':>5}  {'space group':<16} note"
    )
    for r in ranked[:20]:
        note = r.error or (f"= {r.extra['duplicate_of']}" if r.extra.get("duplicate_of") else "")
        print(
            f"{r.extra.get('rank', 0):>4}  {r.id[:24]:<24} {r.atoms.get_chemical_formula(mode='metal'):<10} "
            f"{r.enthalpy_per_atom:>12.4f} {r.volume_per_atom:>11.3f} {r.steps:>5}  {r.space_group:<16} {note}"
        )
    if len(ranked) > 20:
        print(f"... {len(ranked) - 20} more in summary.json")


def eos(cfg) -> int:
    """``gencrystal relax eos structure=FILE pressures=[0,25,50] potentials=[chgnet,sevenn] dft=gpaw out=DIR``."""
    from gencrystal.relax.eos import eos_check

    res = eos_check(cfg)
    if cfg.db:
        from gencrystal.db.results import write_to_db

        write_to_db(cfg.db, res["relax_results"], cfg.source, "eos")
    print(res["markdown"])
    print(f"[eos] -> {cfg.out}/eos.json, eos.md, eos.png" + (f"; reports/{cfg.report}.*" if cfg.report else ""))
    return 0
