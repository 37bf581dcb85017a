"""Holding the known phases out of a generative model's training data.

The known-phase benchmark asks how many samples a model needs to find a known phase; a
model that trained on that phase answers from memory. :func:`known_phase_structures`
collects the references — every structure of :mod:`gencrystal.known_structures` (the
benchmark targets, the seed prototypes of Li, Si, SiO2 and B, the demo's phases) — and
:func:`find_known_phases` names every structure that pymatgen's ``StructureMatcher``
(``csp`` settings of :mod:`gencrystal.matching`: stol 0.5, ltol 0.3, angle_tol 10°)
equates with one of them. Structures are compared only with references of the same
reduced formula (the matcher would reject the others anyway), so scanning a database of
thousands of rows is quick.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: one seed file or several (``<stem>.extxyz``; a training id ``<stem>:<id>@<P>GPa`` names one)
SeedPaths = str | Path | Sequence[str | Path]

#: ``split`` value given to database rows held out because they are a known phase
HELDOUT_SPLIT = "heldout_known"


def known_phase_structures() -> dict[str, Atoms]:
    """The known-phase references by name, ``known:<id>``: every structure of the one
    catalogue :data:`gencrystal.known_structures.STRUCTURES` (the benchmark targets, the seed
    prototypes and the demo's reference phases; ASE Atoms, Å)."""
    from gencrystal.known_structures import STRUCTURES

    return {f"known:{sid}": ks.atoms() for sid, ks in STRUCTURES.items()}


def _reduced_formula(atoms: Atoms) -> str:
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula(mode="metal")).reduced_formula


def find_known_phases(
    structures: Iterable[tuple[str, Atoms]], references: dict[str, Atoms] | None = None, kind: str = "csp"
) -> dict[str, str]:
    """``{structure id: reference name}`` for every structure the matcher equates with a
    known phase (the first matching reference, in :func:`known_phase_structures` order).

    Args:
        structures: ``(id, Atoms)`` pairs (cells in Å; any volume: the matcher rescales).
        references: name → Atoms; default :func:`known_phase_structures`.
        kind: matcher settings of :func:`gencrystal.matching.make_matcher`.
    """
    from gencrystal.matching import make_matcher
    from gencrystal.structures import to_structure

    refs = known_phase_structures() if references is None else references
    by_formula: dict[str, list[tuple[str, Structure]]] = {}
    for name, atoms in refs.items():
        by_formula.setdefault(_reduced_formula(atoms), []).append((name, to_structure(atoms)))
    matcher = make_matcher(kind)
    found: dict[str, str] = {}
    for sid, atoms in structures:
        candidates = by_formula.get(_reduced_formula(atoms))
        if not candidates:
            continue
        s = to_structure(atoms)
        for name, ref in candidates:
            if matcher.fit(s, ref):
                found[str(sid)] = name
                break
    return found


#: ids of the recipe's MP-20 seeds (``scripts/train_default.py``, stage ``mp20seeds``):
#: ``mp20_seeds:mp20<split>-<material_id>``, the MP-20 row of that split relaxed at pressure
_MP20_SEED = re.compile(r"^mp20_seeds:mp20(?P<split>train|val|test)-(?P<mid>\S+)$")


def training_sources(
    ids: Iterable[str], seeds_path: SeedPaths, data_root: str | Path | None, formula: str | None = None
) -> tuple[list[tuple[str, Atoms]], list[str]]:
    """The source structures of a checkpoint's recorded training ids, and the ids not resolved.

    Ids are ``<source>@<P>GPa`` (``scripts/train_default.py``): ``<stem>:<id>`` is read from the
    seed file ``<stem>.extxyz`` of ``seeds_path`` (one path or several: the committed seed set
    ``hp_seeds``, the random seeds ``hp_random_seeds``), ``mp20:<split>:<material_id>`` from
    ``<data_root>/mp_20/<split>.csv``, and so is ``mp20_seeds:mp20<split>-<material_id>`` (an MP-20
    row the recipe's ``mp20seeds`` stage relaxed at pressure). The structures are the *sources* as stored there (the
    database row was relaxed from it at P); with ``formula`` (a reduced formula) only sources of
    that formula are read and returned, which keeps a scan of MP-20 quick.

    Returns:
        ``([(source, Atoms)], [unresolved source])``, each source once.
    """
    from ase.io import read

    wanted = sorted({i.rsplit("@", 1)[0] for i in ids})
    seed_alias: dict[tuple[str, str], str] = {}  # (split, material id) -> the id's own source name
    seeds: dict[str, Atoms] = {}
    for path in [seeds_path] if isinstance(seeds_path, (str, Path)) else seeds_path:
        if Path(path).is_file():
            seeds.update({f"{Path(path).stem}:{a.info['id']}": a for a in read(str(path), index=":")})
    by_split: dict[str, set[str]] = {}
    found: list[tuple[str, Atoms]] = []
    missing: list[str] = []
    for src in wanted:
        if src in seeds:
            if formula is None or _reduced_formula(seeds[src]) == formula:
                found.append((src, seeds[src]))
        elif src.startswith("mp20:") and src.count(":") == 2:
            _, split, mid = src.split(":")
            by_split.setdefault(split, set()).add(mid)
        elif m := _MP20_SEED.match(src):  # an MP-20 structure the recipe relaxed at pressure (its mp20_seeds stage)
            by_split.setdefault(m["split"], set()).add(m["mid"])
            seed_alias[(m["split"], m["mid"])] = src
        else:
            missing.append(src)
    for split, mids in by_split.items():
        table_path = Path(data_root) / "mp_20" / f"{split}.csv" if data_root is not None else None
        if table_path is None or not table_path.is_file():
            missing.extend(seed_alias.get((split, m), f"mp20:{split}:{m}") for m in sorted(mids))
            continue
        from pymatgen.core import Composition, Structure

        from gencrystal.structures import to_atoms

        table = _read_table(str(table_path))
        table = table[table["material_id"].astype(str).isin(mids)]
        absent = mids - set(table["material_id"].astype(str))
        missing.extend(seed_alias.get((split, m), f"mp20:{split}:{m}") for m in sorted(absent))
        for row in table.itertuples():
            if formula is not None and Composition(str(row.pretty_formula)).reduced_formula != formula:
                continue
            atoms = to_atoms(Structure.from_str(str(row.cif), fmt="cif"))
            names = [f"mp20:{split}:{row.material_id}", seed_alias.get((split, str(row.material_id)))]
            found.extend((name, atoms) for name in names if name in wanted)
    return found, missing


@functools.lru_cache(maxsize=4)
def _read_table(path: str) -> Any:
    """A dataset CSV read once per process (the benchmark checks every target against it)."""
    import pandas as pd

    return pd.read_csv(path)


def checkpoint_heldout(
    ckpt: Mapping[str, Any], reference: Atoms, reference_name: str, seeds_path: SeedPaths, data_root: str | Path | None
) -> dict[str, Any]:
    """Was ``reference`` (a known phase named ``known:<id>``) held out of a checkpoint's training data?

    Two checks on what the checkpoint records (``gencrystal_training_ids``, ``gencrystal_holdout``
    of ``scripts/train_default.py``): the hold-out stage compared every database row, relaxed at
    its pressure, with this phase (``reference_name`` among the record's references) and moved the
    matches out of training; and no recorded training id's *source* structure equals it
    (StructureMatcher, csp tolerances). Held out when both hold and every id was resolved.

    Returns:
        ``{"held_out", "in_holdout_references", "removed" (rows the hold-out took out for this
        phase), "n_training_ids", "matches" (sources equal to it), "unresolved" (count)}``.
    """
    ids = list(ckpt.get("gencrystal_training_ids") or [])
    record = ckpt.get("gencrystal_holdout") or {}
    in_refs = reference_name in (record.get("references") or [])
    removed = sorted({r["source"] for r in record.get("removed", []) if r.get("known_phase") == reference_name})
    sources, missing = training_sources(ids, seeds_path, data_root, formula=_reduced_formula(reference))
    matches = sorted(find_known_phases(sources, {reference_name: reference}))
    return {
        "held_out": bool(ids) and in_refs and not matches and not missing,
        "in_holdout_references": in_refs,
        "removed": removed,
        "n_training_ids": len(ids),
        "matches": matches,
        "unresolved": len(missing),
    }
