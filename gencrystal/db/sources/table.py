"""Tabular datasets in the CDVAE / Cond-CDVAE / CrystalFlow style: CSV, feather or parquet
files with a CIF column, one structure per row.

Columns are found by name through ``columns`` (a mapping from our field to the column
names to try, first present wins; configurable in ``conf/import_source/table.yaml``):

- ``cif`` (required): the structure as CIF text, parsed with pymatgen;
- ``id``: the row's name (``material_id``; else the row index);
- ``pressure_gpa``: the pressure column, GPa (times ``pressure_scale``, e.g. 0.1 for a
  column in kbar); else the reader's ``pressure_gpa=``;
- ``energy_per_atom`` / ``enthalpy_per_atom``: eV/atom; or ``energy`` / ``enthalpy``
  per cell (eV), divided by the atom count. Cond-CDVAE's ``enthalpy0*`` columns (the
  enthalpy of the first ionic step) are deliberately not aliases of the final enthalpy.

``path`` is one file or a folder of them (e.g. ``train/val/test.feather``); each file is
one transaction, its rows are records in file order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gencrystal.db.importing import BadRow, ImportRecord, SourceReader
from gencrystal.errors import GencrystalError

SUFFIXES = (".csv", ".feather", ".parquet", ".csv.gz", ".csv.bz2")
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "cif": ["cif"],
    "id": ["material_id", "mp_id", "id"],
    "pressure_gpa": ["pressure", "pressure_gpa", "pressure_GPa", "P"],
    "energy_per_atom": ["energy_per_atom", "e_per_atom", "energy_pa"],
    "enthalpy_per_atom": ["enthalpy_per_atom", "h_per_atom"],
    "energy": ["energy", "total_energy"],
    "enthalpy": ["enthalpy"],
}


class TableSource(SourceReader):
    """CSV / feather / parquet files with a CIF column under ``path``."""

    kind = "table"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
        pressure_scale: float = 1.0,
        relaxed: bool = True,
        keep_columns: Sequence[str] = (),
    ):
        super().__init__(path, level_of_theory, pressure_gpa, label)
        self.columns = {k: list(v) for k, v in DEFAULT_COLUMNS.items()}
        for k, v in dict(columns or {}).items():
            if k not in DEFAULT_COLUMNS:
                raise GencrystalError(f"columns.{k}: unknown field; use one of {sorted(DEFAULT_COLUMNS)}")
            self.columns[k] = [v] if isinstance(v, str) else list(v)
        self.pressure_scale = float(pressure_scale)
        self.relaxed = bool(relaxed)
        self.keep_columns = list(keep_columns or ())

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))

    def _frame(self, file: Path):
        import pandas as pd

        name = file.name.lower()
        try:
            if name.endswith(".feather"):
                return pd.read_feather(file)
            if name.endswith(".parquet"):
                return pd.read_parquet(file)
            if ".csv" in name:
                return pd.read_csv(file)
        except ImportError as exc:
            raise GencrystalError(f"reading {file.name} needs pyarrow (pip install pyarrow): {exc}") from exc
        except Exception as exc:
            raise GencrystalError(
                f"cannot read table {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        raise GencrystalError(f"unsupported table {str(file)!r} (use .csv, .feather or .parquet)")

    def _column(self, frame, field: str) -> str | None:
        return next((c for c in self.columns[field] if c in frame.columns), None)

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        import warnings

        from pymatgen.core import Structure

        from gencrystal.structures import to_atoms

        frame = self._frame(file)
        cif_col = self._column(frame, "cif")
        if cif_col is None:
            raise GencrystalError(f"{str(file)!r} has no CIF column (tried {self.columns['cif']}; set columns.cif=...)")
        cols = {f: self._column(frame, f) for f in self.columns if f != "cif"}
        for i, row in enumerate(frame.to_dict("records")):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    atoms = to_atoms(Structure.from_str(str(row[cif_col]), fmt="cif"))
            except Exception as exc:
                yield BadRow(i, f"unparsable CIF ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
                continue
            n = len(atoms)
            e = _num(row, cols["energy_per_atom"])
            h = _num(row, cols["enthalpy_per_atom"])
            if e is None and cols["energy"]:
                e = _per_atom(_num(row, cols["energy"]), n)
            if h is None and cols["enthalpy"]:
                h = _per_atom(_num(row, cols["enthalpy"]), n)
            p = _num(row, cols["pressure_gpa"])
            if p is not None:
                p = p * self.pressure_scale
            ident = str(row[cols["id"]]) if cols["id"] and row.get(cols["id"]) is not None else f"row{i}"
            extra = {k: row[k] for k in self.keep_columns if k in row}
            yield ImportRecord(
                atoms=atoms,
                ident=f"{file.stem}:{ident}",
                pressure_gpa=p,
                energy_per_atom=e,
                enthalpy_per_atom=h,
                relaxed=self.relaxed,
                extra=extra,
            )


def _num(row: dict, col: str | None) -> Any:
    """The column's value as a float, None when the column is absent; NaN stays NaN (a bad row)."""
    if col is None:
        return None
    v = row.get(col)
    if v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _per_atom(v: float | None, n: int) -> float | None:
    return None if v is None else (v / n if math.isfinite(v) else v)
