"""Shared core: units, composition parsing, Z enumeration, geometry."""

import math

import numpy as np
import pytest
import torch

from gencrystal.composition import enumerate_formula_units, parse_composition, parse_int_range
from gencrystal.errors import GencrystalError
from gencrystal.geometry import polar_symmetric, polar_symmetric_np
from gencrystal.units import check_pressure, enthalpy, ev_per_a3_to_gpa, gpa_to_ev_per_a3


def test_pressure_round_trip_and_value():
    assert gpa_to_ev_per_a3(160.21766) == pytest.approx(1.0, rel=1e-6)
    assert ev_per_a3_to_gpa(gpa_to_ev_per_a3(50.0)) == pytest.approx(50.0)
    assert enthalpy(-10.0, 100.0, 160.21766) == pytest.approx(90.0, rel=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), -1.0, "abc", math.inf])
def test_bad_pressures_name_the_value(bad):
    with pytest.raises(GencrystalError, match="pressure"):
        check_pressure(bad)


def test_composition_parsing():
    assert parse_composition("SiO2").as_dict() == {"Si": 1.0, "O": 2.0}
    assert parse_composition("Li16").num_atoms == 16
    for bad, msg in [("Xx2", "unknown element 'Xx'"), ("Si0O2", "positive"), ("Li-2", "negative"), ("", "empty")]:
        with pytest.raises(GencrystalError, match=msg):
            parse_composition(bad)


def test_composition_with_groups_is_parsed_by_pymatgen():
    assert parse_composition("Ca(OH)2").as_dict() == {"Ca": 1.0, "O": 2.0, "H": 2.0}
    assert [c.num_atoms for c in enumerate_formula_units("Ca(OH)2", "1-2")] == [5, 10]
    assert parse_composition("Mg3(PO4)2").as_dict() == {"Mg": 3.0, "P": 2.0, "O": 8.0}
    for bad, msg in [("Ca(OH)0", "positive"), ("Ca(OH", "cannot parse"), ("Ca(Xq)2", "unknown element 'Xq'"),
                     ("Ca(OH)1.5", "not an integer"), ("sio2", "cannot parse")]:
        with pytest.raises(GencrystalError, match=msg):
            parse_composition(bad)


def test_formula_unit_enumeration():
    comps = enumerate_formula_units("Si2O4", "1-3")
    assert [c.num_atoms for c in comps] == [3, 6, 9]
    assert parse_int_range("2") == [2]


def test_polar_factor_is_symmetric_rotation_invariant_and_idempotent():
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(3, 3)) + 4 * np.eye(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    s = polar_symmetric_np(lat)
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    np.testing.assert_allclose(polar_symmetric_np(lat @ q.T), s, atol=1e-10)
    np.testing.assert_allclose(polar_symmetric_np(s), s, atol=1e-10)
    np.testing.assert_allclose(s @ s.T, lat @ lat.T, atol=1e-10)
    t = polar_symmetric(torch.tensor(lat)[None])
    np.testing.assert_allclose(t[0].numpy(), s, atol=1e-10)


def test_run_script_ends_a_script_like_a_cli_command(capsys):
    from gencrystal.errors import GencrystalError, run_script

    def bad():
        raise GencrystalError("--budget 0: need at least 1")

    with pytest.raises(SystemExit) as ended:
        run_script(bad)
    assert ended.value.code == 2 and capsys.readouterr().err == "error: --budget 0: need at least 1\n"
    for result, code in ((None, 0), (0, 0), (3, 3)):
        with pytest.raises(SystemExit) as ended:
            run_script(lambda r=result: r)
        assert ended.value.code == code
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_script(lambda: 1 // 0)


def test_a_rewritten_report_does_not_mark_the_commit_dirty_but_a_code_change_does(tmp_path, monkeypatch):
    import subprocess

    from gencrystal import reporting

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(reporting, "REPO_ROOT", tmp_path)
    (tmp_path / "reports" / "r.md").write_text("new\n")  # what a benchmark does before taking its metadata
    assert not reporting.git_commit().endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert reporting.git_commit().endswith("+dirty")
