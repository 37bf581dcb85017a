"""`gencrystal db import`: every source format on files the tests write, provenance,
bad rows, re-runs, duplicate merging, a SIGKILL mid-import, stats and training by level."""

from __future__ import annotations

import bz2
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from gencrystal.cli import main
from gencrystal.db.importing import ImportSummary, read_ledger
from gencrystal.db.schema import PROVENANCE_KEYS, connect
from gencrystal.errors import GencrystalError
from gencrystal.units import gpa_to_ev_per_a3

REPO = Path(__file__).resolve().parents[2]


def _rows(url):
    return sorted(connect(str(url)).select(), key=lambda r: r.import_key)


def _h(e, p, atoms_or_row):
    v = atoms_or_row.volume if hasattr(atoms_or_row, "natoms") else atoms_or_row.get_volume()
    n = atoms_or_row.natoms if hasattr(atoms_or_row, "natoms") else len(atoms_or_row)
    return e + gpa_to_ev_per_a3(p) * v / n


def _has_provenance(row):
    kv = row.key_value_pairs
    return all(k in kv for k in PROVENANCE_KEYS)


def _cif(atoms):
    from pymatgen.io.cif import CifWriter

    from gencrystal.structures import to_structure

    return str(CifWriter(to_structure(atoms)))


# ---------------------------------------------------------------- VASP


def _vasp_tree(root: Path, writers):
    mgo = bulk("MgO", "rocksalt", a=3.95)
    (root / "MgO" / "relax").mkdir(parents=True)
    (root / "MgO" / "relax" / "vasprun.xml").write_text(
        writers["vasprun"](mgo, [-10.0, -11.0, -11.8], {"PSTRESS": 500.0, "IBRION": 2, "NSW": 60, "ISIF": 3}))
    si = bulk("Si", "diamond", a=5.43)
    (root / "Si_scan").mkdir()
    (root / "Si_scan" / "vasprun.xml").write_text(
        writers["vasprun"](si, [-9.2], {"METAGGA": "R2SCAN", "IBRION": -1, "NSW": 0, "PSTRESS": 100.0}))
    al = bulk("Al", "fcc", a=4.0)
    (root / "Al_short").mkdir()  # NSW steps used up: not converged
    (root / "Al_short" / "vasprun.xml").write_text(
        writers["vasprun"](al, [-3.0, -3.3, -3.5], {"IBRION": 2, "NSW": 3, "ISIF": 3, "PSTRESS": 0.0}))
    (root / "broken").mkdir()
    (root / "broken" / "vasprun.xml").write_text("<?xml version='1.0'?><modeling><generator>")  # killed run
    return mgo, si, al


def test_vasp_tree_imports_with_provenance_and_pstress_in_gpa(tmp_path, writers, capsys):
    mgo, _si, _al = _vasp_tree(tmp_path / "runs", writers)
    db = tmp_path / "hp.db"
    assert main(["db", "import", "vasp", str(tmp_path / "runs"), f"db={db}", "progress=false"]) == 0
    out = capsys.readouterr().out
    assert "3 added" in out and "1 bad" in out and "broken" in out  # the bad run is named
    rows = {r.source: r for r in connect(str(db)).select()}
    assert set(rows) == {"vasp:runs/MgO/relax", "vasp:runs/Si_scan", "vasp:runs/Al_short"}
    assert all(_has_provenance(r) for r in rows.values())
    r = rows["vasp:runs/MgO/relax"]
    assert r.pressure_gpa == pytest.approx(50.0)  # PSTRESS 500 kbar
    assert r.level_of_theory == "pbe" and r.relaxed and r.converged
    assert r.energy_per_atom == pytest.approx(-11.8 / 2)  # final σ→0 energy per atom
    assert r.enthalpy_per_atom == pytest.approx(_h(-5.9, 50.0, mgo), abs=1e-9)
    assert r.import_key == "vasp:runs/MgO/relax#0"
    s = rows["vasp:runs/Si_scan"]
    assert s.level_of_theory == "r2scan" and s.pressure_gpa == pytest.approx(10.0) and not s.relaxed
    a = rows["vasp:runs/Al_short"]
    assert a.converged is False and a.relaxed is False and a.pressure_gpa == 0.0
    assert a.enthalpy_per_atom == pytest.approx(a.energy_per_atom)
    # re-running adds nothing
    assert main(["db", "import", "vasp", str(tmp_path / "runs"), f"db={db}", "progress=false"]) == 0
    assert "3 already imported" in capsys.readouterr().out and connect(str(db)).count() == 3


def test_vasp_fatal_bad_row_names_the_file_and_writes_nothing_of_it(tmp_path, writers):
    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.vasp import VaspRuns

    _vasp_tree(tmp_path / "runs", writers)
    db = str(tmp_path / "hp.db")
    with pytest.raises(GencrystalError, match=r"broken.*vasprun.xml"):
        import_source(VaspRuns(str(tmp_path / "runs")), db, on_bad_row="fatal", progress=False)
    # runs are read in sorted order (broken last): the earlier runs were committed, one transaction each
    assert set(read_ledger(connect(db))) == {"vasp:runs/Al_short", "vasp:runs/MgO/relax", "vasp:runs/Si_scan"}
    assert connect(db).count() == 3
    # require_converged turns the unconverged run into a bad row
    s = import_source(VaspRuns(str(tmp_path / "runs"), require_converged=True), str(tmp_path / "b.db"), progress=False)
    assert s.added == 2 and s.bad == 2 and any("converge" in b for b in s.bad_rows)


# ---------------------------------------------------------------- CALYPSO


def test_calypso_results_folder_with_merging_and_missing_structure(tmp_path, writers, capsys):
    from gencrystal.structures import to_structure

    diamond = to_structure(bulk("C", "diamond", a=3.50))
    rattled = diamond.copy()
    rattled.perturb(0.01)
    graphite_like = to_structure(bulk("C", "sc", a=1.75))
    bcc8 = to_structure(bulk("C", "bcc", a=2.3, cubic=True))
    entries = [(diamond, -8.10, 227), (rattled, -8.05, 227), (graphite_like, -7.20, 221), (bcc8, -6.0, 229)]
    calc = writers["calypso"](tmp_path / "C_100GPa", entries, pstress_kbar=1000, missing_ranks=(4,))
    db = tmp_path / "hp.db"
    assert main(["db", "import", "calypso", str(calc), f"db={db}", "progress=false"]) == 0
    out = capsys.readouterr().out
    assert "2 added, 1 merged" in out and "1 bad" in out and "rank 4" in out
    rows = _rows(db)
    assert len(rows) == 2 and all(_has_provenance(r) for r in rows)
    best = next(r for r in rows if r.calypso_rank == 1)
    assert best.pressure_gpa == pytest.approx(100.0) and best.level_of_theory == "pbe" and best.relaxed
    assert best.enthalpy_per_atom == pytest.approx(-8.10)
    assert best.energy_per_atom == pytest.approx(-8.10 - gpa_to_ev_per_a3(100.0) * best.volume / best.natoms)
    assert best.space_group_number == 227 and best.import_key == "calypso:C_100GPa/results#13"
    assert best.n_merged == 1 and best.merged_ids == "calypso:C_100GPa/results#23"  # rank 2 merged into rank 1
    # re-running adds nothing; a changed results folder (one more structure file) adds only what is new
    assert main(["db", "import", "calypso", str(calc), f"db={db}", "progress=false"]) == 0
    assert connect(str(db)).count() == 2
    from pymatgen.io.vasp.inputs import Poscar

    Poscar(bcc8).write_file(str(calc / "results" / "dir_0.1" / "UCell_4_229.vasp"))
    capsys.readouterr()
    assert main(["db", "import", "calypso", str(calc), f"db={db}", "progress=false"]) == 0
    assert "1 added, 0 merged as duplicates, 3 already present, 0 bad" in capsys.readouterr().out
    assert connect(str(db)).count() == 3


def test_calypso_without_incar_needs_a_pressure(tmp_path, writers):
    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.calypso import CalypsoResults
    from gencrystal.structures import to_structure

    calc = writers["calypso"](tmp_path / "s", [(to_structure(bulk("Li", "bcc", a=3.0)), -1.5, 229)], 500)
    for f in calc.glob("INCAR_*"):
        f.unlink()
    s = import_source(CalypsoResults(str(calc / "results"), level_of_theory="pbe"), str(tmp_path / "a.db"), progress=False)
    assert s.added == 0 and s.bad == 1 and "no pressure" in s.bad_rows[0]
    s = import_source(CalypsoResults(str(calc), level_of_theory="pbe", pressure_gpa=50), str(tmp_path / "b.db"),
                      progress=False)
    assert s.added == 1 and connect(str(tmp_path / "b.db")).get(id=1).pressure_gpa == 50.0


# ---------------------------------------------------------------- tables (Cond-CDVAE / CrystalFlow)


def _condcdvae_frame(n_bad_cif=1, n_nan=1):
    recs = []
    specs = [("Li", "bcc", 3.3), ("Na", "bcc", 4.0), ("Cu", "fcc", 3.6), ("Al", "fcc", 4.0), ("Mg", "hcp", 3.2)]
    for i, (el, kind, a) in enumerate(specs):
        for p in (0.0, 50.0):
            atoms = bulk(el, kind, a=a * (0.93 if p else 1.0))
            recs.append({"material_id": f"mp-{100 + i}", "formula": atoms.get_chemical_formula(), "nsites": len(atoms),
                         "volume": atoms.get_volume(), "enthalpy": -3.0 * len(atoms), "enthalpy_per_atom": -3.0 - 0.01 * i + 0.02 * p / 50,
                         "enthalpy0_per_atom": 0.0, "cif": _cif(atoms), "pressure": p})
    for _ in range(n_bad_cif):
        recs.append({**recs[0], "material_id": "bad-cif", "cif": "data_broken\n_cell_length_a 3\n"})
    for _ in range(n_nan):
        recs.append({**recs[1], "material_id": "nan-h", "enthalpy_per_atom": float("nan")})
    return pd.DataFrame(recs)


def test_condcdvae_feather_with_its_column_names(tmp_path, capsys):
    src = tmp_path / "mp60"
    src.mkdir()
    frame = _condcdvae_frame()
    frame.to_feather(src / "train.feather")
    db = tmp_path / "hp.db"
    assert main(["db", "import", "condcdvae", str(src), f"db={db}", "progress=false"]) == 0
    out = capsys.readouterr().out
    assert "10 added" in out and "2 bad" in out and "#10: unparsable CIF" in out and "#11: enthalpy_per_atom" in out
    rows = _rows(db)
    assert len(rows) == 10 and all(_has_provenance(r) for r in rows)
    assert {r.level_of_theory for r in rows} == {"pbe"} and {r.pressure_gpa for r in rows} == {0.0, 50.0}
    r = next(r for r in rows if r.source == "condcdvae:train:mp-102" and r.pressure_gpa == 50.0)
    assert r.enthalpy_per_atom == pytest.approx(-3.0 - 0.02 + 0.02)  # enthalpy0_per_atom is not the final enthalpy
    assert r.energy_per_atom == pytest.approx(r.enthalpy_per_atom - gpa_to_ev_per_a3(50.0) * r.volume / r.natoms)
    assert r.nsites == r.natoms and r.relaxed


def test_table_fatal_bad_row_leaves_nothing_of_that_file(tmp_path):
    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.table import TableSource

    src = tmp_path / "t.csv"
    _condcdvae_frame(n_bad_cif=0).to_csv(src, index=False)
    db = str(tmp_path / "hp.db")
    with pytest.raises(GencrystalError, match=r"t\.csv #10: enthalpy_per_atom=nan"):
        import_source(TableSource(str(src), level_of_theory="pbe"), db, on_bad_row="fatal", progress=False)
    assert connect(db).count() == 0 and read_ledger(connect(db)) == {}  # the 10 good rows were not written either


def test_csv_column_mapping_and_kbar_from_the_cli(tmp_path):
    frame = _condcdvae_frame(0, 0).rename(columns={"cif": "structure", "pressure": "P_kbar",
                                                   "enthalpy_per_atom": "H_eV_atom"})
    frame.to_csv(tmp_path / "mine.csv", index=False)
    db = tmp_path / "hp.db"
    assert main(["db", "import", "table", str(tmp_path / "mine.csv"), f"db={db}", "progress=false",
                 "import_source.level_of_theory=PBEsol", "import_source.columns.cif=[structure]",
                 "import_source.columns.pressure_gpa=[P_kbar]", "import_source.pressure_scale=0.1",
                 "import_source.columns.enthalpy_per_atom=[H_eV_atom]"]) == 0
    rows = _rows(db)
    assert len(rows) == 10 and {r.pressure_gpa for r in rows} == {0.0, 5.0} and {r.level_of_theory for r in rows} == {"pbesol"}
    assert main(["db", "import", "table", str(tmp_path / "mine.csv"), f"db={tmp_path / 'x.db'}"]) == 2  # no CIF column


# ---------------------------------------------------------------- ComputedStructureEntry JSON (Alexandria)


def _entries(pressure_in="data"):
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    from gencrystal.structures import to_structure

    out = []
    for i, (el, kind, a) in enumerate([("K", "bcc", 5.2), ("Rb", "bcc", 5.6), ("Ca", "fcc", 5.5)]):
        s = to_structure(bulk(el, kind, a=a))
        e = ComputedStructureEntry(s, energy=-1.5 * len(s) - 0.1 * i, correction=-0.5, entry_id=f"agm00{i}",
                                   parameters={"run_type": "GGA"},
                                   data={"pressure": 10.0 * i} if pressure_in == "data" else {})
        out.append(e.as_dict())
    return out


def test_alexandria_style_bz2_json_of_entries(tmp_path):
    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.entries import ComputedEntries

    src = tmp_path / "alex"
    src.mkdir()
    with bz2.open(src / "alexandria_000.json.bz2", "wt") as fh:
        json.dump({"@module": "pymatgen.entries.computed_entries", "entries": _entries() + [{"structure": "junk"}]}, fh)
    db = tmp_path / "hp.db"
    assert main(["db", "import", "alexandria", str(src), f"db={db}", "progress=false"]) == 0
    rows = _rows(db)
    assert [r.source for r in rows] == [f"alexandria:alexandria_000:agm00{i}" for i in range(3)]
    for i, r in enumerate(rows):
        assert r.level_of_theory == "pbe" and r.pressure_gpa == pytest.approx(10.0 * i)
        assert r.energy_per_atom == pytest.approx(-1.5 - 0.1 * i / r.natoms)  # uncorrected energy, no -0.5 correction
        assert r.enthalpy_per_atom == pytest.approx(_h(r.energy_per_atom, 10.0 * i, r))
    # entries without a pressure: bad rows unless one is given; the level comes from run_type
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(_entries(pressure_in=None)))
    s = import_source(ComputedEntries(str(plain)), str(tmp_path / "a.db"), progress=False)
    assert s.added == 0 and s.bad == 3
    s = import_source(ComputedEntries(str(plain), pressure_gpa=0.0), str(tmp_path / "a.db"), progress=False)
    assert s.added == 3 and s.levels == {"pbe": 3}


# ---------------------------------------------------------------- extxyz / CIF folders and another ASE db


def _xyz_frames(n, seed=0, el="Cu"):
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a = bulk(el, "fcc", a=3.6 * (1 + 0.05 * i), cubic=True)
        a.rattle(0.02, seed=int(rng.integers(1 << 30)))
        a.calc = SinglePointCalculator(a, energy=-3.5 * len(a) + 0.1 * i)
        a.info = {"pressure_gpa": 5.0 * i, "level_of_theory": "pbe", "id": f"{el}{i}"}
        frames.append(a)
    return frames


def test_extxyz_and_cif_folders_then_another_ase_db(tmp_path):
    from ase.io import write

    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.asedb import AseDatabase
    from gencrystal.db.sources.files import StructureFiles

    src = tmp_path / "files"
    src.mkdir()
    write(src / "cu.extxyz", _xyz_frames(3), format="extxyz")
    (src / "nacl.cif").write_text(_cif(bulk("NaCl", "rocksalt", a=5.0)) + "_pressure_gpa 20\n_level_of_theory r2SCAN\n"
                                  "_energy_per_atom -3.25\n")
    (src / "nopress.cif").write_text(_cif(bulk("KCl", "rocksalt", a=6.0)))
    db = str(tmp_path / "hp.db")
    s = import_source(StructureFiles(str(src)), db, progress=False)
    assert s.added == 4 and s.bad == 1 and "nopress.cif #0: no pressure" in s.bad_rows[0]
    rows = {r.source: r for r in connect(db).select()}
    assert rows["files:Cu2"].pressure_gpa == 10.0 and rows["files:Cu2"].energy_per_atom == pytest.approx(-3.5 + 0.2 / 4)
    assert rows["files:nacl"].level_of_theory == "r2scan" and rows["files:nacl"].pressure_gpa == 20.0
    # the database imported into another one keeps pressure, energies and level of theory
    other = str(tmp_path / "other.db")
    s = import_source(AseDatabase(db, label="groupdb"), other, progress=False)
    assert s.added == 4
    again = {r.source.split(":", 1)[1]: r for r in connect(other).select()}
    for src_row in connect(db).select():
        r = again[src_row.material_id]
        assert (r.pressure_gpa, r.level_of_theory) == (src_row.pressure_gpa, src_row.level_of_theory)
        assert r.enthalpy_per_atom == pytest.approx(src_row.enthalpy_per_atom)
    assert import_source(AseDatabase(db), other, progress=False).files_skipped == 1


# ---------------------------------------------------------------- kill -9 mid-import, then resume


def _signature(url):
    return sorted((r.import_key, r.source, r.get("merged_ids", ""), round(r.pressure_gpa, 6),
                   round(r.enthalpy_per_atom, 8), r.level_of_theory, r.natoms,
                   tuple(np.round(r.toatoms().cell.cellpar(), 5))) for r in connect(url).select())


def _ledger_size_read_only(path: Path) -> int:
    """Files in the import ledger, read with a read-only SQLite connection that is closed
    at once (an ASE connection could create tables in the half-made file or keep a lock)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            row = con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return len(json.loads(row[0]).get("gencrystal_import_files", {})) if row else 0


def test_sigkill_mid_import_then_resume_equals_an_uninterrupted_import(tmp_path):
    from ase.io import write

    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.files import StructureFiles

    src = tmp_path / "frames"
    src.mkdir()
    n_files = 40
    for k in range(n_files):
        frames = _xyz_frames(6, seed=k, el=["Cu", "Ni", "Ag", "Au", "Pd"][k % 5])
        for f in frames:
            f.info["id"] = f"{f.info['id']}-{k}"
        write(src / f"part{k:03d}.extxyz", frames, format="extxyz")
    ref = str(tmp_path / "ref.db")
    ref_summary = import_source(StructureFiles(str(src)), ref, progress=False)
    assert ref_summary.files == n_files and ref_summary.merged > 0  # equal rattled copies across files merge

    killed = tmp_path / "killed.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "gencrystal", "db", "import", "files", str(src), f"db={killed}",
                             "progress=false"], cwd=str(tmp_path), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if killed.exists() and _ledger_size_read_only(killed) >= 3:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after = len(read_ledger(connect(str(killed))))  # (a hot journal left by the kill is rolled back here)
    assert 3 <= after < n_files, f"the kill should land mid-import ({after} of {n_files} files done)"
    # every committed file is complete; nothing of the file in flight is there
    led = read_ledger(connect(str(killed)))
    for r in connect(str(killed)).select():
        assert r.import_key.rsplit("#", 1)[0] in led
    summary = import_source(StructureFiles(str(src)), str(killed), progress=False)
    assert isinstance(summary, ImportSummary) and summary.files_skipped == after
    assert _signature(str(killed)) == _signature(ref)
    assert import_source(StructureFiles(str(src)), str(killed), progress=False).files_skipped == n_files


# ---------------------------------------------------------------- stats per level x pressure bin, training by level


def _mixed_db(tmp_path):
    from ase.io import write

    from gencrystal.db.importing import import_source
    from gencrystal.db.sources.files import StructureFiles
    from gencrystal.db.sources.table import TableSource

    db = str(tmp_path / "mixed.db")
    frame = _condcdvae_frame(0, 0)
    frame.to_feather(tmp_path / "train.feather")
    import_source(TableSource(str(tmp_path / "train.feather"), level_of_theory="pbe"), db, progress=False)
    pot_frames = _xyz_frames(4, seed=7, el="Ni")
    for f in pot_frames:
        f.info["level_of_theory"] = "chgnet-0.3.0"
    write(tmp_path / "pot.extxyz", pot_frames, format="extxyz")
    import_source(StructureFiles(str(tmp_path / "pot.extxyz")), db, progress=False)
    return db


def test_stats_count_rows_per_level_and_pressure_bin(tmp_path, capsys):
    from gencrystal.db.stats import collect_stats, format_stats

    db = _mixed_db(tmp_path)
    st = collect_stats(db, pressure_bins=[0, 10, 50])
    assert st["per_level_and_pressure_bin"] == {"chgnet-0.3.0": {"[0,10)": 2, "[10,50)": 2},
                                                "pbe": {"[0,10)": 5, ">=50": 5}}
    assert st["relaxed"] == st["rows"] == 14
    text = format_stats(st)
    assert "level of theory x pressure bin" in text and "chgnet-0.3.0" in text
    assert main(["db", "stats", f"db={db}", f"plot={tmp_path / 'v.png'}", "pressure_bins=[0,10,50]"]) == 0
    assert ">=50" in capsys.readouterr().out


def test_training_on_an_imported_database_selects_rows_by_level(tmp_path):
    """`data=asedb data.levels=[pbe]`: only the PBE rows of a mixed imported database are
    read, and a tiny model trains a few steps on them (CPU)."""
    from omegaconf import OmegaConf

    from gencrystal.cli import compose
    from gencrystal.data.dataset import load_split
    from gencrystal.db.export import export_splits
    from gencrystal.model.train import train

    db = _mixed_db(tmp_path)
    export_splits(db, tmp_path / "splits", fractions=[0.7, 0.15, 0.15], seed=0)
    cfg = compose("data/asedb").data
    for k, v in {"url": db, "cache_dir": False, "progress": False, "splits": {"train": None}}.items():
        OmegaConf.update(cfg, k, v, merge=False)
    assert len(load_split(cfg, "train")) == 14
    OmegaConf.update(cfg, "levels", ["PBE"])
    ds = load_split(cfg, "train")
    assert len(ds) == 10 and set(np.round(ds.pressure.numpy(), 3)) == {0.0, 50.0}
    OmegaConf.update(cfg, "levels", ["r2scan"])
    with pytest.raises(GencrystalError, match="empty"):
        load_split(cfg, "train")

    overrides = ["experiment=hp_csp", "model=tiny", "logger=csv", "optim=adamw_constant", "num_workers=0",
                 f"data.url={db}", "data.levels=[pbe]", "data.cache_dir=false", "data.progress=false",
                 "data.splits.train=null", "data.splits.val=null", "data.splits.test=null", f"out={tmp_path / 'run'}",
                 "batch_size=4", "trainer.max_steps=3", "+trainer.limit_train_batches=3", "trainer.limit_val_batches=0",
                 "trainer.log_every_n_steps=1"]
    ckpt = train(compose("train", overrides))
    import torch

    from gencrystal.model.module import CrystalDiffusionModule

    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 3
    module = CrystalDiffusionModule.load_checkpoint(ckpt)
    assert module.data_stats.n_structures == 10  # the 4 chgnet rows were not trained on
    assert module.pressure_range == (0.0, 50.0)
