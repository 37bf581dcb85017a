"""`gencrystal evaluate csp|dng` end to end: files written, bad input -> one line, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gencrystal.cli import main
from gencrystal.io import write_cifs, write_extxyz
from gencrystal.structures import to_atoms


def _frames(entries, key="id"):
    out = []
    for e in entries:
        a = to_atoms(e.structure)
        a.info[key] = e.id
        out.append(a)
    return out


@pytest.fixture(scope="module")
def small(mp20_slice):
    return mp20_slice[:24]


def test_evaluate_csp_writes_metrics_csv_and_plots(tmp_path, small, mp20_test_csv, capsys):
    pred = tmp_path / "pred.extxyz"
    write_extxyz(_frames(small), pred)
    out = tmp_path / "out"
    rc = main(["evaluate", "csp", f"pred={pred}", f"ref={mp20_test_csv}", f"out={out}", "limit=24",
               "workers=1", "progress=false"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_ref"] == 24 and m["n_pred"] == 24
    assert m["without_validity_filter"]["match_rate"] == 1.0
    assert m["without_validity_filter"]["rmse"] < 1e-6
    assert m["protocol"]["name"] == "1-sample"
    for k in ("match_rate", "rmse", "with_validity_filter", "match_rate_by_atoms"):
        assert k in m
    lines = (out / "per_structure.csv").read_text().splitlines()
    assert len(lines) == 25 and lines[0].startswith("ref_id,")
    for png in ("rmse_hist.png", "match_rate_by_atoms.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "match rate" in capsys.readouterr().out


def test_evaluate_csp_cif_folder_and_order_pairing(tmp_path, small, mp20_test_csv):
    folder = tmp_path / "cifs"
    # file names carry no reference id: pair by order (sorted file names = reference order)
    write_cifs([to_atoms(e.structure) for e in small[:8]], folder, [f"s{i:03d}" for i in range(8)])
    out = tmp_path / "o"
    rc = main(["evaluate", "csp", f"pred={folder}", f"ref={mp20_test_csv}", f"out={out}", "limit=8",
               "pair=order", "workers=1", "progress=false", "plots=false"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["without_validity_filter"]["match_rate"] == 1.0
    assert not (out / "rmse_hist.png").exists()


def test_evaluate_csp_ase_db(tmp_path, small, mp20_test_csv):
    from gencrystal.db.schema import add_structure, connect

    db_path = tmp_path / "pred.db"
    db = connect(str(db_path))
    for e in small[:5]:
        a = to_atoms(e.structure)
        add_structure(db, a, pressure_gpa=0.0, level_of_theory="input", source="test", material_id=e.id)
    out = tmp_path / "o"
    rc = main(["evaluate", "csp", f"pred={db_path}", f"ref={mp20_test_csv}", f"out={out}", "limit=5",
               "workers=1", "progress=false", "plots=false"])
    assert rc == 0
    assert json.loads((out / "metrics.json").read_text())["without_validity_filter"]["match_rate"] == 1.0


@pytest.mark.parametrize("args,needle", [
    (["pred={missing}", "ref={ref}"], "does not exist"),
    (["pred={pred}"], "missing ref="),
    (["pred={pred}", "ref={bad_csv}"], "malformed CIF"),
    (["pred={pred}", "ref={ref}", "limit=-3"], "limit must be positive"),
    (["pred={pred}", "ref={ref}", "pair=sideways"], "unknown pair="),
    (["pred={pred}", "ref={ref}", "validity_mode=lenient"], "validity_mode"),
    (["pred={pred}", "ref={ref}", "timeout_s=0"], "timeout_s must be positive"),
    (["pred={pred}", "ref={ref}", "limit=2", "pair=order"], "multiple of 2"),
    (["pred={pred}", "ref={ref}", "nokey=1"], "bad configuration override"),
])
def test_evaluate_csp_bad_input_one_line_exit_2_nothing_written(tmp_path, small, mp20_test_csv, capsys, args, needle):
    pred = tmp_path / "pred.extxyz"
    write_extxyz(_frames(small[:3]), pred)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('material_id,cif\nmp-x,"data_x\n_cell_length_a oops\n"\n')
    out = tmp_path / "out"
    subs = dict(missing=tmp_path / "nope.extxyz", ref=mp20_test_csv, pred=pred, bad_csv=bad_csv)
    argv = ["evaluate", "csp", *[a.format(**subs) for a in args], f"out={out}", "progress=false", "workers=1"]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not out.exists()


def test_evaluate_dng_end_to_end(tmp_path, mp20_slice, data_root):
    preds = mp20_slice[:6]
    frames = _frames(preds)
    # one exact duplicate and one SMACT-invalid sample
    frames.append(frames[0].copy())
    from ase import Atoms

    frames.append(Atoms("NaCl2", cell=np.eye(3) * 6, scaled_positions=[[0, 0, 0], [.5, .5, .5], [0, .5, .5]], pbc=True))
    pred = tmp_path / "pred.extxyz"
    write_extxyz(frames, pred)
    train = tmp_path / "train.extxyz"
    write_extxyz(_frames(mp20_slice[3:12]), train)  # holds samples 3..5 -> not novel
    out = tmp_path / "dng"
    rc = main(["evaluate", "dng", f"pred={pred}", f"ref={data_root / 'mp_20' / 'test.csv'}", "ref_limit=12",
               f"train={train}", f"out={out}", "workers=1", "progress=false"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_pred"] == 8
    assert m["comp_valid"] <= 7 / 8
    assert m["unique_rate"] == pytest.approx(7 / 8)
    # samples 3, 4, 5 are in the training set; 0, 1, 2, the copy of 0 and NaCl2 are not
    assert m["novel_rate"] == pytest.approx(5 / 8)
    assert 0 < m["cov_recall"] <= 1 and 0 < m["cov_precision"] <= 1
    assert m["wdist_num_elems"] is not None
    assert (out / "per_structure.csv").exists() and (out / "density.png").exists()
