"""CALYPSO searches, as CALYPSO's analysis kit (``cak.py``) leaves them in ``results/``.

After a search, CALYPSO's manual has the user run ``cak.py`` inside the ``results``
folder. That writes ``Analysis_Output.dat``: one line per structure, sorted by enthalpy
(first column: the rank, with the structure's number among all generated structures in
brackets; second column: the enthalpy; then space-group numbers). With ``--vasp`` (or
``--cif``) and ``-m <tolerance>`` it also writes the structures into ``dir_<tolerance>/``
as ``UCell_<rank>_<space group>.vasp`` (POSCAR, conventional cell) or
``<rank>_<space group>.cif``. This reader reads exactly these files:

- ``results/Analysis_Output.dat`` (one source file = one transaction; its digest also
  covers the structure files it points to);
- ``results/dir_<tol>/UCell_<rank>_*.vasp`` (read with pymatgen's Poscar), else
  ``results/dir_<tol>/<rank>_*.cif`` (not the primitive ``*_p.cif``), for every rank;
  ``tolerance`` picks the folder (default: the first ``dir_*`` in sorted order);
- the pressure: ``PSTRESS`` (kbar -> GPa) of the last ``INCAR_<n>`` beside ``results/``
  (CALYPSO runs VASP with those INCARs), else ``pressure_gpa=``;
- the level of theory: from the same INCAR's tags, else ``level_of_theory=``.

The enthalpy column is taken as eV/atom (``enthalpy_per: atom``); set
``enthalpy_per: cell`` if yours is per cell. The energy per atom follows as H − P·V/N.
CALYPSO structures are locally optimised, so rows are ``relaxed``. Ranks without a
structure file (``cak.py`` writes structures for the ranks it lists with ``-n``) are
reported as bad rows. A record's stable key is its structure number (in brackets), which
does not change when ``cak.py`` is run again after more generations. ``path`` is the calculation folder, its ``results`` folder, or a
tree holding several searches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from gencrystal.db.importing import (
    BadRow,
    ImportRecord,
    SourceReader,
    _sha256,
    level_from_incar,
)
from gencrystal.errors import GencrystalError

ANALYSIS_FILE = "Analysis_Output.dat"
_ROW = re.compile(r"^\s*(\d+)\s*(?:\(\s*(\d+)\s*\))?\s+([-+0-9.eEdD]+|nan|NaN|inf|-inf)\s*(.*)$")


class CalypsoResults(SourceReader):
    """CALYPSO ``results`` folders (with ``cak.py`` output) under ``path``."""

    kind = "calypso"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        tolerance: str | float | None = None,
        enthalpy_per: str = "atom",
    ):
        super().__init__(path, level_of_theory, pressure_gpa, label)
        if enthalpy_per not in ("atom", "cell"):
            raise GencrystalError(f"enthalpy_per={enthalpy_per!r}: use atom or cell")
        self.enthalpy_per = enthalpy_per
        self.tolerance = None if tolerance in (None, "") else str(tolerance)

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path] if self.path.name == ANALYSIS_FILE else []
        return sorted(self.path.rglob(ANALYSIS_FILE))

    def file_key(self, file: Path) -> str:
        return self.rel_key(file.parent)

    def _structure_dir(self, results: Path) -> Path | None:
        if self.tolerance is not None:
            d = results / f"dir_{self.tolerance}"
            if not d.is_dir():
                raise GencrystalError(f"{str(results)!r} has no dir_{self.tolerance}/ (run cak.py --vasp -m {self.tolerance})")
            return d
        dirs = sorted(d for d in results.glob("dir_*") if d.is_dir())
        return dirs[0] if dirs else None

    def _structure_files(self, results: Path) -> dict[int, Path]:
        d = self._structure_dir(results)
        out: dict[int, Path] = {}
        if d is None:
            return out
        for f in sorted(d.glob("UCell_*_*.vasp")):
            m = re.match(r"UCell_(\d+)_", f.name)
            if m:
                out.setdefault(int(m.group(1)), f)
        for f in sorted(d.glob("*_*.cif")):
            m = re.match(r"(\d+)_\d+\.cif$", f.name)
            if m:
                out.setdefault(int(m.group(1)), f)
        return out

    def digest(self, file: Path) -> str:
        return _sha256([file, *self._structure_files(file.parent).values()])

    def _incar(self, results: Path) -> dict | None:
        from pymatgen.io.vasp.inputs import Incar

        incars = sorted(results.parent.glob("INCAR_*"), key=lambda p: (len(p.name), p.name))
        if not incars:
            return None
        try:
            return dict(Incar.from_file(str(incars[-1])))
        except Exception as exc:
            raise GencrystalError(f"cannot read {str(incars[-1])!r}: {exc}") from exc

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        from gencrystal.units import KBAR_PER_GPA

        results = file.parent
        structures = self._structure_files(results)
        incar = self._incar(results)
        pressure = None
        level = None
        if incar is not None:
            pressure = float(incar.get("PSTRESS", 0.0) or 0.0) / KBAR_PER_GPA
            level = level_from_incar(incar)
        rows = _parse_analysis(file)
        if not rows:
            raise GencrystalError(f"{str(file)!r} lists no structures (is it the output of cak.py?)")
        for rank, number, value, rest in rows:
            path = structures.get(rank)
            if path is None:
                yield BadRow(
                    rank,
                    f"no structure file for rank {rank} in {results.name}/dir_*/ "
                    "(run cak.py --vasp -m <tol> with -n covering every listed rank)",
                )
                continue
            try:
                atoms = _read_structure(path)
            except ValueError as exc:
                yield BadRow(rank, f"{path.name}: {exc}")
                continue
            h = value if self.enthalpy_per == "atom" else value / len(atoms)
            sg = rest.split()[0] if rest.split() else ""
            extra = {"calypso_rank": rank, "calypso_structure": number if number is not None else rank}
            if sg.isdigit():
                extra["space_group_number"] = int(sg)
            yield ImportRecord(
                atoms=atoms,
                ident=f"{self.file_key(file).split(':', 1)[1]}#{rank}",
                pressure_gpa=pressure,
                enthalpy_per_atom=h,
                level_of_theory=level,
                relaxed=True,
                extra=extra,
                index=number if number is not None else rank,
            )


def _parse_analysis(file: Path) -> list[tuple[int, int | None, float, str]]:
    """``(rank, structure number, enthalpy, rest of line)`` of every data line; header
    and separator lines (not starting with a rank) are skipped."""
    out = []
    for line in file.read_text(errors="replace").splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3).replace("d", "e").replace("D", "e"))
        except ValueError:
            continue
        out.append((int(m.group(1)), int(m.group(2)) if m.group(2) else None, value, m.group(4)))
    return out


def _read_structure(path: Path):
    import warnings

    from gencrystal.structures import to_atoms

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".vasp":
                from pymatgen.io.vasp.inputs import Poscar

                structure = Poscar.from_file(str(path), check_for_potcar=False).structure
            else:
                from pymatgen.core import Structure

                structure = Structure.from_file(str(path))
    except Exception as exc:
        raise ValueError(f"unreadable structure ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return to_atoms(structure)
