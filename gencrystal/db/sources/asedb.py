"""Another ASE database (SQLite file or PostgreSQL URL), e.g. one written by another group
or an older gencrystal database.

The whole database is one source file (one transaction). Per row (optionally narrowed by
an ASE ``selection`` query): the structure, ``pressure_gpa`` (else the ``pressure_key``
key, GPa), ``energy_per_atom`` / ``enthalpy_per_atom`` keys (else the row's ``energy``
divided by N), ``level_of_theory`` and ``relaxed`` keys; the id is the row's
``material_id`` (else ``row<id>``). A record's stable key uses the source row id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gencrystal.db.importing import BadRow, ImportRecord, SourceReader, _sha256
from gencrystal.errors import GencrystalError


class AseDatabase(SourceReader):
    """Rows of an ASE database at ``path`` (``.db`` file or ``postgresql://`` URL)."""

    kind = "asedb"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        selection: str | None = None,
        pressure_key: str = "pressure_gpa",
        relaxed: bool = True,
    ):
        self.url = str(path)
        super().__init__(path, level_of_theory, pressure_gpa, label)
        self.selection = selection or None
        self.pressure_key = str(pressure_key)
        self.relaxed = bool(relaxed)

    @property
    def _remote(self) -> bool:
        return self.url.startswith("postgres")

    def files(self) -> list[Path]:
        return [Path(self.url)]

    def file_key(self, file: Path) -> str:
        name = self.url.rsplit("@", 1)[-1] if self._remote else file.name
        return f"{self.kind}:{name}" + (f"[{self.selection}]" if self.selection else "")

    def digest(self, file: Path) -> str:
        if self._remote:  # cannot hash a server: row count and last id stand in for the content
            import ase.db

            db = ase.db.connect(self.url)
            last = max((r.id for r in db.select(include_data=False)), default=0)
            return f"postgres:{db.count()}:{last}"
        return _sha256([file])

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        import ase.db

        try:
            db = ase.db.connect(self.url)
            rows = list(db.select(self.selection) if self.selection else db.select())
        except Exception as exc:
            raise GencrystalError(
                f"cannot read ASE database {self.url!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        for row in rows:
            kv = dict(row.key_value_pairs)
            try:
                atoms = row.toatoms()
            except Exception as exc:
                yield BadRow(row.id, f"row {row.id}: {exc}")
                continue
            n = len(atoms)
            e = kv.get("energy_per_atom")
            if e is None and row.get("energy") is not None:
                e = float(row.energy) / n
            p = kv.get("pressure_gpa", kv.get(self.pressure_key))
            atoms.calc = None
            atoms.info = {}
            yield ImportRecord(
                atoms=atoms,
                ident=str(kv.get("material_id") or f"row{row.id}"),
                pressure_gpa=None if p is None else float(p),
                energy_per_atom=e,
                enthalpy_per_atom=kv.get("enthalpy_per_atom"),
                level_of_theory=kv.get("level_of_theory"),
                relaxed=bool(kv.get("relaxed", self.relaxed)),
                converged=None if "converged" not in kv else bool(kv["converged"]),
                index=row.id,
            )
