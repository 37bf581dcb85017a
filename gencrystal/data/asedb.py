"""The structure database (ASE db, schema in :mod:`gencrystal.db.schema`) as a dataset
source and sink.

Source: ``data=asedb data.url=path.db`` reads the rows whose ``split`` key equals the
requested split's name in ``data.splits`` (``null`` = no split filter), further narrowed
by ``data.selection`` (an ASE-db query such as ``"pressure_gpa>=10"``) and by
``data.levels`` (a list of level-of-theory labels, e.g. ``[pbe,r2scan]``: only rows whose
``level_of_theory`` is one of them; null = every level); ``pressure_gpa`` becomes the
pressure (GPa, 0 when absent). Under ``data.protocol=offline`` the train and
val splits are a seeded partition of the ``val`` selection, as for the CSV datasets.

Sink: :func:`write_structures` / :func:`dataset_to_db` write structures with schema keys
via :func:`gencrystal.db.schema.add_structure`, skipping ``source`` values already in
the database so an interrupted write resumes without duplicates.
"""

from __future__ import annotations

import keyword
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gencrystal.data.readers import CACHE_VERSION, ParsedSource, assemble_parsed, cached_parse, config_hash, file_sha256
from gencrystal.data.stats import DEFAULT_PRESSURE_BINS
from gencrystal.data.transforms import CrystalTransform
from gencrystal.errors import GencrystalError

log = logging.getLogger("gencrystal.data")

#: Table columns that are not written back as key-value pairs (the structure itself or derived).
_NOT_KEYS = {"cif", "composition", "num_atoms", "pressure", "db_id", "formula"}


def _selection(cfg: Mapping, split_value: str | None) -> str | None:
    parts = []
    if split_value not in (None, "", "null"):
        parts.append(f"split={split_value}")
    if cfg.get("selection"):
        parts.append(str(cfg["selection"]))
    return ",".join(parts) or None


def _levels(cfg: Mapping) -> list[str] | None:
    """``data.levels`` as a sorted list of normalised labels (None: no level filter)."""
    from gencrystal.db.schema import normalise_level

    levels = cfg.get("levels")
    if levels in (None, "", "null"):
        return None
    if isinstance(levels, str):
        levels = [levels]
    out = sorted({normalise_level(x) for x in levels})
    if not out:
        raise GencrystalError("data.levels is empty; give e.g. data.levels=[pbe,r2scan] or null for every level")
    return out


def read_db(
    url: str, selection: str | None, transform: CrystalTransform, *, progress: bool = True, levels: Sequence[str] | None = None
) -> ParsedSource:
    """Rows of an ASE db matching ``selection`` (and, when given, whose ``level_of_theory``
    is in ``levels``) as a :class:`ParsedSource` (unreadable rows skipped; a row with a
    NaN/Inf cell or position is an error naming the database and row id)."""
    import ase.db
    from tqdm.auto import tqdm

    from gencrystal.units import check_pressure

    if not url.startswith("postgres") and not Path(url).is_file():
        raise GencrystalError(f"ASE database {url!r} does not exist (set data.url=<path.db>)")
    try:
        db = ase.db.connect(url)
        rows = list(db.select(selection) if selection else db.select())
    except Exception as exc:
        raise GencrystalError(
            f"cannot read ASE database {url!r} with selection {selection!r}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    if levels is not None:
        wanted = set(levels)
        rows = [r for r in rows if str(r.get("level_of_theory", "")).strip().lower() in wanted]
    keep_rows, lattices, fracs, types, formulas, pressures, skipped = [], [], [], [], [], [], []
    from gencrystal.checks import require_finite

    for row in tqdm(rows, desc=f"read {Path(url).name}", unit="row", disable=not progress, mininterval=1.0):
        kv = dict(row.key_value_pairs)
        sid = str(kv.get("material_id", f"db-{row.id}"))
        require_finite(row.cell, row.positions, url, f"row id={row.id}")  # refused, not skipped
        try:
            p = check_pressure(kv.get("pressure_gpa", 0.0), name=f"pressure_gpa of row {row.id}")
            atoms = row.toatoms()
            lattice, frac, numbers = transform.arrays(atoms)
        except Exception as exc:
            skipped.append((sid, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            continue
        keep_rows.append({**kv, "material_id": sid, "db_id": row.id})
        lattices.append(lattice)
        fracs.append(frac)
        types.append(numbers)
        formulas.append(atoms.get_chemical_formula(mode="metal"))
        pressures.append(p)
    table = pd.DataFrame(keep_rows)
    if len(table):
        from pymatgen.core import Composition

        table["composition"] = [Composition(f).formula for f in formulas]
        table["formula"] = [Composition(f).reduced_formula for f in formulas]
    return assemble_parsed(table, lattices, fracs, types, pressures, skipped, n_rows=len(rows), source=url)


def load_db_split(
    cfg: Mapping,
    split: str,
    transform: CrystalTransform,
    *,
    data_root: Any = None,
    pressure_bins: Sequence[float] = DEFAULT_PRESSURE_BINS,
):
    """One split of ``data=asedb`` (see the module doc) as a :class:`CrystalDataset`: the
    ``data.reader`` of ``conf/data/asedb.yaml`` (``data_root`` is unused: ``data.url`` names the db)."""
    from gencrystal.data.dataset import CrystalDataset, cache_dir_for, offline_indices

    url = cfg.get("url")
    if not url:
        raise GencrystalError("data=asedb needs data.url=<path.db or postgresql:// URL>")
    url = str(url)
    if not url.startswith("postgres"):
        url = str(Path(url).expanduser().resolve())
    protocol = str(cfg["protocol"])
    if protocol == "auto":
        protocol = "standard"
    if protocol not in ("standard", "offline"):
        raise GencrystalError(f"data.protocol={protocol!r}: use standard or offline")
    splits = cfg["splits"]
    file_split = "val" if protocol == "offline" and split in ("train", "val") else split
    selection = _selection(cfg, splits.get(file_split, file_split))
    levels = _levels(cfg)
    cache_file = None
    if not url.startswith("postgres") and Path(url).is_file():
        cdir = cache_dir_for(cfg, Path(url).parent)
        if cdir is not None:
            key = config_hash(
                {
                    "version": CACHE_VERSION,
                    "transform": transform.config(),
                    "selection": selection,
                    "levels": levels,
                    "source_sha256": file_sha256(url),
                }
            )[:16]
            cache_file = cdir / "asedb" / f"{Path(url).stem}-{key}.pkl"
    parsed = cached_parse(
        cache_file, lambda: read_db(url, selection, transform, progress=bool(cfg["progress"]), levels=levels), url
    )
    indices = None
    if protocol == "offline" and split in ("train", "val") and len(parsed.num_atoms):
        off = cfg["offline"]
        tr, ho = offline_indices(len(parsed.num_atoms), float(off["holdout_fraction"]), int(off["seed"]))
        indices = tr if split == "train" else ho
    ds = CrystalDataset(parsed, indices, name=str(cfg["name"]), split=split, protocol=protocol, pressure_bins=pressure_bins)
    if len(ds) == 0:
        raise GencrystalError(
            f"dataset {url!r} split {split} (selection {selection!r}, levels {levels}) is empty: "
            f"{parsed.n_rows} rows matched, {len(parsed.skipped)} unreadable"
        )
    log.info(
        "%s %s (%s protocol): %d structures from %s [%s; levels %s]",
        ds.name,
        split,
        protocol,
        len(ds),
        url,
        selection,
        levels or "all",
    )
    return ds


def _key_name(column: str) -> str | None:
    """An ASE-db-safe key for a table column (identifier, not reserved), or None to drop it."""
    import ase.db.core
    from ase.data import chemical_symbols

    key = re.sub(r"\W", "_", str(column)).strip("_")
    if not key or key[0].isdigit() or keyword.iskeyword(key):
        key = f"prop_{key}"
    if key in ase.db.core.reserved_keys or key in chemical_symbols:
        key = f"prop_{key}"
    return key


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, str):
        # ASE db refuses strings that read as numbers ("18517"): store them as numbers
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
        return value
    if isinstance(value, (bool, int, float)):
        return value
    return None if value is None else str(value)


def write_structures(
    url: str,
    structures: Sequence,
    *,
    pressures_gpa: Sequence[float] | float,
    level_of_theory: str,
    sources: Sequence[str],
    key_values: Sequence[Mapping[str, Any]] | None = None,
    split: str | None = None,
) -> list[int]:
    """Write structures (ASE Atoms or pymatgen Structures) with schema keys; returns new row ids.

    ``sources`` label each row (``source`` key) and make the write resumable: a source
    already present in the database is skipped (its id is not returned).
    """
    from gencrystal.db.schema import add_structure, connect
    from gencrystal.structures import to_atoms

    n = len(structures)
    if np.ndim(pressures_gpa) == 0:
        pressures_gpa = [float(pressures_gpa)] * n  # type: ignore[arg-type]
    if len(sources) != n or len(pressures_gpa) != n or (key_values is not None and len(key_values) != n):  # type: ignore[arg-type]
        raise GencrystalError("structures, pressures, sources and key_values differ in length")
    db = connect(url)
    existing = {row.get("source") for row in db.select()}
    ids = []
    with db:
        for i, obj in enumerate(structures):
            if sources[i] in existing:
                continue
            kv: dict[str, Any] = {}
            for k, v in (key_values[i] if key_values is not None else {}).items():
                name = _key_name(k)
                v = _scalar(v)
                if name and v is not None and k not in _NOT_KEYS:
                    kv[name] = v
            if split:
                kv["split"] = split
            for reserved in ("pressure_gpa", "level_of_theory", "source"):
                kv.pop(reserved, None)
            ids.append(
                add_structure(
                    db,
                    to_atoms(obj),
                    pressure_gpa=float(pressures_gpa[i]),  # type: ignore[index]
                    level_of_theory=level_of_theory,
                    source=str(sources[i]),
                    **kv,
                )
            )
    return ids


def dataset_to_db(dataset, url: str, *, split: str | None = None, level_of_theory: str = "dataset") -> list[int]:
    """Write a :class:`CrystalDataset` (canonical cells) into an ASE db, one row per structure.

    Every scalar table column becomes a key (sanitised: ``spacegroup.number`` →
    ``spacegroup_number``, reserved names prefixed ``prop_``); ``source`` is
    ``<dataset name>:<material_id>``; ``split`` defaults to the dataset's split.
    """
    atoms = [dataset.to_atoms(i) for i in range(len(dataset))]
    for a in atoms:
        a.info = {}
    rows = dataset.table.to_dict("records")
    return write_structures(
        url,
        atoms,
        pressures_gpa=dataset.table["pressure"].tolist(),
        level_of_theory=level_of_theory,
        sources=[f"{dataset.name}:{r['material_id']}" for r in rows],
        key_values=rows,
        split=split if split is not None else (dataset.split or None),
    )
