"""What to sample: requests of (cell composition, pressure, number of samples).

A user asks for a *formula* at a *pressure* (GPa); a model samples *cells* with an
exact atom count. This module turns the user's words into a flat, validated list of
:class:`SampleRequest` objects, one per cell composition:

- ``composition=Li16`` is one cell composition (16 atoms per cell);
- ``composition=SiO2 formula_units=1-4`` enumerates Z: SiO2, Si2O4, Si3O6, Si4O8, and
  spreads ``num_samples`` over them as evenly as possible (earlier Z first get the
  remainder);
- ``input=FILE`` (CSV or YAML) holds many rows of composition, pressure, num_samples
  and optionally formula_units;
- with a de-novo (not CSP) model the composition may be left out: atom counts are then
  drawn from the training histogram, optionally restricted to a ``chemical_system``.

Everything here is checked before any model is run or any file is written.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from pymatgen.core import Composition, Element

from gencrystal.composition import enumerate_formula_units, parse_composition, parse_int_range
from gencrystal.errors import GencrystalError
from gencrystal.units import check_pressure


@dataclass(frozen=True)
class SampleRequest:
    """One cell composition at one pressure, sampled ``num_samples`` times.

    Attributes:
        composition: exact integer cell composition, or ``None`` for de-novo sampling
            (atom count drawn from the training histogram, atom types generated).
        pressure_gpa: pressure condition in GPa (finite, >= 0).
        num_samples: number of structures to sample (>= 0 after a Z split).
        formula: the formula as the user wrote it (for reports), e.g. ``"SiO2"``.
        formula_units: Z of this cell (cell composition = Z × reduced formula), or
            ``None`` when the composition was given as a cell composition.
        chemical_system: allowed elements for de-novo sampling, sorted, or ``None``.
    """

    composition: Composition | None
    pressure_gpa: float
    num_samples: int
    formula: str = ""
    formula_units: int | None = None
    chemical_system: tuple[str, ...] | None = None

    @property
    def num_atoms(self) -> int | None:
        """Atoms per cell, or ``None`` when drawn at sampling time (de novo)."""
        return None if self.composition is None else int(round(self.composition.num_atoms))

    @property
    def label(self) -> str:
        """A short name: the cell formula without spaces (``"Si2O4"``) or ``"denovo"``."""
        if self.composition is None:
            return "denovo" + ("-" + "-".join(self.chemical_system) if self.chemical_system else "")
        return self.composition.formula.replace(" ", "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form used in ``summary.json``."""
        return {
            "composition": None if self.composition is None else self.label,
            "formula": self.formula,
            "formula_units": self.formula_units,
            "num_atoms": self.num_atoms,
            "pressure_gpa": self.pressure_gpa,
            "num_samples": self.num_samples,
            "chemical_system": None if self.chemical_system is None else "-".join(self.chemical_system),
        }


def check_num_samples(n: Any, name: str = "num_samples") -> int:
    """Return ``n`` as a positive int or raise a one-line error naming it."""
    try:
        f = float(n)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name}={n!r} is not a number") from None
    if math.isnan(f) or f != int(f) or f < 1:
        raise GencrystalError(f"{name}={n!r} must be a positive integer")
    from gencrystal.limits import check_count

    return check_count(f, name)


def parse_chemical_system(spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"Li-B"`` (or ``"B-Li"``, ``["Li", "B"]``) -> ``("B", "Li")`` sorted by Z.

    Raises a one-line error for an unknown element or an empty system.
    """
    if spec is None:
        return None
    parts = [p.strip() for p in spec.split("-")] if isinstance(spec, str) else [str(p).strip() for p in spec]
    parts = [p for p in parts if p]
    if not parts:
        raise GencrystalError(f"chemical_system={spec!r} is empty (expected e.g. 'Li-B')")
    for p in parts:
        if not Element.is_valid_symbol(p):
            raise GencrystalError(f"unknown element {p!r} in chemical_system={spec!r}")
    return tuple(sorted(set(parts), key=lambda s: Element(s).Z))


def split_evenly(n: int, k: int, rotate: int = 0) -> list[int]:
    """Split ``n`` samples over ``k`` bins: sizes differ by at most one.

    The ``n mod k`` extra samples go to bins ``rotate, rotate+1, ...`` (mod ``k``), so
    that many small calls with different ``rotate`` (the seed) cover every bin evenly;
    ``rotate=0`` gives them to the first bins (10 over 4 -> 3, 3, 2, 2).
    """
    base, extra = divmod(int(n), int(k))
    bonus = {(int(rotate) + i) % int(k) for i in range(extra)}
    return [base + (1 if i in bonus else 0) for i in range(k)]


def expand_request(
    composition: str | dict | Composition | None,
    pressure_gpa: Any,
    num_samples: Any,
    formula_units: str | int | Iterable[int] | None = None,
    chemical_system: str | Sequence[str] | None = None,
    rotate: int = 0,
) -> list[SampleRequest]:
    """Validate one user request and expand it into one :class:`SampleRequest` per Z.

    Args:
        composition: formula (``"Li16"``, ``"SiO2"``), mapping, Composition, or ``None``
            (de novo).
        pressure_gpa: pressure in GPa; NaN, infinite or negative values are errors.
        num_samples: total number of structures for this request (positive integer).
        formula_units: ``None`` (the composition is the cell), or Z values such as
            ``"1-4"``, ``2`` or ``[1, 2]``: cells are Z × the reduced formula and the
            samples are spread over the Z values.
        chemical_system: de-novo restriction such as ``"Li-B"``; with a composition its
            elements must lie inside the system.
        rotate: which Z values receive the remainder when ``num_samples`` does not divide
            evenly (see :func:`split_evenly`); the sampling code passes the seed.

    Returns:
        A list of requests; with Z enumeration some may hold 0 samples when
        ``num_samples`` is smaller than the number of Z values.
    """
    p = check_pressure(pressure_gpa)
    n = check_num_samples(num_samples)
    system = parse_chemical_system(chemical_system)
    if composition is None or (isinstance(composition, str) and not composition.strip()):
        if formula_units is not None:
            raise GencrystalError("formula_units= needs a composition= (a reduced formula to multiply by Z)")
        return [SampleRequest(None, p, n, formula="", chemical_system=system)]
    comp = parse_composition(composition)
    formula = composition if isinstance(composition, str) else comp.formula.replace(" ", "")
    if system is not None:
        outside = sorted(str(el) for el in comp.elements if str(el) not in system)
        if outside:
            raise GencrystalError(
                f"composition {formula!r} has elements {outside} outside chemical_system={'-'.join(system)!r}"
            )
    if formula_units is None:
        return [SampleRequest(comp, p, n, formula=str(formula), chemical_system=system)]
    zs = parse_int_range(formula_units)
    cells = enumerate_formula_units(comp, zs)
    return [
        SampleRequest(c, p, k, formula=str(formula), formula_units=z, chemical_system=system)
        for c, z, k in zip(cells, zs, split_evenly(n, len(zs), rotate))
    ]


_PRESSURE_KEYS = ("pressure", "pressure_gpa")
_KNOWN_KEYS = {"composition", "num_samples", "formula_units", "chemical_system", *_PRESSURE_KEYS}


def read_request_table(
    path: str | Path,
    default_pressure: Any = None,
    default_num_samples: Any = None,
    default_formula_units: Any = None,
    rotate: int = 0,
) -> list[SampleRequest]:
    """Read many requests from a CSV or YAML file and expand each one (see :func:`expand_request`).

    CSV: a header row with ``composition``, ``pressure`` (or ``pressure_gpa``, GPa),
    ``num_samples`` and optionally ``formula_units`` / ``chemical_system``. YAML: a list
    of mappings with the same keys, or a mapping ``{requests: [...]}``. Missing
    pressure / num_samples / formula_units fall back to the command-line values;
    ``rotate`` is passed to :func:`expand_request` for every row.
    Errors name the file and the row (1-based, header excluded).
    """
    fp = Path(path)
    if not fp.is_file():
        raise GencrystalError(f"input={str(path)!r} does not exist")
    rows = _read_rows(fp)
    if not rows:
        raise GencrystalError(f"input={str(path)!r} holds no requests")
    out: list[SampleRequest] = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise GencrystalError(f"input={str(path)!r} row {i}: expected a mapping, got {row!r}")
        row = {str(k).strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
        row = {k: (None if v == "" else v) for k, v in row.items()}
        unknown = sorted(set(row) - _KNOWN_KEYS)
        if unknown:
            raise GencrystalError(f"input={str(path)!r} row {i}: unknown column(s) {unknown}; expected {sorted(_KNOWN_KEYS)}")
        pressure = next((row[k] for k in _PRESSURE_KEYS if row.get(k) is not None), default_pressure)
        if pressure is None:
            raise GencrystalError(f"input={str(path)!r} row {i}: no pressure (GPa) in the row and no pressure= given")
        num = row.get("num_samples")
        num = default_num_samples if num is None else num
        if num is None:
            raise GencrystalError(f"input={str(path)!r} row {i}: no num_samples in the row and no num_samples= given")
        fu = row.get("formula_units")
        fu = default_formula_units if fu is None else fu
        if isinstance(fu, float) and fu == int(fu):
            fu = int(fu)
        try:
            out.extend(expand_request(row.get("composition"), pressure, num, str(fu) if fu is not None else None, row.get("chemical_system"), rotate))
        except GencrystalError as exc:
            raise GencrystalError(f"input={str(path)!r} row {i}: {exc}") from None
    return out


def _read_rows(fp: Path) -> list:
    suffix = fp.suffix.lower()
    try:
        if suffix == ".csv":
            with open(fp, newline="") as fh:
                lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
            return list(csv.DictReader(lines))
        if suffix in (".yaml", ".yml"):
            import yaml

            with open(fp) as fh:
                data = yaml.safe_load(fh)
            if isinstance(data, dict) and "requests" in data:
                data = data["requests"]
            if data is None:
                return []
            if not isinstance(data, list):
                raise GencrystalError(f"input={str(fp)!r}: expected a list of requests (or requests: [...])")
            return data
    except GencrystalError:
        raise
    except Exception as exc:  # csv / yaml raise their own types on malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GencrystalError(f"cannot read input={str(fp)!r}: {first}") from exc
    raise GencrystalError(f"input={str(fp)!r}: unsupported table (use .csv, .yaml or .yml)")


def total_samples(requests: Sequence[SampleRequest]) -> int:
    """Number of structures the requests ask for."""
    return sum(r.num_samples for r in requests)


def with_samples(request: SampleRequest, n: int) -> SampleRequest:
    """A copy of ``request`` asking for ``n`` samples."""
    return replace(request, num_samples=int(n))


__all__ = [
    "SampleRequest",
    "check_num_samples",
    "expand_request",
    "parse_chemical_system",
    "read_request_table",
    "split_evenly",
    "total_samples",
    "with_samples",
]
