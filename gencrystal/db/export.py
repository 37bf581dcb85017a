"""Exporting the database as train/val/test splits grouped by composition.

Every reduced formula goes to exactly one split (so no composition is seen in two
splits, at any pressure); formulas are shuffled with a seeded generator and assigned
greedily so that each split's share of *rows* approaches the requested fractions.
The export writes, per split, an ASE database (``<split>.db``, rows with every key of
the source row) and a CDVAE-style CSV (``<split>.csv``: ``material_id``, ``cif``,
``pressure`` in GPa, ``formula``, ``energy_per_atom``, ``enthalpy_per_atom`` in
eV/atom, ``level_of_theory``, ``source_row``), and sets the ``split`` key on the source rows.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from gencrystal.db.schema import add_structure, clean_key_values, connect
from gencrystal.errors import GencrystalError

SPLITS = ("train", "val", "test")


def assign_splits(group_sizes: dict[str, int], fractions: Sequence[float], seed: int = 0) -> dict[str, str]:
    """Map each group (reduced formula) to ``train``/``val``/``test``.

    Groups are shuffled with ``seed`` and each goes to the split whose row count is
    furthest below its target ``fraction × total`` (ties: train, val, test), so splits
    are disjoint in groups and close to the fractions in rows.
    """
    fr = np.asarray(list(fractions), dtype=float)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isfinite(fr).all() or fr.sum() <= 0:
        raise GencrystalError(f"fractions={list(fractions)} must be three non-negative numbers (train, val, test)")
    fr = fr / fr.sum()
    names = sorted(group_sizes)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    total = float(sum(group_sizes.values()))
    counts = np.zeros(3)
    out: dict[str, str] = {}
    for i in order:
        name = names[i]
        deficit = fr * total - counts
        deficit[fr == 0] = -np.inf
        k = int(np.argmax(deficit))
        out[name] = SPLITS[k]
        counts[k] += group_sizes[name]
    return out


def export_splits(
    db_url: str,
    out_dir: str | Path,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    selection: str | None = None,
    set_split_key: bool = True,
) -> dict[str, int]:
    """Write ``<out_dir>/{train,val,test}.{db,csv}`` from the rows of ``db_url`` (see module doc).

    Returns the number of rows per split. Files are written atomically (a temporary
    name, then renamed), so a failed export leaves no half-written split.
    """
    import os

    import pandas as pd
    from pymatgen.io.cif import CifWriter

    from gencrystal.io import atomic_write
    from gencrystal.structures import to_structure

    if not str(db_url).startswith("postgres") and not Path(db_url).exists():
        raise GencrystalError(f"database {str(db_url)!r} does not exist")
    db = connect(db_url)
    rows = list(db.select(selection) if selection else db.select())
    if not rows:
        raise GencrystalError(f"database {str(db_url)!r} has no rows{' matching ' + repr(selection) if selection else ''}")
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        formula = row.get("reduced_formula") or _reduced(row)
        groups[formula].append(row)
    assignment = assign_splits({k: len(v) for k, v in groups.items()}, fractions, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: 0 for s in SPLITS}
    for split in SPLITS:
        split_rows = [r for f in sorted(groups) if assignment[f] == split for r in groups[f]]
        split_rows.sort(key=lambda r: r.id)
        counts[split] = len(split_rows)
        tmp_db = out / f".{split}.tmp.db"
        if tmp_db.exists():
            tmp_db.unlink()
        target = connect(str(tmp_db))
        records = []
        with target:
            for r in split_rows:
                atoms = r.toatoms()
                kv = dict(r.key_value_pairs)
                kv["split"] = split
                kv["source_row"] = r.id
                kv.pop("pressure_gpa", None)
                kv.pop("level_of_theory", None)
                kv.pop("source", None)
                add_structure(
                    target,
                    atoms,
                    pressure_gpa=r.get("pressure_gpa", 0.0),
                    level_of_theory=r.get("level_of_theory", ""),
                    source=r.get("source", ""),
                    **clean_key_values(kv),
                )
                records.append(
                    {
                        "material_id": f"{r.get('material_id', 'row')}-{r.get('pressure_gpa', 0.0):g}GPa-{r.id}",
                        "cif": str(CifWriter(to_structure(atoms))),
                        "pressure": float(r.get("pressure_gpa", 0.0)),
                        "formula": r.get("reduced_formula") or _reduced(r),
                        "energy_per_atom": r.get("energy_per_atom"),
                        "enthalpy_per_atom": r.get("enthalpy_per_atom"),
                        "level_of_theory": r.get("level_of_theory", ""),
                        "source_row": r.id,
                    }
                )
        os.replace(tmp_db, out / f"{split}.db")
        frame = pd.DataFrame.from_records(
            records,
            columns=[
                "material_id",
                "cif",
                "pressure",
                "formula",
                "energy_per_atom",
                "enthalpy_per_atom",
                "level_of_theory",
                "source_row",
            ],
        )
        with atomic_write(out / f"{split}.csv") as fh:
            frame.to_csv(fh, index=False)
    if set_split_key:
        with db:
            for f, rs in groups.items():
                for r in rs:
                    db.update(r.id, split=assignment[f])
    return counts


def _reduced(row) -> str:
    from pymatgen.core import Composition

    return Composition(row.formula).reduced_formula
