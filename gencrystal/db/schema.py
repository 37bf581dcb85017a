"""Key-value schema of gencrystal's structure database (an ASE database).

Every row is one structure (ASE ``Atoms``) with these key-value pairs:

=====================  ======  ==========================================================
key                    type    meaning
=====================  ======  ==========================================================
``pressure_gpa``       float   pressure the structure was relaxed / labelled at, GPa
``energy_per_atom``    float   total energy per atom, eV/atom (at ``level_of_theory``)
``enthalpy_per_atom``  float   (E + P·V) / N, eV/atom
``level_of_theory``    str     lower case: ``pbe``, ``pbe+u``, ``r2scan``, ``chgnet-0.3.0``,
                               ``sevenn-0``, ``committee:<id>``, ``gpaw-pbe-pw400``
``source``             str     where it came from: ``mp20:mp-1234``, ``vasp:run/a``, ``search:pso``
``relaxed``            bool    the structure is a local minimum at ``pressure_gpa`` (relaxed
                               by DFT or a potential), not a single point or an input
``parent_id``          int     row id of the structure it was derived from (0 = none)
``split``              str     ``train`` / ``val`` / ``test`` once exported (else absent)
=====================  ======  ==========================================================

:data:`PROVENANCE_KEYS` are written on every row by ``db build`` and ``db import``.
Imported rows also carry ``import_key`` (``<kind>:<file>#<index>``, stable across
re-runs) and ``converged`` when the source says so. Other keys are allowed
(``material_id``, ``reduced_formula``, ``converged``, ``steps``, ``space_group``, ...). ASE db keys must be identifiers, values int/float/str/bool;
ASE reserves some names (``formula``, ``id``, ``natoms``, ...) which cannot be keys.
The default database is the SQLite file ``data/hp.db``; a ``postgresql://`` URL works too.
"""

from __future__ import annotations

import math
from typing import Any

from ase import Atoms

from gencrystal.errors import GencrystalError

SCHEMA_KEYS: dict[str, type] = {
    "pressure_gpa": float,
    "energy_per_atom": float,
    "enthalpy_per_atom": float,
    "level_of_theory": str,
    "source": str,
    "relaxed": bool,
    "parent_id": int,
    "split": str,
}
#: Keys every row written by ``db build`` / ``db import`` carries (energies may be absent
#: for imported rows whose source has none).
PROVENANCE_KEYS: tuple[str, ...] = (
    "level_of_theory",
    "source",
    "pressure_gpa",
    "energy_per_atom",
    "enthalpy_per_atom",
    "relaxed",
)
DEFAULT_DB = "data/hp.db"


def connect(url: str = DEFAULT_DB, **kwargs):
    """Open (creating if needed) the ASE database at a path or PostgreSQL URL.

    ASE's extra lock file (``<db>.lock``, held during each write) is off by default: SQLite
    and PostgreSQL lock by themselves, and a lock file left behind by a killed writer would
    make the resumed job wait for ever."""
    from pathlib import Path

    import ase.db

    kwargs.setdefault("use_lock_file", False)

    if not str(url).startswith("postgres"):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
    try:
        return ase.db.connect(str(url), **kwargs)
    except Exception as exc:
        raise GencrystalError(f"cannot open structure database {url!r}: {exc}") from exc


def clean_key_values(kv: dict[str, Any]) -> dict[str, Any]:
    """Drop None/NaN values and coerce schema keys to their types (ASE db accepts only scalars)."""
    out: dict[str, Any] = {}
    for key, value in kv.items():
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if key in SCHEMA_KEYS:
            value = SCHEMA_KEYS[key](value)
        elif hasattr(value, "item"):
            value = value.item()
        if not isinstance(value, (int, float, str, bool)):
            value = str(value)
        out[key] = value
    return out


def normalise_level(level: Any) -> str:
    """The canonical spelling of a level-of-theory label: stripped, lower case
    (``"PBE"`` -> ``"pbe"``, ``"r2SCAN"`` -> ``"r2scan"``). Raises for an empty label
    or one with a comma (labels are listed comma-separated in selections)."""
    text = str(level if level is not None else "").strip().lower()
    if not text or "," in text or text in ("none", "null"):
        raise GencrystalError(f"level_of_theory={level!r} is not a valid label (e.g. pbe, pbe+u, r2scan, chgnet-0.3.0)")
    return text


def add_structure(
    db, atoms: Atoms, *, pressure_gpa: float, level_of_theory: str, source: str, data: dict | None = None, **key_values
) -> int:
    """Write one structure with schema keys; returns the new row id."""
    kv = clean_key_values({"pressure_gpa": pressure_gpa, "level_of_theory": level_of_theory, "source": source, **key_values})
    clean = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.get_cell(), pbc=True)
    return db.write(clean, key_value_pairs=kv, data=data or {})
