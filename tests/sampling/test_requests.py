"""Request parsing: Z enumeration, sample splitting, tables, bad input (no model needed)."""

from __future__ import annotations

import math

import pytest
from pymatgen.core import Composition

from gencrystal.errors import GencrystalError
from gencrystal.sampling.requests import (
    expand_request,
    parse_chemical_system,
    read_request_table,
    split_evenly,
    total_samples,
)


def test_cell_composition_is_taken_as_is():
    (r,) = expand_request("Li16", 50, 100)
    assert r.composition == Composition("Li16") and r.num_atoms == 16
    assert r.pressure_gpa == 50.0 and r.num_samples == 100 and r.formula_units is None


def test_z_enumeration_gives_z_times_reduced_formula_and_spreads_samples():
    reqs = expand_request("SiO2", 10, 10, formula_units="1-4")
    assert [r.num_atoms for r in reqs] == [3, 6, 9, 12]
    assert [r.composition for r in reqs] == [Composition({"Si": z, "O": 2 * z}) for z in (1, 2, 3, 4)]
    assert [r.formula_units for r in reqs] == [1, 2, 3, 4]
    assert [r.num_samples for r in reqs] == [3, 3, 2, 2]
    assert total_samples(reqs) == 10


def test_remainder_rotates_with_the_seed_so_small_calls_cover_every_z():
    assert split_evenly(10, 4, rotate=1) == [2, 3, 3, 2]
    assert split_evenly(10, 4, rotate=3) == [3, 2, 2, 3]
    counts = [0, 0, 0, 0]
    for seed in range(8):  # eight one-sample calls over Z = 1..4
        for i, r in enumerate(expand_request("MgO", 1, 1, formula_units="1-4", rotate=seed)):
            counts[i] += r.num_samples
    assert counts == [2, 2, 2, 2]


def test_z_enumeration_reduces_the_formula_first():
    reqs = expand_request("Si2O4", 0, 2, formula_units=[2, 3])
    assert [r.label for r in reqs] == ["Si2O4", "Si3O6"]


@pytest.mark.parametrize("n,k", [(10, 4), (3, 5), (0, 2), (7, 1)])
def test_split_evenly(n, k):
    parts = split_evenly(n, k)
    assert sum(parts) == n and len(parts) == k and max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)


@pytest.mark.parametrize(
    "composition,pressure,n,fu,needle",
    [
        ("Xx2", 10, 1, None, "unknown element 'Xx'"),
        ("Li0", 10, 1, None, "must be positive"),
        ("Li-2", 10, 1, None, "negative"),
        ("Li16", float("nan"), 1, None, "not a finite number"),
        ("Li16", -5, 1, None, "negative"),
        ("Li16", "abc", 1, None, "not a number"),
        ("Li16", 10, 0, None, "num_samples=0"),
        ("Li16", 10, -3, None, "num_samples=-3"),
        ("Li16", 10, 2.5, None, "num_samples=2.5"),
        ("SiO2", 10, 4, "4-1", "empty"),
        ("SiO2", 10, 4, "0-2", "positive"),
        (None, 10, 4, "1-2", "formula_units= needs a composition"),
    ],
)
def test_bad_requests_are_one_line_errors_naming_the_value(composition, pressure, n, fu, needle):
    with pytest.raises(GencrystalError) as exc:
        expand_request(composition, pressure, n, fu)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_chemical_system_parsing_and_restriction():
    assert parse_chemical_system("Li-B") == ("Li", "B")  # sorted by Z: Li (3) before B (5)
    assert parse_chemical_system(["O", "Si", "O"]) == ("O", "Si")
    with pytest.raises(GencrystalError, match="unknown element 'Qq'"):
        parse_chemical_system("Li-Qq")
    with pytest.raises(GencrystalError, match="outside chemical_system"):
        expand_request("LiC6", 5, 1, chemical_system="Li-B")
    (r,) = expand_request(None, 5, 3, chemical_system="B-Li")
    assert r.composition is None and r.chemical_system == ("Li", "B") and r.num_atoms is None


def test_csv_table_with_defaults_and_z(tmp_path):
    table = tmp_path / "req.csv"
    table.write_text(
        "composition,pressure,num_samples,formula_units\n"
        "# a comment line\n"
        "Li16,50,4,\n"
        "SiO2,10,6,1-3\n"
        "MgO,,,\n"
    )
    reqs = read_request_table(table, default_pressure=100, default_num_samples=2)
    assert [(r.label, r.pressure_gpa, r.num_samples) for r in reqs] == [
        ("Li16", 50.0, 4),
        ("Si1O2", 10.0, 2),
        ("Si2O4", 10.0, 2),
        ("Si3O6", 10.0, 2),
        ("Mg1O1", 100.0, 2),
    ]


def test_yaml_table(tmp_path):
    table = tmp_path / "req.yaml"
    table.write_text("requests:\n  - {composition: Li16, pressure_gpa: 50, num_samples: 3}\n  - {composition: CaF2, pressure: 0, num_samples: 1}\n")
    reqs = read_request_table(table)
    assert [(r.label, r.pressure_gpa, r.num_samples) for r in reqs] == [("Li16", 50.0, 3), ("Ca1F2", 0.0, 1)]


@pytest.mark.parametrize(
    "text,needle",
    [
        ("composition,pressure,num_samples\nLi16,nan,3\n", "row 1: pressure='nan' is not a finite"),
        ("composition,pressure,num_samples\nLi16,5,3\nZz,5,3\n", "row 2: unknown element 'Zz'"),
        ("composition,pressure,num_samples\nLi16,,3\n", "row 1: no pressure"),
        ("composition,pressure,num_samples,colour\nLi16,5,3,red\n", "unknown column(s) ['colour']"),
        ("composition,pressure,num_samples\n", "holds no requests"),
    ],
)
def test_bad_tables(tmp_path, text, needle):
    table = tmp_path / "bad.csv"
    table.write_text(text)
    with pytest.raises(GencrystalError) as exc:
        read_request_table(table)
    assert needle in str(exc.value) and str(table) in str(exc.value)


def test_missing_or_unsupported_table(tmp_path):
    with pytest.raises(GencrystalError, match="does not exist"):
        read_request_table(tmp_path / "nope.csv")
    other = tmp_path / "req.txt"
    other.write_text("Li16 5 3\n")
    with pytest.raises(GencrystalError, match="unsupported table"):
        read_request_table(other)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("requests: [unclosed\n")
    with pytest.raises(GencrystalError, match="cannot read input"):
        read_request_table(bad_yaml)


def test_request_dict_is_json_friendly():
    (r,) = expand_request("SiO2", 3.5, 2, formula_units=2)
    d = r.to_dict()
    assert d == {"composition": "Si2O4", "formula": "SiO2", "formula_units": 2, "num_atoms": 6,
                 "pressure_gpa": 3.5, "num_samples": 2, "chemical_system": None}
    assert not math.isnan(d["pressure_gpa"])
