"""`gencrystal evaluate csp|dng` end to end: files written, bad input -> one line, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gencrystal.cli import main
from gencrystal.io import write_cifs, write_extxyz
from gencrystal.structures import to_atoms
from tests.scripts import load_script


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
    (["pred={pred}", "ref={ref}", "limit=-3"], "limit=-3 must be a positive integer"),
    (["pred={pred}", "ref={ref}", "pair=sideways"], "unknown pair="),
    (["pred={pred}", "ref={ref}", "validity_mode=lenient"], "validity_mode"),
    (["pred={pred}", "ref={ref}", "timeout_s=0"], "timeout_s=0 s must be > 0"),
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


def _rocksalt(a, x="Na", y="Cl"):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [x, y], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_evaluate_dng_hull_from_given_energies(tmp_path, mp20_test_csv):
    """Stability and S.U.N. from energies stored on the structures (no potential involved)."""
    from ase.build import bulk

    lot = "test-potential"
    train = []
    for atoms, e in [(bulk("Na", "bcc", a=4.23), 0.0), (to_atoms(_rocksalt(5.64)), -2.0)]:
        a = atoms.copy()
        a.info.update(enthalpy_per_atom=e, level_of_theory=lot)
        train.append(a)
    cl = to_atoms(_rocksalt(5.64, "Cl", "Cl").get_primitive_structure())  # elemental Cl reference, 0 eV/atom
    cl.info.update(enthalpy_per_atom=0.0, level_of_theory=lot)
    elements = tmp_path / "elements.extxyz"
    write_extxyz([cl], elements)
    samples = []
    from pymatgen.core import Lattice, Structure

    cscl = Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    zincblende = Structure.from_spacegroup("F-43m", Lattice.cubic(6.0), ["Na", "Cl"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    for struct, e, sid in [(_rocksalt(5.5), -1.95, "same-as-train"),   # the training rock salt (scaled): not novel
                           (cscl, -1.95, "novel-stable"),              # new structure type, 0.05 eV/atom above hull
                           (zincblende, -1.5, "novel-unstable")]:      # new structure type, 0.5 eV/atom above
        a = to_atoms(struct)
        a.info.update(id=sid, enthalpy_per_atom=e, level_of_theory=lot)
        samples.append(a)
    pred, tr = tmp_path / "pred.extxyz", tmp_path / "train.extxyz"
    write_extxyz(samples, pred)
    write_extxyz(train, tr)
    out = tmp_path / "dng"
    rc = main(["evaluate", "dng", f"pred={pred}", f"ref={tr}", f"train={tr}", f"out={out}", "coverage=false",
               "energies.key=enthalpy_per_atom", f"energies.elements={elements}", "workers=1", "progress=false"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["hull"]["level_of_theory"] == lot
    assert m["novel_rate"] == pytest.approx(2 / 3)
    assert m["stable_rate"] == pytest.approx(2 / 3)
    assert m["unique_rate"] == 1.0
    assert m["sun_rate"] == pytest.approx(1 / 3) and m["n_sun"] == 1
    rows = (out / "per_structure.csv").read_text().splitlines()
    ehull = {r.split(",")[0]: r.split(",")[-1] for r in rows[1:]}
    assert float(ehull["novel-stable"]) == pytest.approx(0.05, abs=1e-6)
    assert float(ehull["novel-unstable"]) == pytest.approx(0.5, abs=1e-6)


def test_evaluate_dng_refuses_mixed_potentials(tmp_path, capsys):
    a = to_atoms(_rocksalt(5.64))
    a.info.update(enthalpy_per_atom=-2.0, level_of_theory="chgnet-0.3.0")
    b = to_atoms(_rocksalt(5.0))
    b.info.update(enthalpy_per_atom=-2.0, level_of_theory="sevenn-0")
    pred, tr = tmp_path / "pred.extxyz", tmp_path / "train.extxyz"
    write_extxyz([b], pred)
    write_extxyz([a], tr)
    out = tmp_path / "dng"
    rc = main(["evaluate", "dng", f"pred={pred}", f"ref={tr}", f"train={tr}", f"out={out}", "coverage=false",
               "energies.key=enthalpy_per_atom", "workers=1", "progress=false"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "different levels of theory" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_bench_script_scores_existing_samples(tmp_path, mp20_slice, data_root):
    """scripts/bench_mp20.py --pred: the report path without a model (the model path needs training)."""


    mod = load_script("bench_mp20")
    pred = tmp_path / "pred.extxyz"
    write_extxyz(_frames(mp20_slice[:10]), pred)
    rc = mod.main(["--pred", str(pred), "--pred-label", "test set itself", "--n-test", "10", "--subset", "first",
                   "--workers", "1", "--reports-dir", str(tmp_path / "rep"), "--run-dir", str(tmp_path / "run"),
                   "--data-root", str(data_root)])
    assert rc == 0
    md = (tmp_path / "rep" / "mp20_csp.md").read_text()
    assert "REDUCED RUN" in md and "10 of 9,046" in md
    assert "| DiffCSP (published) | 2000 | 9046 | 51.49 | 0.0631 |" in md
    res = json.loads((tmp_path / "rep" / "mp20_csp.json").read_text())
    row = res["main"][0]
    assert row["match_rate_unfiltered"] == 1.0 and row["n_ref"] == 10
    assert "commit" in res["metadata"]
