"""Structure files with labels: extxyz files (every frame) and CIF files (every block),
one file or a folder (tree) of them; each file is one transaction.

- extxyz (``.extxyz``/``.xyz``, read with ASE): the pressure is the frame's
  ``pressure_key`` info value (GPa, e.g. ``pressure_gpa=50`` in the comment line); the
  energy is the frame's ``energy_per_atom``/``enthalpy_per_atom`` info, else its
  ``energy`` (per cell, e.g. from a single-point calculator) divided by N; the level of
  theory is the ``level_key`` info value;
- CIF (read with pymatgen's CifParser): the same keys as CIF data items, with a leading
  underscore (``_pressure_gpa 50``, ``_energy_per_atom -5.1``, ``_level_of_theory pbe``).

Missing values fall back to ``pressure_gpa=`` / ``level_of_theory=``. ``relaxed`` is the
frame's ``relaxed`` info/item when present, else the reader's ``relaxed`` option.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gencrystal.db.importing import BadRow, ImportRecord, SourceReader
from gencrystal.errors import GencrystalError

XYZ = (".extxyz", ".xyz")
CIF = (".cif",)


class StructureFiles(SourceReader):
    """extxyz / CIF files under ``path`` with pressure (GPa) and energy keys."""

    kind = "files"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        pressure_key: str = "pressure_gpa",
        level_key: str = "level_of_theory",
        relaxed: bool = True,
    ):
        super().__init__(path, level_of_theory, pressure_gpa, label)
        self.pressure_key = str(pressure_key)
        self.level_key = str(level_key)
        self.relaxed = bool(relaxed)

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in XYZ + CIF)

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        if file.suffix.lower() in CIF:
            yield from self._read_cif(file)
        elif file.suffix.lower() in XYZ:
            yield from self._read_xyz(file)
        else:
            raise GencrystalError(f"unsupported structure file {str(file)!r} (use .extxyz/.xyz or .cif)")

    def _read_xyz(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        from ase.io import read

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames = read(str(file), index=":", format="extxyz")
        except Exception as exc:
            raise GencrystalError(
                f"cannot read {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        for i, atoms in enumerate(frames):
            info = dict(atoms.info)
            e = _float(info.get("energy_per_atom"))
            h = _float(info.get("enthalpy_per_atom"))
            if e is None and atoms.calc is not None and "energy" in atoms.calc.results:
                e = float(atoms.calc.results["energy"]) / len(atoms)
            if e is None and "energy" in info:
                total = _float(info["energy"])
                e = total / len(atoms) if total is not None else float("nan")
            clean = atoms.copy()
            clean.calc = None
            clean.info = {}
            ident = str(info.get("id", info.get("material_id", f"{file.stem}-{i}")))
            yield ImportRecord(
                atoms=clean,
                ident=ident,
                pressure_gpa=_float(info.get(self.pressure_key)),
                energy_per_atom=e,
                enthalpy_per_atom=h,
                level_of_theory=_str(info.get(self.level_key)),
                relaxed=_bool(info.get("relaxed"), self.relaxed),
            )

    def _read_cif(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        from pymatgen.io.cif import CifParser

        from gencrystal.structures import to_atoms

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parser = CifParser(str(file))
                blocks = parser.as_dict()
        except Exception as exc:
            raise GencrystalError(
                f"cannot read {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        for i, (name, items) in enumerate(blocks.items()):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    structure = parser.parse_structures(primitive=False, on_error="raise")[i]
                atoms = to_atoms(structure)
            except Exception as exc:
                yield BadRow(
                    i, f"block {name!r}: unparsable structure ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                )
                continue
            yield ImportRecord(
                atoms=atoms,
                ident=f"{file.stem}" if len(blocks) == 1 else f"{file.stem}-{name}",
                pressure_gpa=_float(items.get("_" + self.pressure_key)),
                energy_per_atom=_float(items.get("_energy_per_atom")),
                enthalpy_per_atom=_float(items.get("_enthalpy_per_atom")),
                level_of_theory=_str(items.get("_" + self.level_key)),
                relaxed=_bool(items.get("_relaxed"), self.relaxed),
            )


def _float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _str(v: Any) -> str | None:
    return None if v in (None, "", "?", ".") else str(v)


def _bool(v: Any, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.strip().lower() in ("true", "t", "1", "yes")
    return bool(v)
