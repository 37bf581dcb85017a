"""Reading CDVAE/DiffCSP-format tables (CSV with a ``cif`` column, or feather) into
canonical arrays, with an on-disk cache.

A source file is parsed once (pymatgen CIF parser + :class:`CrystalTransform`, several
processes, tqdm progress) into a :class:`ParsedSource`: concatenated arrays plus the
row-aligned property table. The result is pickled under the cache directory, keyed by
the SHA-256 of the source file and of the transform/column settings, so a second load
only unpickles it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gencrystal.data.transforms import CrystalTransform
from gencrystal.errors import GencrystalError

log = logging.getLogger("gencrystal.data")

#: Bump when the cached layout or the parsing changes (invalidates every cache).
CACHE_VERSION = 2
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
REPO_DATA = REPO_ROOT / "data"


@dataclass
class ParsedSource:
    """Canonical arrays of every readable row of one source file.

    Attributes:
        lattices: [N, 3, 3] float64, Å (rows = lattice vectors, after the transform).
        frac: [M, 3] float64 in [0, 1), all atoms of all structures concatenated.
        atom_types: [M] int64 atomic numbers; num_atoms: [N] int64; pressure: [N] float64 GPa.
        table: row-aligned pandas table (``material_id``, ``formula``, ``composition``,
            ``pressure``, ``num_atoms`` and every column of the source).
        skipped: ``[(id, reason)]`` of rows that could not be read.
        n_rows: rows in the source file; source: its path.
    """

    lattices: np.ndarray
    frac: np.ndarray
    atom_types: np.ndarray
    num_atoms: np.ndarray
    pressure: np.ndarray
    table: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_rows: int = 0
    source: str = ""

    @property
    def offsets(self) -> np.ndarray:
        """Start index of each structure's atoms in ``frac``/``atom_types`` ([N + 1])."""
        return np.concatenate([[0], np.cumsum(self.num_atoms)]).astype(np.int64)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(settings: dict[str, Any]) -> str:
    """SHA-256 hex digest of a JSON-serialisable settings dict (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.feather`` table; pandas' saved index columns (``Unnamed: 0``) are dropped."""
    p = Path(path)
    try:
        if p.suffix == ".feather":
            df = pd.read_feather(p)
        elif p.suffix == ".csv":
            df = pd.read_csv(p)
        else:
            raise GencrystalError(f"unsupported table {str(p)!r} (expected .csv or .feather)")
    except GencrystalError:
        raise
    except Exception as exc:
        raise GencrystalError(f"cannot read table {str(p)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    drop = [c for c in df.columns if str(c).startswith("Unnamed:") or str(c) == "index"]
    return df.drop(columns=drop).reset_index(drop=True)


def writable_dir(path: Path) -> bool:
    """True when ``path`` (or its nearest existing parent) can be written to.

    A folder without any write permission bit counts as read-only even for root (who
    could write anyway), so shared read-only data trees are never written into.
    """
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return os.access(p, os.W_OK) and bool(p.stat().st_mode & 0o222)


def default_cache_dir(data_root: Path) -> Path:
    """``<data_root>/cache``, or the repository's git-ignored ``data/cache`` when the root is read-only."""
    return data_root / "cache" if writable_dir(data_root) else REPO_DATA / "cache"


def _parse_cif(args: tuple[str, str, CrystalTransform]) -> tuple:
    """Worker: ``(ok, id, payload)``; payload = (lattice, frac, Z, formula) or the error text.

    ``ok`` is ``None`` for a CIF that parses into a NaN/Inf cell or coordinate (an error, not a skip).
    """
    sid, cif, transform = args
    from pymatgen.core import Structure

    try:
        if not isinstance(cif, str) or not cif.strip():
            raise ValueError("empty CIF")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns on CIF quirks and missing element data
            s = Structure.from_str(cif, fmt="cif")
        if not (np.isfinite(s.lattice.matrix).all() and np.isfinite(s.frac_coords).all()):
            return None, sid, "cell or coordinates contain NaN/Inf (non-finite structures are refused)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lattice, frac, numbers = transform.arrays(s)
        return True, sid, (lattice, frac, numbers, s.composition.formula)
    except Exception as exc:  # pymatgen raises many types on malformed CIFs
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, sid, msg[:200]


def parse_table(
    df: pd.DataFrame,
    transform: CrystalTransform,
    *,
    id_column: str = "material_id",
    cif_column: str = "cif",
    pressure_column: str = "pressure",
    workers: int = 1,
    source: str = "",
    progress: bool = True,
) -> ParsedSource:
    """Parse every CIF of ``df`` into a :class:`ParsedSource`; unreadable rows are skipped and listed.

    A row whose CIF parses into a NaN/Inf cell or coordinate is an error (file and row named),
    not a skip: such a table is corrupt, and training on it would give NaN losses.
    """
    from tqdm.auto import tqdm

    from gencrystal.checks import require_finite
    from gencrystal.units import check_pressure

    if cif_column not in df.columns:
        raise GencrystalError(f"table {source!r} has no {cif_column!r} column (columns: {', '.join(map(str, df.columns))})")
    ids = df[id_column].astype(str).tolist() if id_column in df.columns else [str(i) for i in range(len(df))]
    jobs = [(sid, cif, transform) for sid, cif in zip(ids, df[cif_column].tolist())]
    workers = max(1, min(int(workers), os.cpu_count() or 1))
    bar = dict(total=len(jobs), desc=f"parse {Path(source).name or 'table'}", unit="cif", disable=not progress, mininterval=1.0)
    if workers > 1 and len(jobs) > 200:
        from gencrystal.fanout import parallel_map

        results = parallel_map(_parse_cif, jobs, workers=workers, progress=progress,
                               desc=f"parse {Path(source).name or 'table'}", chunk_size=64)
    else:
        results = [_parse_cif(j) for j in tqdm(jobs, **bar)]

    pressures_in = df[pressure_column] if pressure_column in df.columns else None
    keep, lattices, fracs, types, formulas, pressures, skipped = [], [], [], [], [], [], []
    for i, (ok, sid, payload) in enumerate(results):
        if ok is None:
            raise GencrystalError(f"{str(source)!r} row {i} ({sid}): {payload}")
        if ok:
            p = 0.0
            if pressures_in is not None:
                try:
                    p = check_pressure(pressures_in.iloc[i], name=f"{pressure_column} of {sid}")
                except GencrystalError as exc:
                    ok, payload = False, str(exc)
        if not ok:
            skipped.append((sid, str(payload)))
            continue
        lattice, frac, numbers, formula = payload
        require_finite(lattice, frac, str(source), f"row {i} ({sid})")  # after the transform, too
        keep.append(i)
        lattices.append(lattice)
        fracs.append(frac)
        types.append(numbers)
        formulas.append(formula)
        pressures.append(p)
    table = df.iloc[keep].reset_index(drop=True).copy()
    table["material_id"] = [ids[i] for i in keep]
    table["composition"] = formulas
    if "formula" not in table.columns:
        from pymatgen.core import Composition

        table["formula"] = [Composition(f).reduced_formula for f in formulas]
    return assemble_parsed(table, lattices, fracs, types, pressures, skipped, n_rows=len(df), source=str(source))


def assemble_parsed(table, lattices: list, fracs: list, types: list, pressures: list, skipped: list,
                    n_rows: int, source: str) -> "ParsedSource":
    """Stack per-structure arrays into a :class:`ParsedSource` and add the ``pressure`` (GPa)
    and ``num_atoms`` columns to its row-aligned ``table`` (shared by every reader)."""
    table["pressure"] = np.asarray(pressures, dtype=np.float64)
    num_atoms = np.array([len(t) for t in types], dtype=np.int64)
    table["num_atoms"] = num_atoms
    return ParsedSource(
        lattices=np.stack(lattices) if lattices else np.zeros((0, 3, 3)),
        frac=np.concatenate(fracs) if fracs else np.zeros((0, 3)),
        atom_types=np.concatenate(types) if types else np.zeros(0, dtype=np.int64),
        num_atoms=num_atoms,
        pressure=np.asarray(pressures, dtype=np.float64),
        table=table,
        skipped=skipped,
        n_rows=n_rows,
        source=source,
    )


def report_skipped(parsed: ParsedSource, max_ids: int = 50) -> None:
    """Log the ids (and first reason) of rows that could not be read."""
    if not parsed.skipped:
        return
    shown = ", ".join(f"{sid} ({why})" for sid, why in parsed.skipped[:max_ids])
    more = f" and {len(parsed.skipped) - max_ids} more" if len(parsed.skipped) > max_ids else ""
    log.warning("%s: skipped %d of %d rows that could not be read: %s%s",
                parsed.source, len(parsed.skipped), parsed.n_rows, shown, more)


def load_table_source(
    path: str | Path,
    transform: CrystalTransform,
    cache_dir: Path | None,
    *,
    id_column: str = "material_id",
    cif_column: str = "cif",
    pressure_column: str = "pressure",
    workers: int = 1,
    progress: bool = True,
) -> tuple[ParsedSource, str]:
    """Parse ``path`` (CSV/feather) or reuse its cache; returns ``(parsed, cache key)``.

    The cache file is ``<cache_dir>/<parent folder>/<stem>-<key>.pkl`` with ``key`` the
    first 16 hex digits of SHA-256(source bytes + settings). ``cache_dir=None`` disables it.
    """
    path = Path(path)
    settings = {
        "version": CACHE_VERSION,
        "transform": transform.config(),
        "columns": [id_column, cif_column, pressure_column],
        "source_sha256": file_sha256(path),
    }
    key = config_hash(settings)[:16]
    cache_file = (cache_dir / path.parent.name / f"{path.stem}-{path.suffix.lstrip('.')}-{key}.pkl") if cache_dir else None

    def build() -> ParsedSource:
        df = read_table(path)
        return parse_table(df, transform, id_column=id_column, cif_column=cif_column,
                           pressure_column=pressure_column, workers=workers, source=str(path), progress=progress)

    return cached_parse(cache_file, build, str(path)), key


def cached_parse(cache_file: Path | None, build, source: str) -> ParsedSource:
    """Unpickle ``cache_file`` if it is there and readable, else ``build()`` and pickle it atomically.

    Skipped rows are logged either way (so a cached load still names them).
    """
    if cache_file is not None and cache_file.exists():
        try:
            with open(cache_file, "rb") as fh:
                parsed = pickle.load(fh)
            parsed.source = source
            log.info("loaded %d structures of %s from cache %s", len(parsed.num_atoms), source, cache_file)
            report_skipped(parsed)
            return parsed
        except Exception as exc:  # a truncated or foreign cache file is rebuilt, not trusted
            log.warning("ignoring unreadable cache %s (%s); re-parsing %s", cache_file, type(exc).__name__, source)
    parsed = build()
    report_skipped(parsed)
    if cache_file is not None:
        from gencrystal.io import atomic_write

        try:
            with atomic_write(cache_file, "wb") as fh:
                pickle.dump(parsed, fh, protocol=pickle.HIGHEST_PROTOCOL)
            log.info("cached %s -> %s", source, cache_file)
        except OSError as exc:
            log.warning("could not write cache %s: %s", cache_file, exc)
    return parsed
