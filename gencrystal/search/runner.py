"""The search loop shared by random, PSO and generative search.

``run_search`` walks the method's batches; for each batch it asks the method for its
proposals (deterministic given the seed and the earlier candidates), relaxes the ones
not yet in the database in chunks with :func:`gencrystal.relax.relax_structures`, and
writes every relaxed candidate (failed ones too, with ``status=failed``) to the ASE
database in one transaction per chunk. A restart reads the candidates of the same
``search_id`` back from the database and continues from there: nothing is relaxed
twice, nothing is lost. At the end (and whenever it stops) it writes into ``out``:

- ``ranking.csv`` / ``ranking.json``: candidates by enthalpy (eV/atom), with duplicates
  (fingerprint) marked;
- ``best.extxyz``: the best ``n_best`` distinct structures;
- ``convergence.png``: best enthalpy vs number of structures relaxed;
- ``state.json``: search identity, budget, progress and the best candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gencrystal.checks import DEFAULTS
from gencrystal.db.schema import add_structure, connect
from gencrystal.errors import GencrystalError
from gencrystal.search.generate import RandomStructureGenerator
from gencrystal.search.methods import Candidate, Proposal, SearchContext, SearchMethod
from gencrystal.units import check_pressure


@dataclass
class SearchResult:
    """Outcome of :func:`run_search`."""

    search_id: str
    candidates: list[Candidate]
    n_new: int
    stopped_early: bool
    best: Candidate | None
    level_of_theory: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def n_done(self) -> int:
        return len(self.candidates)


def search_identity(
    method: SearchMethod, formula: str, formula_units: Sequence[int], pressure_gpa: float, seed: int, level: str
) -> str:
    """``"<method>:<formula>:Z<z,...>:<P>GPa:seed<s>:<level>[:<settings hash>]"``: the key of a
    search's rows. Methods whose settings change the proposals (PSO population and
    coefficients, generative checkpoint and batch) add a short hash of them, so that a
    search resumed with other settings does not mix with the first one."""
    import hashlib
    import json

    zs = ",".join(str(z) for z in formula_units)
    ident = f"{method.name}:{formula}:Z{zs}:{float(pressure_gpa):g}GPa:seed{int(seed)}:{level}"
    settings = method.settings()
    if settings:
        ident += ":" + hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return ident


def load_candidates(db, search_id: str) -> dict[int, Candidate]:
    """The relaxed candidates of ``search_id`` in the database, by candidate index."""
    out: dict[int, Candidate] = {}
    for row in db.select(search_id=search_id):
        idx = int(row.candidate)
        if idx in out:  # cannot happen through run_search (one transaction per chunk); keep the first
            continue
        h = row.get("enthalpy_per_atom")
        ok = row.get("status") == "ok"
        out[idx] = Candidate(
            index=idx,
            row_id=row.id,
            atoms=row.toatoms(),
            enthalpy_per_atom=float(h) if (ok and h is not None) else math.nan,
            ok=ok,
            generation=int(row.get("generation", 0)),
            particle=int(row.get("particle", idx)),
            origin=str(row.get("origin", "")),
            data=dict(row.data) if row.data else {},
        )
    return out


def _candidate_ok(res, ctx: SearchContext) -> bool:
    return res.error is None and res.converged and math.isfinite(res.enthalpy_per_atom) and DEFAULTS.ok(res.atoms)


def run_search(
    formula: str,
    pressure_gpa: float,
    method: SearchMethod,
    budget: int,
    db_url: str,
    out_dir: str | Path | None,
    potential: Any = "chgnet",
    *,
    formula_units: Sequence[int] = (1,),
    seed: int = 0,
    relax_options: dict | None = None,
    chunk: int = 2,
    volume_factor: float | None = None,
    min_distance: float = 0.7,
    volume_range: tuple[float, float] = (2.0, 100.0),
    fingerprint_tol: float = 0.02,
    enthalpy_tol: float = 0.005,
    n_best: int = 5,
    stop_when: Callable[[Candidate], bool] | None = None,
    progress: bool = True,
    relax_fn: Callable | None = None,
) -> SearchResult:
    """Search for low-enthalpy structures of ``formula`` at ``pressure_gpa`` (GPa).

    Args:
        formula: reduced formula (``SiO2``); cells hold Z × formula for Z in ``formula_units``.
        method: :class:`RandomSearch`, :class:`PSOSearch` or :class:`GenerativeSearch`.
        budget: total number of candidates (structures relaxed), >= 1.
        db_url: ASE database receiving every candidate (SQLite path or PostgreSQL URL).
        out_dir: folder for ranking / best structures / plot / state (None: write nothing).
        potential: name, checkpoint path or loaded :class:`gencrystal.relax.Potential`.
        seed: the search's seed; (seed, candidate index) fixes each proposal.
        relax_options: keyword arguments of ``relax_structures`` (fmax eV/Å, steps, workers...).
        chunk: candidates relaxed per call and written per database transaction.
        volume_factor: scales pyxtal's ambient volume estimate (None: ``(1+P/100)^(-1/3)``).
        min_distance: Å; volume_range: Å³/atom — sanity of generated structures.
        fingerprint_tol / enthalpy_tol: duplicate thresholds (cosine distance, eV/atom).
        stop_when: stop after the chunk in which a candidate satisfies it (benchmarks).
        relax_fn: replaces ``relax_structures`` (tests inject kills through it).
    """
    from tqdm.auto import tqdm

    from gencrystal.composition import parse_composition
    from gencrystal.potentials import as_potential

    if relax_fn is None:
        from gencrystal.relax import relax_structures

        relax_fn = relax_structures
    pressure_gpa = check_pressure(pressure_gpa)
    if int(budget) < 1:
        raise GencrystalError(f"budget={budget} must be >= 1 (structures to relax)")
    if chunk < 1:
        raise GencrystalError(f"chunk={chunk} must be >= 1")
    reduced = parse_composition(formula).reduced_composition
    formula = reduced.reduced_formula
    relax_options = dict(relax_options or {})
    pot = as_potential(potential, relax_options.pop("device", "auto"))
    level = pot.level_of_theory
    gen = RandomStructureGenerator(
        formula, tuple(formula_units), pressure_gpa, volume_factor, min_distance, (float(volume_range[0]), float(volume_range[1]))
    )
    ctx = SearchContext(formula, tuple(gen.formula_units), pressure_gpa, int(seed), gen, fingerprint_tol, enthalpy_tol)
    search_id = search_identity(method, formula, ctx.formula_units, pressure_gpa, seed, level)
    db = connect(db_url)
    history = load_candidates(db, search_id)
    n_before = len([i for i in history if i < budget])
    stopped = any(stop_when(c) for c in history.values()) if stop_when else False
    bar = tqdm(
        total=budget,
        initial=n_before,
        desc=f"search {method.name} {formula} {pressure_gpa:g} GPa",
        unit="struct",
        disable=not progress,
    )
    n_new = 0
    try:
        for b, (start, stop) in enumerate(method.batches(int(budget))):
            if stopped:
                break
            if all(i in history for i in range(start, stop)):
                continue
            earlier = [history[i] for i in sorted(history) if i < start]
            proposals = [p for p in method.propose(b, start, stop, earlier, ctx) if p.index not in history]
            for k in range(0, len(proposals), chunk):
                part = proposals[k : k + chunk]
                results = relax_fn(
                    [p.atoms for p in part],
                    pressure_gpa=pressure_gpa,
                    potential=pot,
                    ids=[f"{search_id}#{p.index}" for p in part],
                    progress=False,
                    **relax_options,
                )
                new = _write_chunk(db, part, results, history, search_id, method.name, level, pressure_gpa, seed, ctx)
                n_new += len(new)
                bar.update(len(new))
                if stop_when and any(stop_when(c) for c in new):
                    stopped = True
                    break
    finally:
        bar.close()
    cands = [history[i] for i in sorted(history)]
    ok = [c for c in cands if c.ok]
    best = min(ok, key=lambda c: (c.enthalpy_per_atom, c.index)) if ok else None
    result = SearchResult(search_id, cands, n_new, stopped, best, level)
    if out_dir is not None:
        result.files = write_outputs(result, Path(out_dir), ctx, budget=int(budget), method=method, n_best=n_best)
    return result


def _write_chunk(
    db,
    part: list[Proposal],
    results,
    history: dict,
    search_id: str,
    method: str,
    level: str,
    pressure_gpa: float,
    seed: int,
    ctx: SearchContext,
) -> list[Candidate]:
    new: list[Candidate] = []
    with db:
        for p, r in zip(part, results):
            ok = _candidate_ok(r, ctx)
            atoms = r.atoms if r.atoms is not None and len(r.atoms) == len(p.atoms) else p.atoms
            parent_row = history[p.parent_index].row_id if p.parent_index in history else 0
            kv = {
                "energy_per_atom": r.energy_per_atom,
                "enthalpy_per_atom": r.enthalpy_per_atom,
                "volume_per_atom": atoms.get_volume() / len(atoms),
                "search_id": search_id,
                "candidate": p.index,
                "generation": p.generation,
                "particle": p.particle,
                "origin": p.origin,
                "method": method,
                "status": "ok" if ok else "failed",
                "converged": bool(r.converged),
                "steps": int(r.steps),
                "error": (r.error or "")[:200],
                "space_group": r.space_group or "",
                "seed": int(seed),
                "reduced_formula": ctx.generator.reduced.reduced_formula,
                "parent_id": parent_row,
                **{k: v for k, v in p.meta.items() if isinstance(v, (int, float, str, bool))},
            }
            data = {k: np.asarray(v) for k, v in p.data.items()}
            row_id = add_structure(
                db, atoms, pressure_gpa=pressure_gpa, level_of_theory=level, source=f"search:{method}", data=data, **kv
            )
            cand = Candidate(
                p.index,
                row_id,
                atoms.copy(),
                float(r.enthalpy_per_atom) if ok else math.nan,
                ok,
                p.generation,
                p.particle,
                p.origin,
                data,
            )
            new.append(cand)
    for c in new:
        history[c.index] = c
    return new


def ranking_rows(result: SearchResult, ctx: SearchContext) -> list[dict[str, Any]]:
    """Candidates sorted by enthalpy (failed ones last), with ``duplicate_of`` (the index of
    a better candidate with the same fingerprint, or -1) and ``rank`` among distinct ones."""
    from gencrystal.search.fingerprint import is_duplicate

    ok = sorted((c for c in result.candidates if c.ok), key=lambda c: (c.enthalpy_per_atom, c.index))
    failed = [c for c in result.candidates if not c.ok]
    rows: list[dict[str, Any]] = []
    distinct: list[Candidate] = []
    for c in ok:
        refs = [(ctx.fingerprint(d), d.enthalpy_per_atom) for d in distinct if len(d.atoms) == len(c.atoms)]
        same = [d for d in distinct if len(d.atoms) == len(c.atoms)]
        j = is_duplicate(ctx.fingerprint(c), c.enthalpy_per_atom, refs, ctx.fingerprint_tol, ctx.enthalpy_tol)
        dup = same[j].index if j is not None else -1
        if dup < 0:
            distinct.append(c)
        rows.append(_row(c, len(distinct) if dup < 0 else None, dup, result.level_of_theory, ctx.pressure_gpa))
    rows.extend(_row(c, None, -1, result.level_of_theory, ctx.pressure_gpa) for c in failed)
    return rows


def _row(c: Candidate, rank, dup, level, pressure) -> dict[str, Any]:
    from gencrystal.relax.analysis import space_group

    return {
        "rank": rank if rank is not None else "",
        "candidate": c.index,
        "db_row": c.row_id,
        "generation": c.generation,
        "origin": c.origin,
        "status": "ok" if c.ok else "failed",
        "enthalpy_per_atom": c.enthalpy_per_atom if c.ok else None,
        "volume_per_atom": c.atoms.get_volume() / len(c.atoms),
        "natoms": len(c.atoms),
        "formula": c.atoms.get_chemical_formula(mode="metal"),
        "space_group": space_group(c.atoms) if c.ok else "",
        "duplicate_of": dup,
        "pressure_gpa": pressure,
        "level_of_theory": level,
    }


def write_outputs(
    result: SearchResult, out: Path, ctx: SearchContext, *, budget: int, method: SearchMethod, n_best: int = 5
) -> dict[str, str]:
    """Write ranking.csv/json, best.extxyz, convergence.png and state.json into ``out``."""
    import pandas as pd

    from gencrystal.io import atomic_write, write_extxyz, write_json

    out.mkdir(parents=True, exist_ok=True)
    rows = ranking_rows(result, ctx)
    frame = pd.DataFrame(rows)
    with atomic_write(out / "ranking.csv") as fh:
        frame.to_csv(fh, index=False)
    write_json(rows, out / "ranking.json")
    by_index = {c.index: c for c in result.candidates}
    best_frames: list = []
    for r in rows:
        if r["status"] == "ok" and r["duplicate_of"] == -1 and len(best_frames) < n_best:
            a = by_index[r["candidate"]].atoms.copy()
            a.info = {k: v for k, v in r.items() if v is not None and v != ""}
            best_frames.append(a)
    files = {"ranking_csv": str(out / "ranking.csv"), "ranking_json": str(out / "ranking.json")}
    if best_frames:
        write_extxyz(best_frames, out / "best.extxyz")
        files["best_extxyz"] = str(out / "best.extxyz")
    files["convergence_png"] = str(
        plot_convergence(
            result.candidates,
            out / "convergence.png",
            f"{method.name}: {ctx.formula} at {ctx.pressure_gpa:g} GPa ({result.level_of_theory})",
        )
    )
    state = {
        "search_id": result.search_id,
        "method": method.name,
        "settings": method.settings(),
        "formula": ctx.formula,
        "formula_units": list(ctx.formula_units),
        "pressure_gpa": ctx.pressure_gpa,
        "seed": ctx.seed,
        "level_of_theory": result.level_of_theory,
        "budget": budget,
        "n_done": result.n_done,
        "n_ok": sum(c.ok for c in result.candidates),
        "stopped_early": result.stopped_early,
        "best": None
        if result.best is None
        else {"candidate": result.best.index, "db_row": result.best.row_id, "enthalpy_per_atom": result.best.enthalpy_per_atom},
        "convergence": convergence_curve(result.candidates),
    }
    write_json(state, out / "state.json")
    files["state_json"] = str(out / "state.json")
    return files


def convergence_curve(candidates: Sequence[Candidate]) -> list[float | None]:
    """Best enthalpy (eV/atom) after each number of structures relaxed (candidate order);
    None until the first successful candidate."""
    best = math.inf
    curve: list[float | None] = []
    for c in sorted(candidates, key=lambda c: c.index):
        if c.ok and c.enthalpy_per_atom < best:
            best = c.enthalpy_per_atom
        curve.append(None if math.isinf(best) else best)
    return curve


def plot_convergence(candidates: Sequence[Candidate], path: Path, title: str) -> Path:
    """Plot every candidate's enthalpy and the running best against structures relaxed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    cands = sorted(candidates, key=lambda c: c.index)
    curve = convergence_curve(cands)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = [i + 1 for i, c in enumerate(cands) if c.ok]
    ys = [c.enthalpy_per_atom for c in cands if c.ok]
    ax.scatter(xs, ys, s=10, alpha=0.5, label="candidates")
    bx = [i + 1 for i, v in enumerate(curve) if v is not None]
    ax.step(bx, [v for v in curve if v is not None], where="post", color="k", label="best so far")
    ax.set_xlabel("structures relaxed")
    ax.set_ylabel("enthalpy (eV/atom)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return path
