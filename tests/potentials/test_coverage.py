"""What a committee's labels cover: elements, labelled element combinations (systems) and the
pressure span of each system's labels (GPa)."""

from __future__ import annotations

from gencrystal.potentials.coverage import coverage_gaps

# two labelled systems: Li (0-115 GPa DFT pressures) and SiO2 (-3 to 62 GPa)
COVERAGE = {"elements": ["Li", "O", "Si"], "pressure_gpa": [0.0, 62.0],
            "dft_pressure_gpa_by_system": {"Li": [-0.4, 115.2], "O-Si": [-3.0, 61.2]}}


def test_a_labelled_system_inside_its_own_pressure_span_is_covered():
    assert coverage_gaps(["Li", "Li"], 100.0, COVERAGE) == []  # Li's labels reach 115 GPa
    assert coverage_gaps(["Si", "O", "O"], 0.0, COVERAGE) == []  # span floored at 0 GPa


def test_pressure_span_is_per_system_rounded_outward():
    (kind, msg), = coverage_gaps(["Si", "O", "O"], 80.0, COVERAGE)
    assert kind == "pressure" and msg == "pressure 80 GPa is outside its DFT labels for O-Si (0-62 GPa)"
    assert coverage_gaps(["Si", "O", "O"], 62.0, COVERAGE) == []
    assert coverage_gaps(["Li"], -1.0, COVERAGE)[0][0] == "pressure"


def test_elements_of_two_systems_combined_are_not_covered():
    (kind, msg), = coverage_gaps(["Li", "O"], 10.0, COVERAGE, owner="hp_committee's")
    assert kind == "system" and "Li-O is not one of hp_committee's labelled systems (Li; O-Si)" in msg
    assert coverage_gaps(["Si"], 10.0, COVERAGE)[0][0] == "system"  # Si labels only inside SiO2


def test_unknown_element_is_named_and_the_common_range_still_checked():
    gaps = coverage_gaps(["Mg", "O"], 150.0, COVERAGE)
    assert gaps == [("element", "element Mg is outside its DFT labels (Li, O, Si)"),
                    ("pressure", "pressure 150 GPa is outside its DFT labels (0-62 GPa)")]


def test_without_systems_the_elements_and_the_common_range_decide():
    old = {"elements": ["Li", "Si"], "pressure_gpa": [0.0, 100.0]}
    assert coverage_gaps(["Li", "Si"], 50.0, old) == []
    assert [k for k, _ in coverage_gaps(["Li"], 150.0, old)] == ["pressure"]
    assert coverage_gaps(["Cu"], 0.0, None) == []  # a universal potential
