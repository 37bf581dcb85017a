"""Non-finite structures (NaN/Inf cell or position) are refused by every reader, with the
file and index named, before any work; a structure file with zero frames is an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.io import write
from pymatgen.io.cif import CifWriter

from gencrystal.cli import main
from gencrystal.errors import GencrystalError
from gencrystal.io import read_structures
from gencrystal.structures import to_structure


def _si(a=5.43):
    atoms = bulk("Si", "diamond", a=a)
    atoms.info["id"] = f"si-{a}"
    return atoms


def _nan_position():
    atoms = _si(5.5)
    atoms.positions[1, 0] = np.nan
    return atoms


def _inf_cell():
    atoms = _si(5.6)
    cell = atoms.cell.array.copy()
    cell[0, 0] = np.inf
    atoms.set_cell(cell)
    return atoms


@pytest.fixture
def nan_file(tmp_path):
    path = tmp_path / "frames.extxyz"
    write(path, [_si(), _nan_position()])
    return path


def test_nan_position_in_extxyz_names_file_and_frame(nan_file):
    with pytest.raises(GencrystalError, match=r"frames\.extxyz' frame 1: positions contains NaN"):
        read_structures(nan_file)


def test_inf_cell_in_extxyz(tmp_path):
    path = tmp_path / "inf.extxyz"
    write(path, [_inf_cell()])
    with pytest.raises(GencrystalError, match=r"inf\.extxyz' frame 0: cell contains Inf"):
        read_structures(path)


def test_nan_row_in_ase_db_names_row(tmp_path):
    import ase.db

    url = tmp_path / "x.db"
    with ase.db.connect(url) as db:
        db.write(_si())
        bad = db.write(_nan_position())
    with pytest.raises(GencrystalError, match=rf"x\.db' row id={bad}: positions contains NaN"):
        read_structures(url)


def test_file_with_zero_frames_is_an_error_even_in_a_folder(tmp_path):
    write(tmp_path / "a.extxyz", _si())
    (tmp_path / "b.extxyz").write_text("")
    with pytest.raises(GencrystalError, match=r"b\.extxyz' holds zero structures"):
        read_structures(tmp_path)


def _cif(atoms, nan_a=False):
    text = str(CifWriter(to_structure(atoms)))
    if nan_a:
        lines = [("_cell_length_a   nan" if ln.startswith("_cell_length_a") else ln) for ln in text.splitlines()]
        text = "\n".join(lines) + "\n"
    return text


@pytest.fixture
def nan_csv(tmp_path):
    path = tmp_path / "test.csv"
    pd.DataFrame({"material_id": ["ok-1", "bad-2"], "cif": [_cif(_si()), _cif(_si(), nan_a=True)],
                  "pressure": [0.0, 0.0]}).to_csv(path)
    return path


def test_reference_csv_with_nan_cell_is_refused(nan_csv):
    from gencrystal.metrics.io import read_entries

    with pytest.raises(GencrystalError, match=r"test\.csv' row 1 \(bad-2\): cell contains NaN"):
        read_entries(nan_csv)


def test_dataset_csv_with_nan_cell_is_an_error_not_a_skip(nan_csv):
    from gencrystal.data.readers import parse_table, read_table
    from gencrystal.data.transforms import CrystalTransform

    with pytest.raises(GencrystalError, match=r"test\.csv' row 1 \(bad-2\): cell or coordinates contain NaN/Inf"):
        parse_table(read_table(nan_csv), CrystalTransform(), source=str(nan_csv), progress=False)


def test_dataset_db_with_nan_row_is_an_error(tmp_path):
    import ase.db

    from gencrystal.data.asedb import read_db
    from gencrystal.data.transforms import CrystalTransform

    url = tmp_path / "hp.db"
    with ase.db.connect(url) as db:
        db.write(_si(), pressure_gpa=0.0)
        bad = db.write(_inf_cell(), pressure_gpa=10.0)
    with pytest.raises(GencrystalError, match=rf"hp\.db' row id={bad}: cell contains Inf"):
        read_db(str(url), None, CrystalTransform(), progress=False)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_evaluate_csp_refuses_a_nan_reference(tmp_path, nan_csv, capsys):
    pred = tmp_path / "pred.extxyz"
    good = _si()
    good.info["ref_id"] = "ok-1"
    write(pred, [good])
    out = tmp_path / "eval"
    assert main(["evaluate", "csp", f"pred={pred}", f"ref={nan_csv}", f"out={out}", "progress=false", "plots=false"]) == 2
    assert "row 1 (bad-2): cell contains NaN" in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", [["relax"], ["validate"]])
def test_relax_and_validate_refuse_nan_inputs_before_any_work(command, nan_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*command, f"input={nan_file}", "pressure=10", f"out={out}"]) == 2
    assert "frame 1: positions contains NaN" in _one_error_line(capsys)
    assert not out.exists()
