"""`gencrystal relax`: outputs, ranking, duplicates, DB rows, resume, Dask, and bad input."""

from __future__ import annotations

import json

import pytest
from ase.build import bulk
from ase.io import read, write

from gencrystal.cli import main


@pytest.fixture
def si_inputs(tmp_path):
    a = bulk("Si", "diamond", a=5.6)
    a.rattle(0.04, seed=1)
    b = bulk("Si", "diamond", a=5.45)
    b.rattle(0.03, seed=2)
    path = tmp_path / "in.extxyz"
    write(path, [a, b])
    return path


def test_relax_writes_ranked_outputs_and_db(si_inputs, tmp_path, capsys):
    out, db = tmp_path / "out", tmp_path / "hp.db"
    rc = main(["relax", f"input={si_inputs}", "pressure=5", f"out={out}", f"db={db}", "potential.device=cpu"])
    assert rc == 0
    frames = read(out / "relaxed.extxyz", index=":")
    assert len(frames) == 2
    hs = [f.info["enthalpy_per_atom"] for f in frames]
    assert hs == sorted(hs) and [f.info["rank"] for f in frames] == [1, 2]
    for f in frames:
        assert f.info["potential"] == "chgnet-0.3.0" and f.info["pressure_gpa"] == 5.0
        assert f.info["space_group"].startswith("Fd-3m") and f.info["converged"]
        assert "rmsd_from_input" in f.info and "steps" in f.info
    assert frames[1].info["duplicate_of"] == frames[0].info["id"]  # both relax to diamond
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_structures"] == 2 and summary["n_unique"] == 1 and summary["n_failed"] == 0
    assert (out / "enthalpy_rank.png").stat().st_size > 1000
    assert not (out / ".partial").exists()
    import ase.db

    rows = list(ase.db.connect(str(db)).select())
    assert len(rows) == 2 and {r.level_of_theory for r in rows} == {"chgnet-0.3.0"}
    assert all(r.pressure_gpa == 5.0 for r in rows)
    # re-running the same job adds no duplicate rows
    assert main(["relax", f"input={si_inputs}", "pressure=5", f"out={out}", f"db={db}", "potential.device=cpu"]) == 0
    assert len(list(ase.db.connect(str(db)).select())) == 2


def test_relax_resumes_from_checkpoint(si_inputs, tmp_path, monkeypatch):
    """Structures checkpointed by a killed run are not relaxed again."""
    import gencrystal.cli.relax as commands
    import gencrystal.relax.engine as engine

    out = tmp_path / "out"
    args = ["relax", f"input={si_inputs}", "pressure=0", f"out={out}", "potential.device=cpu"]
    real = engine.relax_structures
    calls = []

    def killed_after_first(structs, *a, on_result=None, **kw):
        calls.append(len(structs))
        res = real(structs[:1], *a, on_result=on_result, ids=kw.pop("ids")[:1], **kw)
        raise KeyboardInterrupt  # simulated kill after one structure was checkpointed

    monkeypatch.setattr(engine, "relax_structures", killed_after_first)
    assert main(args) == 130
    assert len(list((out / ".partial").glob("*.extxyz"))) == 1 and not (out / "relaxed.extxyz").exists()

    def counting(structs, *a, **kw):
        calls.append(len(structs))
        return real(structs, *a, **kw)

    monkeypatch.setattr(engine, "relax_structures", counting)
    assert main(args) == 0
    assert calls == [2, 1]  # the second run relaxed only the missing structure
    assert len(read(out / "relaxed.extxyz", index=":")) == 2
    assert commands  # module imported


@pytest.mark.slow
def test_relax_with_two_dask_workers(si_inputs, tmp_path):
    """Fan-out over a LocalCluster of 2 single-threaded processes gives the in-process result."""
    from gencrystal.relax import relax_structures

    structs = read(si_inputs, index=":")
    local = relax_structures(structs, 5.0, "chgnet", device="cpu", workers=1, progress=False)
    fanned = relax_structures(structs, 5.0, "chgnet", device="cpu", workers=2, chunk_size=1, progress=False)
    for a, b in zip(local, fanned):
        assert b.error is None and b.converged
        assert abs(a.enthalpy_per_atom - b.enthalpy_per_atom) < 1e-5


@pytest.mark.parametrize("args, needle", [
    (["input=/nonexistent/dir", "pressure=5"], "does not exist"),
    (["pressure=-3"], "negative"),
    (["pressure=nan"], "finite"),
    (["potential=nonesuch"], "potential"),
    (["potential.name=nonesuch"], "unknown potential 'nonesuch'"),
    (["potential.path=/no/such.pth.tar"], "does not exist"),
    (["optimizer=LBFGSX"], "optimizer"),
])
def test_relax_bad_input_is_one_line_exit_2_and_writes_nothing(si_inputs, tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    full = ["relax", f"input={si_inputs}", f"out={out}"] + args
    assert main(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not out.exists()


def test_relax_reads_an_ase_db_with_selection(tmp_path):
    """input= an ASE db; selection= picks rows; the relaxed row keeps its material_id as id."""
    import ase.db

    src = tmp_path / "src.db"
    db = ase.db.connect(str(src))
    si = bulk("Si", "diamond", a=5.5)
    si.rattle(0.02, seed=3)
    db.write(si, material_id="si-a", pressure_gpa=0.0)
    db.write(bulk("Li", "bcc", a=3.4, cubic=True), material_id="li-b", pressure_gpa=50.0)
    out = tmp_path / "out"
    assert main(["relax", f"input={src}", "selection='pressure_gpa<1'", "pressure=0", f"out={out}"]) == 0
    frames = read(out / "relaxed.extxyz", index=":")
    assert [f.info["id"] for f in frames] == ["si-a"] and frames[0].info["converged"]
