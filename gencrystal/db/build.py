"""Building the pressure-labelled database: relax every source structure at every pressure.

One *task* is (source id, pressure, level of theory); its key is
``"<source id>@<pressure>GPa@<level of theory>"``. Tasks run in a fixed order
(pressure-major, then source order) in chunks. Each chunk is relaxed with
:func:`gencrystal.relax.relax_structures` (Dask fan-out through its ``workers`` /
``scheduler`` options), then written in **one database transaction** together with the
chunk's entries in the task ledger (``db.metadata["gencrystal_build_tasks"]``). A build
that is killed loses at most the chunk in flight; a restart reads the ledger and skips
every finished task, so nothing is relaxed twice and no row is written twice.

Each result is *kept* when it is locally stable (relaxation converged, no error,
finite enthalpy, minimum interatomic distance and volume per atom sane). A kept result
is compared with StructureMatcher against the rows of the same reduced formula,
pressure and level of theory; duplicates are merged (the lower enthalpy stays, the
other's source id is appended to ``merged_ids``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ase import Atoms

from gencrystal.checks import StructureChecks
from gencrystal.db.schema import add_structure, connect
from gencrystal.errors import GencrystalError
from gencrystal.units import check_pressure

LEDGER_KEY = "gencrystal_build_tasks"


def task_key(source_id: str, pressure_gpa: float, level_of_theory: str) -> str:
    """The ledger key of one task: ``"<source id>@<P>GPa@<level of theory>"`` (P in GPa)."""
    return f"{source_id}@{float(pressure_gpa):g}GPa@{level_of_theory}"


@dataclass(frozen=True)
class KeepCriteria(StructureChecks):
    """When a relaxed structure counts as locally stable: no error, converged (when
    ``require_converged``), finite energies, and sane — the limits (Å, Å³/atom) and their
    defaults are those of the one structure check, :class:`gencrystal.checks.StructureChecks`."""

    require_converged: bool = True

    def reason_to_reject(self, result) -> str | None:
        """None when ``result`` (a RelaxResult) is kept, else a one-line reason."""
        if result.error:
            return f"error: {result.error}"
        if self.require_converged and not result.converged:
            return "not converged"
        if not math.isfinite(result.enthalpy_per_atom) or not math.isfinite(result.energy_per_atom):
            return "non-finite energy"
        return self.reason(result.atoms)


@dataclass
class BuildSummary:
    """What one call of :func:`build_database` did (counts of tasks)."""

    total: int = 0
    skipped_done: int = 0
    relaxed: int = 0
    kept: int = 0
    merged: int = 0
    rejected: int = 0
    rows: int = 0
    level_of_theory: str = ""
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_ledger(db) -> dict[str, list]:
    """The task ledger ``{task key: [status, row id, note]}`` stored in the database metadata."""
    return dict(db.metadata.get(LEDGER_KEY, {}))


def _reduced_formula(atoms: Atoms) -> str:
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula()).reduced_formula


def find_duplicate(
    db, atoms: Atoms, formula: str, pressure_gpa: float, level: str, matcher, pressure_tol_gpa: float = 1e-9
) -> Any | None:
    """The first row of ``db`` with the same reduced formula and level of theory, a pressure
    within ``pressure_tol_gpa`` (GPa) of ``pressure_gpa``, and a structure ``matcher`` fits to
    ``atoms``; None when there is none."""
    from gencrystal.structures import to_structure

    s = to_structure(atoms)
    for row in db.select(reduced_formula=formula, level_of_theory=level):
        if not math.isclose(float(row.get("pressure_gpa", -1.0)), pressure_gpa, abs_tol=pressure_tol_gpa):
            continue
        if matcher.fit(s, to_structure(row.toatoms())):
            return row
    return None


def build_database(
    structures: Sequence[tuple[str, Atoms]],
    pressures: Sequence[float],
    db_url: str,
    potential: Any = "chgnet",
    *,
    relax_options: dict | None = None,
    source_label: str = "",
    chunk_size: int = 8,
    keep: KeepCriteria | None = None,
    merge_matcher: str = "novelty",
    progress: bool = True,
    relax_fn: Callable | None = None,
) -> BuildSummary:
    """Relax ``structures`` at every pressure and store the locally stable, unique results.

    Args:
        structures: ``(source id, Atoms)`` pairs; ``atoms.info["db_id"]`` (set when read
            from an ASE db) becomes the row's ``parent_id``.
        pressures: GPa, each >= 0.
        db_url: SQLite path or PostgreSQL URL of the target database.
        potential: name, checkpoint path or loaded :class:`gencrystal.relax.Potential`.
        relax_options: keyword arguments of :func:`gencrystal.relax.relax_structures`
            (optimizer, fmax eV/Å, steps, workers, scheduler, batched, ...).
        source_label: prefix of the ``source`` key, e.g. ``perov5_dev:train``.
        chunk_size: tasks per relaxation call and per database transaction.
        keep: locally-stable criteria (defaults of :class:`KeepCriteria`).
        merge_matcher: :func:`gencrystal.matching.make_matcher` setting for duplicates.
        relax_fn: replaces ``relax_structures`` (tests inject failures through it).

    Returns:
        A :class:`BuildSummary`. Killing the call at any point and calling it again with
        the same arguments gives the same database as one uninterrupted call.
    """
    from tqdm.auto import tqdm

    from gencrystal.matching import make_matcher
    from gencrystal.potentials import as_potential

    if relax_fn is None:
        from gencrystal.relax import relax_structures

        relax_fn = relax_structures
    pressures = [check_pressure(p, "pressures") for p in pressures]
    if not pressures:
        raise GencrystalError("pressures is empty; give e.g. pressures=[0,50]")
    if chunk_size < 1:
        raise GencrystalError(f"chunk_size={chunk_size} must be >= 1")
    ids = [sid for sid, _ in structures]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise GencrystalError(f"source structure id {dup!r} occurs twice; ids must be unique for resumable builds")
    keep = keep or KeepCriteria()
    relax_options = dict(relax_options or {})
    pot = as_potential(potential, relax_options.pop("device", "auto"))
    level = pot.level_of_theory
    matcher = make_matcher(merge_matcher)

    db = connect(db_url)
    ledger = read_ledger(db)
    tasks = [(task_key(sid, p, level), sid, atoms, p) for p in pressures for sid, atoms in structures]
    todo = [t for t in tasks if t[0] not in ledger]
    summary = BuildSummary(total=len(tasks), skipped_done=len(tasks) - len(todo), level_of_theory=level)
    bar = tqdm(total=len(tasks), initial=summary.skipped_done, desc=f"db build [{level}]", unit="task", disable=not progress)
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            results: list = []
            for p in sorted({t[3] for t in chunk}):
                part = [t for t in chunk if t[3] == p]
                res = relax_fn(
                    [t[2] for t in part], pressure_gpa=p, potential=pot, ids=[t[1] for t in part], progress=False, **relax_options
                )
                results.extend(zip(part, res))
            _commit_chunk(db, results, ledger, level, source_label, keep, matcher, summary)
            bar.update(len(chunk))
    finally:
        bar.close()
    summary.rows = db.count()
    return summary


def _commit_chunk(
    db, results, ledger: dict, level: str, source_label: str, keep: KeepCriteria, matcher, summary: BuildSummary
) -> None:
    """Write one chunk's rows and ledger entries in a single transaction."""
    new_entries: dict[str, list] = {}
    with db:
        for (key, sid, src_atoms, p), res in results:
            summary.relaxed += 1
            reason = keep.reason_to_reject(res)
            if reason is not None:
                summary.rejected += 1
                short = reason.split(":")[0]
                summary.rejected_reasons[short] = summary.rejected_reasons.get(short, 0) + 1
                new_entries[key] = ["rejected", 0, reason[:200]]
                continue
            formula = _reduced_formula(res.atoms)
            dup = find_duplicate(db, res.atoms, formula, p, level, matcher)
            kv = {
                "energy_per_atom": res.energy_per_atom,
                "enthalpy_per_atom": res.enthalpy_per_atom,
                "volume_per_atom": res.atoms.get_volume() / len(res.atoms),
                "reduced_formula": formula,
                "material_id": _ref(source_label, sid),
                "task_key": key,
                "converged": bool(res.converged),
                "steps": int(res.steps),
                "space_group": res.space_group or "",
                "rmsd_from_input": res.rmsd_from_input,
                "parent_id": int(src_atoms.info.get("db_id", 0) or 0),
                "relaxed": True,
            }
            source = _ref(source_label, sid)
            if dup is None:
                row_id = add_structure(
                    db, res.atoms, pressure_gpa=p, level_of_theory=level, source=source, merged_ids="", n_merged=0, **kv
                )
                new_entries[key] = ["kept", row_id, ""]
                summary.kept += 1
                continue
            merged = [m for m in str(dup.get("merged_ids", "")).split(",") if m]
            if res.enthalpy_per_atom < float(dup.enthalpy_per_atom):
                merged = merged + [str(dup.material_id)]
                db.delete([dup.id])
                row_id = add_structure(
                    db,
                    res.atoms,
                    pressure_gpa=p,
                    level_of_theory=level,
                    source=source,
                    merged_ids=",".join(merged),
                    n_merged=len(merged),
                    **kv,
                )
                new_entries[key] = ["kept", row_id, ""]
                new_entries[str(dup.task_key)] = ["merged", row_id, f"duplicate of {sid}"]
            else:
                merged = merged + [_ref(source_label, sid)]
                db.update(dup.id, merged_ids=",".join(merged), n_merged=len(merged))
                new_entries[key] = ["merged", dup.id, f"duplicate of {dup.material_id}"]
            summary.merged += 1
        md = db.metadata
        led = dict(md.get(LEDGER_KEY, {}))
        led.update(new_entries)
        md[LEDGER_KEY] = led
        db.metadata = md
    ledger.update(new_entries)


def _ref(source_label: str, sid: str) -> str:
    """``"<label>:<id>"``: the source reference stored in ``source``/``material_id``/``merged_ids``
    (never a bare number, which ASE db would refuse as a string)."""
    return f"{source_label or 'source'}:{sid}"
