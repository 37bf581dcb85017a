"""Compositions: parsing, validation and enumeration of formula units (Z).

One parser for the whole project (sampling, search, databases, learning loop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pymatgen.core import Composition, Element

from gencrystal.errors import GencrystalError

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")
_GROUP = re.compile(r"[)\]](\d+\.?\d*)")


def parse_composition(text: str | dict | Composition) -> Composition:
    """Parse ``"Li16"``, ``"SiO2"``, ``"Si4O8"``, ``"Ca(OH)2"`` (pymatgen ``Composition``) or a
    mapping into an integer Composition.

    Raises a one-line :class:`GencrystalError` naming the value for unknown elements,
    zero, negative or fractional counts, or an empty formula.
    """
    if isinstance(text, Composition):
        comp = text
        raw = comp.formula
    elif isinstance(text, dict):
        raw = str(text)
        for el, n in text.items():
            _check_element(str(el), raw)
            _check_count(n, str(el), raw)
        comp = Composition({str(k): float(v) for k, v in text.items()})
    else:
        raw = str(text).strip().replace(" ", "")
        if not raw:
            raise GencrystalError("empty composition")
        if re.search(r"-\d", raw) or raw.startswith("-"):
            raise GencrystalError(f"composition {text!r} has a negative count")
        # pymatgen parses the formula (groups such as Ca(OH)2 included); checked first here
        # because it would take an unknown symbol for a dummy species and drop a zero count
        for m in _TOKEN.finditer(raw):
            _check_element(m.group(1), raw)
            if m.group(2):
                _check_count(m.group(2), m.group(1), raw)
        for m in _GROUP.finditer(raw):
            _check_count(m.group(1), "a group", raw)
        try:
            comp = Composition(raw)
        except (ValueError, KeyError, TypeError):
            raise GencrystalError(f"cannot parse composition {text!r} (expected e.g. 'SiO2', 'Li16' or 'Ca(OH)2')") from None
        if not comp or not all(isinstance(el, Element) for el in comp):
            raise GencrystalError(f"cannot parse composition {text!r} (expected e.g. 'SiO2', 'Li16' or 'Ca(OH)2')")
    for el, n in comp.items():
        if abs(n - round(n)) > 1e-8:
            raise GencrystalError(f"composition {raw!r}: count {n:g} of {el} is not an integer")
    return comp


def _check_element(symbol: str, raw: str) -> None:
    if not Element.is_valid_symbol(symbol):
        raise GencrystalError(f"unknown element {symbol!r} in composition {raw!r}")


def _check_count(n, el: str, raw: str) -> None:
    try:
        val = float(n)
    except (TypeError, ValueError):
        raise GencrystalError(f"composition {raw!r}: count {n!r} of {el} is not a number") from None
    if val <= 0:
        raise GencrystalError(f"composition {raw!r}: count {val:g} of {el} must be positive")


def parse_int_range(spec: str | int | Iterable[int]) -> list[int]:
    """``"1-4"`` -> [1, 2, 3, 4]; ``"2"`` or ``2`` -> [2]; ``[1, 3]`` -> [1, 3]."""
    if isinstance(spec, int):
        values = [spec]
    elif isinstance(spec, str):
        s = spec.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", s)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise GencrystalError(f"range {spec!r} is empty (low > high)")
            values = list(range(lo, hi + 1))
        elif re.fullmatch(r"\d+(,\d+)*", s):
            values = [int(x) for x in s.split(",")]
        else:
            raise GencrystalError(f"cannot parse range {spec!r} (expected e.g. '1-4')")
    else:
        values = [int(x) for x in spec]
    if not values or min(values) < 1:
        raise GencrystalError(f"range {spec!r} must hold positive integers")
    return values


def enumerate_formula_units(formula: str | Composition, formula_units: str | int | Iterable[int]) -> list[Composition]:
    """The cell compositions Z × reduced formula for each Z in ``formula_units``.

    ``enumerate_formula_units("SiO2", "1-3")`` -> [SiO2, Si2O4, Si3O6].
    """
    reduced = parse_composition(formula).reduced_composition
    return [reduced * z for z in parse_int_range(formula_units)]


def composition_to_atomic_numbers(comp: Composition) -> list[int]:
    """Expand an integer composition into a sorted list of atomic numbers (one per atom)."""
    numbers: list[int] = []
    for el, n in sorted(comp.items(), key=lambda kv: kv[0].Z):
        numbers.extend([el.Z] * int(round(n)))
    return numbers
