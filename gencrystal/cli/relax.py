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

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Sequence

from gencrystal.errors import GencrystalError
from gencrystal.relax.result import RelaxResult, result_from_atoms


def instantiate(node: Any, what: str):
    """``hydra.utils.instantiate`` that lets a GencrystalError raised by the target through
    as itself (Hydra wraps it) and turns other failures into one line naming ``what``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, GencrystalError):
            cause = cause.__cause__
        if isinstance(cause, GencrystalError):
            raise cause from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GencrystalError(f"bad {what} configuration: {first}") from exc
    except GencrystalError:
        raise
    except Exception as exc:
        raise GencrystalError(f"bad {what} configuration: {exc}") from exc


def rank_and_group(results: Sequence[RelaxResult], matcher: str = "csp") -> list[int]:
    """Order (indices into ``results``): successful structures by formula, then enthalpy per
    atom; failures last. Sets ``rank`` (1-based within formula, 0 for failures) and
    ``duplicate_of`` (id of the lowest-enthalpy structure it matches, '' if unique) in
    each result's ``extra`` and ``atoms.info``."""
    from gencrystal.relax.analysis import group_duplicates

    ok = [i for i, r in enumerate(results) if r.error is None and math.isfinite(r.enthalpy_per_atom)]
    bad = [i for i in range(len(results)) if i not in set(ok)]
    ok.sort(key=lambda i: (results[i].atoms.get_chemical_formula(mode="metal", empirical=True),
                           results[i].enthalpy_per_atom))
    labels = group_duplicates([results[i].atoms for i in ok], matcher) if ok else []
    counter: dict[str, int] = {}
    for pos, i in enumerate(ok):
        r = results[i]
        formula = r.atoms.get_chemical_formula(mode="metal", empirical=True)
        counter[formula] = counter.get(formula, 0) + 1
        rep = ok[labels[pos]]
        r.extra["rank"] = counter[formula]
        r.extra["duplicate_of"] = "" if rep == i else results[rep].id
    for i in bad:
        results[i].extra["rank"] = 0
        results[i].extra["duplicate_of"] = ""
    for r in results:
        r.atoms.info.update(r.info())
    return ok + bad


def _settings_key(cfg_dict: dict, ids: list[str]) -> str:
    text = json.dumps({"cfg": cfg_dict, "ids": ids}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """One extxyz file per finished structure in ``out/.partial``, valid for one settings key."""

    def __init__(self, out: Path, key: str):
        self.dir = out / ".partial"
        self.key = key

    def load(self) -> dict[int, RelaxResult]:
        from ase.io import read

        stamp = self.dir / "settings.key"
        if not stamp.exists() or stamp.read_text().strip() != self.key:
            return {}
        done = {}
        for f in sorted(self.dir.glob("*.extxyz")):
            try:
                done[int(f.stem)] = result_from_atoms(read(str(f), format="extxyz"))
            except Exception:
                continue  # a torn file is simply redone
        return done

    def start(self) -> None:
        stamp = self.dir / "settings.key"
        if stamp.exists() and stamp.read_text().strip() != self.key:
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(self.key + "\n")

    def resume(self, n: int, resume: bool = True) -> tuple[dict[int, RelaxResult], list[int]]:
        """Start (or continue) a run of ``n`` structures: the results already saved under the
        same settings key (none when ``resume`` is false) and the indices still to do."""
        done = self.load() if resume else {}
        self.start()
        return done, [i for i in range(n) if i not in done]

    @staticmethod
    def merge(n: int, done: dict[int, RelaxResult], todo: Sequence[int], new: Sequence[RelaxResult]) -> list[RelaxResult]:
        """The full, ordered result list from the resumed ``done`` and the ``new`` results of ``todo``."""
        results: list[RelaxResult] = [None] * n  # type: ignore[list-item]
        for i, r in done.items():
            results[i] = r
        for i, r in zip(todo, new):
            results[i] = r
        return results

    def save(self, index: int, result: RelaxResult) -> None:
        from gencrystal.io import write_extxyz

        write_extxyz([result.atoms], self.dir / f"{index:07d}.extxyz")

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def write_to_db(db_url: str, results: Sequence[RelaxResult], source: str, run_key: str,
                include_failed: bool = False) -> int:
    """Add results to the structure database (schema keys + converged/steps/space_group);
    a row already written by the same run (``run_key``) is not written twice. Returns rows added."""
    from gencrystal.db.schema import add_structure, connect

    db = connect(db_url)
    added = 0
    for r in results:
        if r.error is not None and not include_failed:
            continue
        key = f"{run_key}:{r.id}"
        if db.count(relax_key=key) > 0:
            continue
        add_structure(db, r.atoms, pressure_gpa=r.pressure_gpa, level_of_theory=r.level_of_theory, source=source,
                      energy_per_atom=r.energy_per_atom, enthalpy_per_atom=r.enthalpy_per_atom,
                      volume_per_atom=r.volume_per_atom, converged=bool(r.converged), steps=int(r.steps),
                      space_group=r.space_group, rmsd_from_input=r.rmsd_from_input, material_id=r.id,
                      relax_key=key)
        added += 1
    return added


def plot_enthalpy_rank(results: Sequence[RelaxResult], path: Path, title: str) -> None:
    """Enthalpy per atom against rank, one line per formula (successful structures only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    by_formula: dict[str, list[RelaxResult]] = {}
    for r in results:
        if r.error is None and math.isfinite(r.enthalpy_per_atom):
            by_formula.setdefault(r.atoms.get_chemical_formula(mode="metal", empirical=True), []).append(r)
    fig, ax = plt.subplots(figsize=(6, 4))
    for formula, rows in sorted(by_formula.items()):
        rows = sorted(rows, key=lambda r: r.enthalpy_per_atom)
        h0 = rows[0].enthalpy_per_atom
        ax.plot(range(1, len(rows) + 1), [1000 * (r.enthalpy_per_atom - h0) for r in rows], "o-", label=formula)
    ax.set_xlabel("rank")
    ax.set_ylabel("H − H_min (meV/atom)")
    ax.set_title(title)
    if by_formula:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def run(cfg) -> int:
    """``gencrystal relax input=DIR|FILE|DB pressure=50 potential=chgnet out=DIR [db=data/hp.db]``."""
    from omegaconf import OmegaConf

    from gencrystal.io import read_structures, write_extxyz, write_json
    from gencrystal.relax.engine import relax_structures
    from gencrystal.units import check_pressure

    pressure = check_pressure(cfg.pressure)
    if cfg.get("input") in (None, "", "???"):
        raise GencrystalError("input= is required (a CIF/extxyz file, a folder of CIFs or an ASE .db)")
    if str(cfg.optimizer).upper() not in ("FIRE", "BFGS"):
        raise GencrystalError(f"optimizer={cfg.optimizer!r} is unknown; choose FIRE or BFGS")
    structures = read_structures(cfg.input, cfg.get("selection"))
    potential = instantiate(cfg.potential, "potential")
    guard = instantiate(cfg.guard, "guard")
    fan = instantiate(cfg.cluster, "cluster")
    ids = [sid for sid, _ in structures]
    if len(set(ids)) != len(ids):
        ids = [f"{sid}-{i}" for i, sid in enumerate(ids)]
    out = Path(cfg.out)
    settings = OmegaConf.to_container(cfg, resolve=True)
    settings.pop("cluster", None)
    key = _settings_key({k: v for k, v in settings.items() if k not in ("out", "db", "resume")}, ids)
    ckpt = Checkpoint(out, key)
    done, todo = ckpt.resume(len(structures), cfg.get("resume", True))
    if done:
        print(f"[relax] resuming: {len(done)} of {len(structures)} structures already relaxed")
    new = relax_structures([structures[i][1] for i in todo], pressure, potential, optimizer=cfg.optimizer,
                           fmax=cfg.fmax, steps=cfg.steps, guard=guard, batched=cfg.batched,
                           batch_size=cfg.batch_size, workers=fan.workers, scheduler=fan.scheduler,
                           chunk_size=fan.chunk_size, ids=[ids[i] for i in todo], torch_threads=fan.torch_threads,
                           symprec=cfg.symprec, progress=True,
                           on_result=lambda j, r: ckpt.save(todo[j], r))
    results = ckpt.merge(len(structures), done, todo, new)
    order = rank_and_group(results, cfg.matcher)
    ranked = [results[i] for i in order]
    write_extxyz([r.atoms for r in ranked], out / "relaxed.extxyz")
    n_ok = sum(r.error is None for r in results)
    summary = {
        "pressure_gpa": pressure,
        "potential": ranked[0].level_of_theory if ranked else "",
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
    if cfg.get("db"):
        added = write_to_db(cfg.db, ranked, cfg.get("source", "relax"), key)
    ckpt.clear()
    _print_table(ranked, summary, out, cfg.get("db"), added)
    return 0


def _json_row(r: RelaxResult) -> dict:
    row = r.info()
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _print_table(ranked: Sequence[RelaxResult], summary: dict, out: Path, db, added: int) -> None:
    print(f"[relax] {summary['n_converged']}/{summary['n_structures']} converged, {summary['n_unique']} unique, "
          f"{summary['potential']} at {summary['pressure_gpa']:g} GPa -> {out}/relaxed.extxyz, summary.json"
          + (f"; {added} rows added to {db}" if db else ""))
    print(f"{'rank':>4}  {'id':<24} {'formula':<10} {'H (eV/atom)':>12} {'V (Å3/atom)':>11} {'steps':>5}  "
          f"{'space group':<16} note")
    for r in ranked[:20]:
        note = r.error or (f"= {r.extra['duplicate_of']}" if r.extra.get("duplicate_of") else "")
        print(f"{r.extra.get('rank', 0):>4}  {r.id[:24]:<24} {r.atoms.get_chemical_formula(mode='metal'):<10} "
              f"{r.enthalpy_per_atom:>12.4f} {r.volume_per_atom:>11.3f} {r.steps:>5}  {r.space_group:<16} {note}")
    if len(ranked) > 20:
        print(f"... {len(ranked) - 20} more in summary.json")
