"""pymatgen ``ComputedStructureEntry`` JSON files, plain or compressed (``.json``,
``.json.bz2``, ``.json.gz``, ``.json.xz``) — the format of the Alexandria datasets.

A file holds a list of entry dicts, a dict with an ``entries`` list (Alexandria's
layout), or a single entry. Each entry is rebuilt with
:meth:`ComputedStructureEntry.from_dict`; a malformed one is a bad row. Per entry:

- energy per atom: ``uncorrected_energy / N`` (the raw DFT energy, without
  compatibility corrections), eV/atom;
- pressure: the first of ``pressure_keys`` found in ``entry.data`` then
  ``entry.parameters`` (GPa; times ``pressure_scale``), else ``pressure_gpa=``;
- level of theory: ``level_of_theory=`` if given, else ``entry.parameters["run_type"]``
  (``GGA`` -> pbe, ``GGA+U`` -> pbe+u, ``R2SCAN`` -> r2scan, others lower-cased);
- id: ``entry.entry_id`` (else ``data["mat_id"]``, else the index).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from gencrystal.db.importing import BadRow, ImportRecord, SourceReader
from gencrystal.errors import GencrystalError

SUFFIXES = (".json", ".json.bz2", ".json.gz", ".json.xz")
RUN_TYPES = {
    "gga": "pbe",
    "gga+u": "pbe+u",
    "pbe": "pbe",
    "pbe+u": "pbe+u",
    "r2scan": "r2scan",
    "r2scan+u": "r2scan+u",
    "scan": "scan",
    "pbesol": "pbesol",
}


class ComputedEntries(SourceReader):
    """``ComputedStructureEntry`` JSON files under ``path``."""

    kind = "entries"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        pressure_keys: Sequence[str] = ("pressure_gpa", "pressure"),
        pressure_scale: float = 1.0,
        relaxed: bool = True,
    ):
        super().__init__(path, level_of_theory, pressure_gpa, label)
        self.pressure_keys = list(pressure_keys)
        self.pressure_scale = float(pressure_scale)
        self.relaxed = bool(relaxed)

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))

    def _load(self, file: Path) -> list:
        from monty.io import zopen

        try:
            with zopen(str(file), "rt") as fh:
                obj = json.load(fh)
        except Exception as exc:
            raise GencrystalError(
                f"cannot read entries file {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        if isinstance(obj, dict) and isinstance(obj.get("entries"), list):
            return obj["entries"]
        if isinstance(obj, list):
            return obj
        if isinstance(obj, dict) and "structure" in obj:
            return [obj]
        raise GencrystalError(f"{str(file)!r} holds no ComputedStructureEntry list (nor a dict with 'entries')")

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        import warnings

        from pymatgen.entries.computed_entries import ComputedStructureEntry

        from gencrystal.structures import to_atoms

        for i, d in enumerate(self._load(file)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    entry = ComputedStructureEntry.from_dict(d)
                atoms = to_atoms(entry.structure)
            except Exception as exc:
                yield BadRow(i, f"not a ComputedStructureEntry ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
                continue
            data, params = dict(entry.data or {}), dict(entry.parameters or {})
            p = next((data[k] if k in data else params[k] for k in self.pressure_keys if k in data or k in params), None)
            if p is not None:
                try:
                    p = float(p) * self.pressure_scale
                except (TypeError, ValueError):
                    yield BadRow(i, f"pressure {p!r} is not a number")
                    continue
            rt = str(params.get("run_type", "") or "").strip().lower()
            level = RUN_TYPES.get(rt, rt) or None
            ident = entry.entry_id or data.get("mat_id") or f"entry{i}"
            extra = {}
            for k in ("e_above_hull", "e_form", "band_gap_ind", "spg"):
                if isinstance(data.get(k), (int, float)):
                    extra[f"src_{k}"] = data[k]
            yield ImportRecord(
                atoms=atoms,
                ident=f"{_stem(file)}:{ident}",
                pressure_gpa=p,
                energy_per_atom=float(entry.uncorrected_energy) / len(atoms),
                level_of_theory=level,
                relaxed=self.relaxed,
                extra=extra,
            )


def _stem(file: Path) -> str:
    name = file.name
    for s in SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return file.stem
