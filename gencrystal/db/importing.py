"""Importing labelled structures (DFT runs, search outputs, published datasets) into the
structure database, with provenance on every row.

A *reader* (one small module per format in :mod:`gencrystal.db.sources`, chosen by
``_target_`` from ``conf/import_source/``) lists the source *files* of what it is given
and turns each file into :class:`ImportRecord` s (or :class:`BadRow` s naming what is
wrong with one). :func:`import_source` then writes the records of **one file in one
database transaction** together with that file's entry in the import ledger
(``db.metadata["gencrystal_import_files"]``: file key -> content digest and counts):

- nothing of a file is half-imported: a kill mid-file rolls the whole file back;
- a re-run skips every file whose digest is in the ledger (unless it had bad records:
  those files are read again, e.g. after ``pressure_gpa=`` was added), and every record whose
  stable key (``import_key = "<kind>:<file>#<index>"``) is already in the database
  (as a row or among a row's ``merged_ids``), so it adds nothing twice;
- a bad record (unparsable, non-finite energy or coordinates, missing or negative
  pressure, no level of theory) is reported with its file and index and skipped, or,
  with ``on_bad_row="fatal"``, stops the import before that file writes anything;
- duplicates are merged as in ``db build``: same reduced formula and level of theory,
  pressures within ``pressure_tol_gpa``, and pymatgen's StructureMatcher fits
  (``merge_matcher`` setting of :mod:`gencrystal.matching`); the lower enthalpy per atom
  stays, the other's ``import_key`` is appended to ``merged_ids``.

Units: pressure GPa, energies eV/atom, H = (E + P·V)/N (:func:`gencrystal.units.enthalpy`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gencrystal.db.schema import (
    add_structure,
    clean_key_values,
    connect,
    normalise_level,
)
from gencrystal.errors import GencrystalError

LEDGER_KEY = "gencrystal_import_files"


@dataclass
class ImportRecord:
    """One labelled structure read from a source file.

    ``pressure_gpa``, ``level_of_theory`` and the energies may be None when the file does
    not hold them; the reader's defaults (``pressure_gpa=``, ``level_of_theory=``) fill
    them in. Energies are eV/atom; at least one of them, or neither, may be given (the
    other follows from H = E + P·V/N).
    """

    atoms: Atoms
    ident: str
    pressure_gpa: float | None = None
    energy_per_atom: float | None = None
    enthalpy_per_atom: float | None = None
    level_of_theory: str | None = None
    relaxed: bool = True
    converged: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: stable number of the record in its file (default: its position), part of ``import_key``
    index: int | None = None


@dataclass
class BadRow:
    """A record of a source file that cannot be imported: its index in the file and why."""

    index: int
    reason: str


class SourceReader:
    """Base of the format readers: the options every format shares.

    Args:
        path: a file, a folder or a tree (what each format accepts is in its docstring).
        level_of_theory: label written on every row (overrides what the files say);
            null keeps what each record says and rejects records with none.
        pressure_gpa: pressure (GPa) of records whose file gives none; null rejects them.
        label: first part of each row's ``source`` (default: the format's ``kind``).
    """

    kind = "file"

    def __init__(
        self, path: str, level_of_theory: str | None = None, pressure_gpa: float | None = None, label: str | None = None
    ):
        if path in (None, "", "???"):
            raise GencrystalError("give the source path: gencrystal db import <format> path=<file or folder>")
        self.path = Path(str(path)).expanduser()
        if not self.path.exists() and not str(path).startswith("postgres"):
            raise GencrystalError(f"import source {str(path)!r} does not exist")
        self.level_of_theory = normalise_level(level_of_theory) if level_of_theory not in (None, "") else None
        from gencrystal.units import check_pressure

        self.pressure_gpa = None if pressure_gpa is None else check_pressure(pressure_gpa, "import_source.pressure_gpa")
        self.label = str(label) if label else self.kind

    @property
    def root(self) -> Path:
        """Folder that file keys are relative to."""
        return self.path if self.path.is_dir() else self.path.parent

    def files(self) -> list[Path]:
        """The source files, in a fixed (sorted) order; each is one transaction."""
        raise NotImplementedError

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        """The records of one file, in order (index = position in the file)."""
        raise NotImplementedError

    def digest(self, file: Path) -> str:
        """Content digest that decides whether a ledgered file is read again (sha256)."""
        return _sha256([file])

    def file_key(self, file: Path) -> str:
        """``"<kind>:<name of the given folder>/<path of the file below it>"``: stable while
        the same tree is imported again from the same folder."""
        return self.rel_key(file)

    def rel_key(self, target: Path) -> str:
        root = self.root.resolve()
        base = f"{root.parent.name}/{root.name}" if root.name == "results" else root.name
        try:
            rel = target.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = target.name
        return f"{self.kind}:{base}" if rel in ("", ".") else f"{self.kind}:{base}/{rel}"


def _sha256(files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class ImportSummary:
    """What one call of :func:`import_source` did (counts of files and records)."""

    files: int = 0
    files_skipped: int = 0
    records: int = 0
    added: int = 0
    merged: int = 0
    already_present: int = 0
    bad: int = 0
    rows: int = 0
    bad_rows: list[str] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_ledger(db) -> dict[str, dict]:
    """The import ledger ``{file key: {"sha256", "records", "added", "merged", "bad"}}``."""
    return dict(db.metadata.get(LEDGER_KEY, {}))


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def finalise(rec: ImportRecord, reader: SourceReader) -> ImportRecord:
    """Fill reader defaults into ``rec`` and check it; raises ValueError with the reason."""
    from gencrystal.units import check_pressure, gpa_to_ev_per_a3

    atoms = rec.atoms
    if len(atoms) == 0:
        raise ValueError("no atoms")
    if not np.isfinite(atoms.get_positions()).all() or not np.isfinite(atoms.cell.array).all():
        raise ValueError("non-finite coordinates or cell")
    if atoms.cell.rank < 3 or not atoms.get_volume() > 1e-6:
        raise ValueError("not a periodic 3-D cell")
    p = rec.pressure_gpa if rec.pressure_gpa is not None else reader.pressure_gpa
    if p is None:
        raise ValueError("no pressure (set pressure_gpa=GPa for records without one)")
    try:
        p = check_pressure(p, "pressure")
    except GencrystalError as exc:
        raise ValueError(str(exc)) from None
    level = reader.level_of_theory or rec.level_of_theory
    if not level:
        raise ValueError("no level of theory (set level_of_theory=, e.g. pbe)")
    try:
        level = normalise_level(level)
    except GencrystalError as exc:
        raise ValueError(str(exc)) from None
    e, h = rec.energy_per_atom, rec.enthalpy_per_atom
    for name, v in (("energy_per_atom", e), ("enthalpy_per_atom", h)):
        if v is not None and not _finite(v):
            raise ValueError(f"{name}={v!r} is not a finite number")
    pv = gpa_to_ev_per_a3(p) * atoms.get_volume() / len(atoms)
    if e is not None and h is None:
        h = float(e) + pv
    elif h is not None and e is None:
        e = float(h) - pv
    return ImportRecord(
        atoms=atoms,
        ident=rec.ident,
        pressure_gpa=p,
        energy_per_atom=None if e is None else float(e),
        enthalpy_per_atom=None if h is None else float(h),
        level_of_theory=level,
        relaxed=bool(rec.relaxed),
        converged=rec.converged,
        extra=dict(rec.extra),
        index=rec.index,
    )


def _seen_keys(db) -> set[str]:
    seen: set[str] = set()
    for row in db.select(include_data=False):
        key = row.get("import_key")
        if key:
            seen.add(str(key))
        for m in str(row.get("merged_ids", "") or "").split(","):
            if m:
                seen.add(m)
    return seen


def import_source(
    reader: SourceReader,
    db_url: str,
    *,
    on_bad_row: str = "skip",
    merge: bool = True,
    merge_matcher: str = "novelty",
    pressure_tol_gpa: float = 0.5,
    progress: bool = True,
    max_reported: int = 20,
) -> ImportSummary:
    """Import every file of ``reader`` into the database at ``db_url`` (see module doc).

    Args:
        reader: a :class:`SourceReader` (built from ``conf/import_source/<format>.yaml``).
        db_url: SQLite path or PostgreSQL URL.
        on_bad_row: ``skip`` (report and go on) or ``fatal`` (raise before the file writes).
        merge: merge StructureMatcher duplicates (same formula, level, pressure bin).
        merge_matcher: :func:`gencrystal.matching.make_matcher` setting.
        pressure_tol_gpa: two rows are in the same pressure bin when their pressures
            differ by at most this (GPa).
        max_reported: how many bad rows are listed in the summary (all are counted).

    Returns:
        An :class:`ImportSummary`. Killing the call and running it again gives the same
        database as one uninterrupted call.
    """
    from tqdm.auto import tqdm

    from gencrystal.db.build import find_duplicate
    from gencrystal.matching import make_matcher

    if on_bad_row not in ("skip", "fatal"):
        raise GencrystalError(f"on_bad_row={on_bad_row!r}: use skip or fatal")
    if not pressure_tol_gpa >= 0:
        raise GencrystalError(f"pressure_tol_gpa={pressure_tol_gpa!r} must be >= 0 (GPa)")
    matcher = make_matcher(merge_matcher) if merge else None
    files = reader.files()
    if not files:
        raise GencrystalError(f"no {reader.kind} source files found under {str(reader.path)!r}")
    db = connect(db_url)
    ledger = read_ledger(db)
    seen = _seen_keys(db)
    summary = ImportSummary()
    for file in tqdm(files, desc=f"db import [{reader.kind}]", unit="file", disable=not progress):
        key = reader.file_key(file)
        digest = reader.digest(file)
        summary.files += 1
        entry = ledger.get(key, {})
        if entry.get("sha256") == digest and not entry.get("bad"):
            summary.files_skipped += 1
            continue
        good: list[tuple[int, ImportRecord]] = []
        bad: list[BadRow] = []
        try:
            for index, item in enumerate(reader.read(file)):
                if isinstance(item, BadRow):
                    bad.append(item)
                    continue
                try:
                    good.append((index if item.index is None else int(item.index), finalise(item, reader)))
                except ValueError as exc:
                    bad.append(BadRow(index, str(exc)))
        except GencrystalError as exc:  # the whole file is unreadable
            bad.append(BadRow(-1, str(exc)))
        summary.records += len(good) + len(bad)
        summary.bad += len(bad)
        for b in bad:
            where = f"{file}" + ("" if b.index < 0 else f" #{b.index}")
            if on_bad_row == "fatal":
                raise GencrystalError(f"{where}: {b.reason} (on_bad_row=fatal: nothing of this file was written)")
            if len(summary.bad_rows) < max_reported:
                summary.bad_rows.append(f"{where}: {b.reason}")
        if bad and bad[0].index < 0:
            continue  # unreadable file: not ledgered, read again next time
        counts = {"added": 0, "merged": 0, "present": 0}
        new_seen: set[str] = set()
        with db:
            for index, rec in good:
                row_key = f"{key}#{index}"
                if row_key in seen or row_key in new_seen:
                    counts["present"] += 1
                    continue
                new_seen.add(row_key)
                counts[_write(db, rec, row_key, reader.label, matcher, pressure_tol_gpa, find_duplicate)] += 1
                level = str(rec.level_of_theory)  # set by finalise() (_write refuses a record without one)
                summary.levels[level] = summary.levels.get(level, 0) + 1
            md = db.metadata
            led = dict(md.get(LEDGER_KEY, {}))
            led[key] = {
                "sha256": digest,
                "records": len(good) + len(bad),
                "added": counts["added"],
                "merged": counts["merged"],
                "bad": len(bad),
            }
            md[LEDGER_KEY] = led
            db.metadata = md
        ledger[key] = led[key]
        seen |= new_seen
        summary.added += counts["added"]
        summary.merged += counts["merged"]
        summary.already_present += counts["present"]
    summary.rows = db.count()
    return summary


def _reduced_formula(atoms: Atoms) -> str:
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula()).reduced_formula


def _write(db, rec: ImportRecord, row_key: str, label: str, matcher, pressure_tol_gpa: float, find_duplicate) -> str:
    """Add ``rec`` or merge it into its duplicate; returns ``"added"`` or ``"merged"``."""
    pressure_gpa, level = rec.pressure_gpa, rec.level_of_theory
    if pressure_gpa is None or level is None:  # finalise() fills both
        raise ValueError(f"{row_key}: record without a pressure or a level of theory (not finalised)")
    formula = _reduced_formula(rec.atoms)
    source = f"{label}:{rec.ident}"
    kv = {
        "energy_per_atom": rec.energy_per_atom,
        "enthalpy_per_atom": rec.enthalpy_per_atom,
        "relaxed": bool(rec.relaxed),
        "import_key": row_key,
        "material_id": source,
        "reduced_formula": formula,
        "volume_per_atom": rec.atoms.get_volume() / len(rec.atoms),
    }
    if rec.converged is not None:
        kv["converged"] = bool(rec.converged)
    for k, v in clean_key_values(rec.extra).items():
        kv.setdefault(k, v)
    dup = None
    if matcher is not None:
        dup = find_duplicate(db, rec.atoms, formula, float(pressure_gpa), level, matcher, pressure_tol_gpa=pressure_tol_gpa)
    if dup is None:
        add_structure(
            db,
            rec.atoms,
            pressure_gpa=pressure_gpa,
            level_of_theory=level,
            source=source,
            merged_ids="",
            n_merged=0,
            **kv,
        )
        return "added"
    merged = [m for m in str(dup.get("merged_ids", "") or "").split(",") if m]
    h_old = dup.get("enthalpy_per_atom")
    if rec.enthalpy_per_atom is not None and (h_old is None or rec.enthalpy_per_atom < float(h_old)):
        merged.append(str(dup.get("import_key") or dup.get("source") or f"row-{dup.id}"))
        db.delete([dup.id])
        add_structure(
            db,
            rec.atoms,
            pressure_gpa=pressure_gpa,
            level_of_theory=level,
            source=source,
            merged_ids=",".join(merged),
            n_merged=len(merged),
            **kv,
        )
    else:
        merged.append(row_key)
        db.update(dup.id, merged_ids=",".join(merged), n_merged=len(merged))
    return "merged"


def format_summary(s: ImportSummary, db_url: str) -> str:
    """One paragraph for the terminal."""
    lines = [
        f"db import: {s.files} files ({s.files_skipped} already imported), {s.records} records read: "
        f"{s.added} added, {s.merged} merged as duplicates, {s.already_present} already present, "
        f"{s.bad} bad; {s.rows} rows in {db_url}"
    ]
    if s.levels:
        lines.append("  imported per level of theory: " + ", ".join(f"{k} {v}" for k, v in sorted(s.levels.items())))
    for b in s.bad_rows:
        lines.append(f"  bad: {b}")
    if s.bad > len(s.bad_rows):
        lines.append(f"  ... {s.bad - len(s.bad_rows)} more bad records")
    return "\n".join(lines)


def level_from_incar(incar: dict, potcar_symbols: Sequence[str] = ()) -> str:
    """A level-of-theory label from VASP INCAR tags (used when no vasprun.xml gives
    pymatgen's ``run_type``): ``METAGGA`` (r2scan, scan, ...) else ``GGA`` (PE -> pbe,
    PS -> pbesol; unset -> pbe when the POTCARs are PBE ones or unknown), ``+u`` when
    ``LDAU`` is on."""
    tags = {str(k).upper(): v for k, v in dict(incar).items()}
    meta = str(tags.get("METAGGA", "") or "").strip().lower()
    if meta and meta not in ("--", "none", "false"):
        level = meta
    else:
        gga = str(tags.get("GGA", "") or "").strip().upper()
        level = {"PE": "pbe", "PS": "pbesol", "RE": "revpbe", "AM": "am05"}.get(gga, gga.lower() or "pbe")
        if not gga and potcar_symbols and not any("PBE" in s for s in potcar_symbols):
            level = "lda"
    ldau = tags.get("LDAU", False)
    if ldau is True or str(ldau).strip().upper().strip(".") in ("TRUE", "T"):
        level += "+u"
    return level


def build_reader(node) -> SourceReader:
    """The reader described by a ``conf/import_source`` node (``_target_`` + options)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError

    from gencrystal.config import instantiate

    if OmegaConf.is_config(node):
        for key in node:
            if OmegaConf.is_missing(node, key):
                raise GencrystalError(f"import_source.{key} is required (e.g. import_source.{key}=pbe)")
            try:
                node[key]
            except InterpolationToMissingValueError:
                raise GencrystalError("source= is required: the file, folder or tree to import") from None
    reader = instantiate(node, "import_source")
    if not isinstance(reader, SourceReader):
        raise GencrystalError(f"import_source._target_ built a {type(reader).__name__}, not a SourceReader")
    return reader
