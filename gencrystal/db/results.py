"""Relaxation results into the structure database (keys of :mod:`gencrystal.db.schema`)."""

from __future__ import annotations

from typing import Sequence

from gencrystal.relax.result import RelaxResult


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
