"""`gencrystal validate`: VASP inputs, bad input, and (slow) a GPAW validation of a relax output."""

from __future__ import annotations

import json

import pytest
from ase.build import bulk
from ase.io import read, write

from gencrystal.cli import main


def _relax_output(tmp_path, pressure=10.0):
    """A hand-made relax output: diamond Si (MLP-lowest) and simple-cubic Si, plus a failed and a duplicate row."""
    d = bulk("Si", "diamond", a=5.40)
    sc = bulk("Si", "sc", a=2.47)
    dup = d.copy()
    bad = bulk("Si", "fcc", a=3.8)
    rows = [(d, "diamond", -4.20, {}), (sc, "sc", -4.15, {}), (dup, "dup", -4.19, {"duplicate_of": "diamond"}),
            (bad, "bad", float("nan"), {"error": "potential returned a non-finite energy (nan)", "converged": False})]
    frames = []
    for a, sid, h, extra in rows:
        a.info.update({"id": sid, "enthalpy_per_atom": h, "pressure_gpa": pressure, "converged": True,
                       "level_of_theory": "chgnet-0.3.0", **extra})
        frames.append(a)
    folder = tmp_path / "relax_out"
    folder.mkdir()
    write(folder / "relaxed.extxyz", frames)
    return folder


def test_vasp_inputs_have_pstress_and_cond_cdvae_tags(tmp_path):
    folder = _relax_output(tmp_path, pressure=50.0)
    out = tmp_path / "val"
    assert main(["validate", f"input={folder}", "dft=vasp", "top_k=5", f"out={out}"]) == 0
    written = sorted(p.name for p in (out / "vasp").iterdir())
    assert written == ["diamond", "sc"]  # duplicate and failed rows are not validated
    incar = (out / "vasp" / "diamond" / "INCAR").read_text()
    tags = dict(line.split(" = ") for line in incar.strip().splitlines())
    assert float(tags["PSTRESS"]) == 500.0  # 50 GPa = 500 kbar, pressure taken from the relax output
    assert tags["ISMEAR"] == "0" and tags["LREAL"] == "False" and tags["ISYM"] == "0" and tags["ISIF"] == "3"
    assert (out / "vasp" / "diamond" / "POSCAR").exists()
    assert json.loads((out / "validation.json").read_text())["ids"] == ["diamond", "sc"]


@pytest.mark.parametrize("args, needle", [
    (["top_k=0"], "top_k"),
    (["pressure=-5"], "negative"),
    (["pressure=nan"], "finite"),
    (["input=/nonexistent/x.extxyz"], "does not exist"),
    (["dft=nonesuch"], "dft"),
])
def test_validate_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    folder = _relax_output(tmp_path)
    out = tmp_path / "val"
    assert main(["validate", f"input={folder}", f"out={out}", "dft=gpaw_test"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_gpaw_validation_records_enthalpies_matching_and_spearman(tmp_path):
    pytest.importorskip("gpaw")
    folder = _relax_output(tmp_path, pressure=10.0)
    out, db = tmp_path / "val", tmp_path / "hp.db"
    assert main(["validate", f"input={folder}", "dft=gpaw_test", "top_k=2", f"out={out}", f"db={db}"]) == 0
    res = json.loads((out / "validation.json").read_text())
    assert res["pressure_gpa"] == 10.0 and res["n_validated"] == 2 and res["n_dft_ok"] == 2
    rows = {r["id"]: r for r in res["structures"]}
    for r in rows.values():
        assert abs(r["dft_pressure_gpa"] - 10.0) < 1.0 and r["same_structure"] is True
        assert r["dft_level_of_theory"] == "gpaw-pbe-pw250"
    # PBE puts diamond below simple cubic at 10 GPa; so does the fake MLP ranking -> rho = 1, best agrees
    assert rows["diamond"]["dft_enthalpy_per_atom"] < rows["sc"]["dft_enthalpy_per_atom"]
    assert res["ranking_agreement"]["Si"]["spearman"] == pytest.approx(1.0)
    assert res["ranking_agreement"]["Si"]["best_agrees"] is True
    frames = read(out / "dft_relaxed.extxyz", index=":")
    assert [f.info["id"] for f in frames] == ["diamond", "sc"]
    import ase.db

    dbrows = list(ase.db.connect(str(db)).select())
    assert len(dbrows) == 2 and all(r.level_of_theory == "gpaw-pbe-pw250" and r.pressure_gpa == 10.0 for r in dbrows)
    assert (out / "validation.md").read_text().count("| diamond | Si2 |") == 1
