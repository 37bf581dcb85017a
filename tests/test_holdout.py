"""Known phases held out of the shipped generative model's training data.

The hold-out itself (``scripts/train_default.py holdout`` via :mod:`gencrystal.search.holdout`)
is checked on known structures; the shipped checkpoint is scanned for its recorded
training ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk

from tests.scripts import load_script

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints" / "gencrystal-hp-csp-small.ckpt"
HELDOUT = REPO / "checkpoints" / "gencrystal-hp-csp-heldout.ckpt"  # the known-phase benchmark's model
SEEDS = REPO / "data" / "fixtures" / "hp_seeds.extxyz"
RANDOM_SEEDS = REPO / "data" / "fixtures" / "hp_random_seeds.extxyz"  # the recipe's random Li/Si/SiO2/B seeds


def _proto(name):
    from gencrystal.known_structures import prototypes

    return next(a for a in prototypes() if a.info["id"] == name).copy()


def test_matcher_equates_distorted_known_phases_and_nothing_else():
    from gencrystal.search.holdout import find_known_phases

    stish = _proto("SiO2-stishovite")
    stish.set_cell(stish.cell * 0.93, scale_atoms=True)  # compressed
    stish.rattle(0.02, seed=0)
    li = bulk("Li", "bcc", a=2.9, cubic=True).repeat((2, 1, 1))  # a bcc supercell at another volume
    quartz = _proto("SiO2-alpha-quartz")
    nacl = bulk("NaCl", "rocksalt", a=5.6)
    beta_tin = bulk("Sn", "diamond", a=6.5)  # no Sn reference: never matched
    found = find_known_phases([("stish", stish), ("li", li), ("quartz", quartz), ("nacl", nacl), ("sn", beta_tin)])
    assert found["stish"] == "known:SiO2-stishovite"
    assert found["li"] == "known:Li-bcc"
    assert found["quartz"] == "known:SiO2-alpha-quartz"
    assert "nacl" not in found and "sn" not in found
    fcc = bulk("Li", "fcc", a=4.3)
    assert find_known_phases([("fcc", fcc)]) == {"fcc": "known:Li-fcc"}  # fcc is not taken for bcc


def _leaked_sources() -> dict[str, str]:
    """``{db source: known phase}`` of every structure the shipped model's recipe feeds it that is
    a known phase: the committed seed set, and MP-20 val when the benchmark data is present."""
    from ase.io import read

    from gencrystal.search.holdout import find_known_phases

    seeds = [(f"{f.stem}:{a.info['id']}", a) for f in (SEEDS, RANDOM_SEEDS) if f.is_file() for a in read(str(f), index=":")]
    leaked = find_known_phases(seeds)
    val = Path(os.environ.get("GENCRYSTAL_DATA", REPO.parent / "shared" / "data")) / "mp_20" / "val.csv"
    if val.is_file():
        import pandas as pd
        from pymatgen.core import Composition, Structure

        from gencrystal.search.holdout import known_phase_structures
        from gencrystal.structures import to_atoms

        formulas = {Composition(a.get_chemical_formula(mode="metal")).reduced_formula
                    for a in known_phase_structures().values()}
        table = pd.read_csv(val)
        rows = [(f"mp20:val:{r.material_id}", to_atoms(Structure.from_str(r.cif, fmt="cif")))
                for r in table.itertuples() if Composition(r.pretty_formula).reduced_formula in formulas]
        leaked.update(find_known_phases(rows))
    return leaked


def test_the_seed_set_holds_known_phases_so_the_holdout_is_needed():
    leaked = _leaked_sources()
    assert "hp_seeds:SiO2-stishovite" in leaked and "hp_seeds:Li-cI16" in leaked


def test_shipped_model_training_ids_hold_no_known_phase():
    """The demo's model (``scripts/train_default.py``, holdout stage, fine-tuned from the benchmark
    model): no recorded training id, its parent's included, is a known phase."""
    _scan_training_ids(SHIPPED)
    import torch

    ckpt = torch.load(SHIPPED, map_location="cpu", weights_only=False)
    parent = torch.load(HELDOUT, map_location="cpu", weights_only=False)
    assert set(parent["gencrystal_training_ids"]) <= set(ckpt["gencrystal_training_ids"])  # the lineage is recorded


def test_benchmark_model_training_ids_hold_no_known_phase():
    """The known-phase benchmark's model (``scripts/train_default.py ... --ship-as``), trained by the
    same recipe with the hold-out stage: no recorded training id is a known phase."""
    _scan_training_ids(HELDOUT)


def test_benchmark_model_holds_out_every_searched_target_with_every_id_resolved(data_root):
    """What bench_hp_phases shows per target: the benchmark model's every recorded training id resolves
    (seed set, MP-20 CSV, the recipe's MP-20 seeds) and none of their sources is the target."""
    import torch

    from gencrystal.known_structures import TARGETS
    from gencrystal.search.holdout import checkpoint_heldout

    if not HELDOUT.is_file():
        pytest.skip(f"checkpoint {HELDOUT.relative_to(REPO)} is missing")
    ckpt = torch.load(HELDOUT, map_location="cpu", weights_only=False)
    for key in ("li_ci16", "sio2_rutile", "b_alpha_ga"):
        t = TARGETS[key]
        res = checkpoint_heldout(ckpt, t.structure(), f"known:{t.structure_id}",
                                 REPO / "data" / "fixtures" / "hp_seeds.extxyz", data_root)
        assert res["unresolved"] == 0 and res["matches"] == [] and res["held_out"], (key, res)


def _scan_training_ids(path: Path) -> None:
    import torch

    if not path.is_file():
        pytest.skip(f"checkpoint {path.relative_to(REPO)} is missing")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ids = ckpt.get("gencrystal_training_ids")
    assert ids, f"{path.name} records no training ids (gencrystal_training_ids), so the hold-out cannot be shown"
    assert ckpt.get("gencrystal_holdout"), f"{path.name} records no hold-out (gencrystal_holdout)"
    trained = {i.rsplit("@", 1)[0] for i in ids}
    leaked = {src: phase for src, phase in _leaked_sources().items() if src in trained}
    assert not leaked, f"known phases in the training data: {leaked}"


def test_holdout_stage_moves_known_phases_out_of_every_split_and_ship_records_ids(tmp_path):
    import argparse
    import json

    from gencrystal.db.schema import add_structure, connect

    td = load_script("train_default")
    db = connect(str(tmp_path / "hp.db"))
    stish = _proto("SiO2-stishovite")
    stish.set_cell(stish.cell * 0.95, scale_atoms=True)
    # a relaxation that moved away from its seed, diamond Si (a known phase): a 3-atom triclinic cell
    moved = Atoms("Si3", cell=[[4.1, 0, 0], [0.6, 4.4, 0], [0.3, 0.2, 5.2]],
                  scaled_positions=[[0, 0, 0], [0.31, 0.12, 0.47], [0.63, 0.71, 0.18]], pbc=True)
    for atoms, src, split in ((stish, "hp_seeds:SiO2-stishovite", "train"), (bulk("NaCl", "rocksalt", a=5.6), "mp20:val:x", "train"),
                              (bulk("Li", "bcc", a=3.0, cubic=True), "mp20:test:y", "test"), (moved, "hp_seeds:Si-diamond", "train")):
        add_structure(db, atoms, pressure_gpa=50.0, level_of_theory="chgnet-0.3.0", source=src, split=split)
    args = argparse.Namespace(work=str(tmp_path))
    td.stage_holdout(args)
    splits = {r.source: r.split for r in connect(str(tmp_path / "hp.db")).select()}
    assert splits == {"hp_seeds:SiO2-stishovite": "heldout_known", "mp20:val:x": "train", "mp20:test:y": "heldout_known",
                      "hp_seeds:Si-diamond": "heldout_known"}
    record = json.loads((tmp_path / "holdout.json").read_text())
    assert {r["source"]: r["matched"] for r in record["removed"]} == {
        "hp_seeds:SiO2-stishovite": "row", "mp20:test:y": "row", "hp_seeds:Si-diamond": "source"}
    assert record["matcher"] == {"stol": 0.5, "ltol": 0.3, "angle_tol": 10.0}
    td.stage_holdout(args)  # idempotent
    rec = td.training_record(args)
    assert rec["gencrystal_training_ids"] == ["mp20:val:x@50GPa"] and rec["gencrystal_holdout"]["removed"]


def test_ship_records_the_training_ids_of_the_checkpoint_it_was_fine_tuned_from(tmp_path):
    """A model fine-tuned with ``--init-from`` has seen its parent's training data: the shipped ids are
    the union, the lineage names the parent, and a parent that records no ids cannot be shipped."""
    import argparse
    import json

    import torch

    from gencrystal.db.schema import add_structure, connect

    td = load_script("train_default")
    add_structure(connect(str(tmp_path / "hp.db")), bulk("NaCl", "rocksalt", a=5.6), pressure_gpa=25.0,
                  level_of_theory="chgnet-0.3.0", source="mp20:val:x", split="train")
    (tmp_path / "holdout.json").write_text(json.dumps({"removed": []}))
    torch.save({"gencrystal_training_ids": ["mp20:val:parent@0GPa"], "gencrystal_shipped": {"source": "p"}},
               tmp_path / "parent.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "orphan.ckpt")
    rec = td.training_record(argparse.Namespace(work=str(tmp_path), init_from=str(tmp_path / "parent.ckpt")))
    assert rec["gencrystal_training_ids"] == ["mp20:val:parent@0GPa", "mp20:val:x@25GPa"]
    assert rec["gencrystal_lineage"][0]["n_training_ids"] == 1
    with pytest.raises(SystemExit, match="records no training ids"):
        td.training_record(argparse.Namespace(work=str(tmp_path), init_from=str(tmp_path / "orphan.ckpt")))


def test_checkpoint_heldout_reads_the_recorded_ids_sources_and_the_holdout_record(tmp_path):
    """The benchmark's held-out check of a checkpoint: a recorded training id whose source is the
    phase (seed set or MP-20 CSV) fails it, so does a phase the hold-out never compared, or an id
    that cannot be resolved; ids of other structures pass."""
    import pandas as pd
    from pymatgen.io.cif import CifWriter

    from gencrystal.io import write_extxyz
    from gencrystal.search.holdout import checkpoint_heldout, training_sources
    from gencrystal.structures import to_structure

    stish = _proto("SiO2-stishovite")
    quartz = _proto("SiO2-alpha-quartz")
    seeds = tmp_path / "hp_seeds.extxyz"
    a, b = stish.copy(), bulk("Si", "diamond", a=5.43)
    a.info, b.info = {"id": "SiO2-stishovite"}, {"id": "Si-diamond"}
    write_extxyz([a, b], seeds)
    (tmp_path / "mp_20").mkdir()
    pd.DataFrame([{"material_id": "mp-q", "pretty_formula": "SiO2", "cif": str(CifWriter(to_structure(quartz)))},
                  {"material_id": "mp-s", "pretty_formula": "SiO2", "cif": str(CifWriter(to_structure(stish)))}]
                 ).to_csv(tmp_path / "mp_20" / "val.csv", index=False)
    record = {"references": ["known:SiO2-stishovite"], "removed": [
        {"source": "hp_seeds:SiO2-stishovite", "pressure_gpa": 50.0, "known_phase": "known:SiO2-stishovite"}]}

    def check(ids, rec=record):
        ck = {"gencrystal_training_ids": ids, "gencrystal_holdout": rec}
        return checkpoint_heldout(ck, stish, "known:SiO2-stishovite", seeds, tmp_path)

    ok = check(["mp20:val:mp-q@0GPa", "hp_seeds:Si-diamond@50GPa", "hp_seeds:Si-diamond@0GPa"])
    assert ok["held_out"] and ok["removed"] == ["hp_seeds:SiO2-stishovite"] and ok["n_training_ids"] == 3
    assert check(["mp20:val:mp-q@0GPa", "mp20:val:mp-s@0GPa"])["matches"] == ["mp20:val:mp-s"]
    leaked = check(["hp_seeds:SiO2-stishovite@50GPa"])
    assert not leaked["held_out"] and leaked["matches"] == ["hp_seeds:SiO2-stishovite"]
    assert not check(["mp20:val:mp-q@0GPa"], {"references": [], "removed": []})["held_out"]  # never compared
    # the recipe's MP-20 seeds resolve to their MP-20 rows (they were 48 unresolved ids of the held-out model)
    seeded = check(["mp20_seeds:mp20val-mp-q@50GPa", "mp20_seeds:mp20val-mp-q@100GPa"])
    assert seeded["held_out"] and seeded["unresolved"] == 0
    assert check(["mp20_seeds:mp20val-mp-s@50GPa"])["matches"] == ["mp20_seeds:mp20val-mp-s"]
    assert check(["mp20_seeds:mp20val-mp-gone@50GPa"])["unresolved"] == 1
    unresolved = check(["mp20:val:mp-q@0GPa", "mp20:val:mp-gone@0GPa", "elsewhere:x@0GPa"])
    assert not unresolved["held_out"] and unresolved["unresolved"] == 2
    found, missing = training_sources(["mp20:val:mp-q@0GPa", "hp_seeds:Si-diamond@0GPa"], seeds, tmp_path, formula="Si")
    assert [s for s, _ in found] == ["hp_seeds:Si-diamond"] and missing == []
    # several seed files: each id resolves in the file its stem names
    rand = tmp_path / "hp_random_seeds.extxyz"
    c = bulk("Li", "fcc", a=4.3)
    c.info = {"id": "LiZ1-rand0-sg225"}
    write_extxyz([c], rand)
    ids = ["hp_seeds:Si-diamond@0GPa", "hp_random_seeds:LiZ1-rand0-sg225@50GPa", "hp_random_seeds:Si-diamond@0GPa"]
    found, missing = training_sources(ids, [seeds, rand], tmp_path)
    assert sorted(s for s, _ in found) == ["hp_random_seeds:LiZ1-rand0-sg225", "hp_seeds:Si-diamond"]
    assert missing == ["hp_random_seeds:Si-diamond"]
    assert training_sources(ids[1:2], seeds, tmp_path)[1] == ["hp_random_seeds:LiZ1-rand0-sg225"]  # its file not given


def test_the_latest_relaxation_of_a_seed_at_a_pressure_supersedes_earlier_ones(tmp_path):
    """A seed relaxed again at the same pressure (the committee after CHGNet) keeps only its
    latest row; other pressures, other seeds and the unrelaxed MP-20 rows stay."""
    from gencrystal.db.schema import add_structure, connect

    td = load_script("train_default")
    db = connect(str(tmp_path / "hp.db"))
    li = bulk("Li", "bcc", a=3.0)
    rows = [("hp_seeds:a", "a", 50.0, "chgnet-0.3.0"), ("hp_seeds:a", "a", 100.0, "chgnet-0.3.0"),
            ("hp_seeds:b", "b", 50.0, "chgnet-0.3.0"), ("hp_seeds:a", "a", 50.0, "hp-committee-v2"),
            ("mp20:val:x", "x", 0.0, "mp20-dft-pbe"), ("mp20:val:x", "x", 0.0, "mp20-dft-pbe")]
    ids = [add_structure(db, li, pressure_gpa=p, level_of_theory=lot, source=src, material_id=mid)
           for src, mid, p, lot in rows]
    assert td.superseded_rows(db) == [ids[0]]


def test_db_sources_takes_an_order_of_known_sources_each_once():
    import argparse

    td = load_script("train_default")
    assert td.db_sources("random,seeds") == "random,seeds"
    for bad in ("seeds,seeds", "mp20,cif", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--db-sources"):
            td.db_sources(bad)


def test_group_split_is_stable_when_groups_are_added_and_near_80_10_10():
    td = load_script("train_default")
    groups = [f"hp_random_seeds:g{i}" for i in range(2000)]
    first = {g: td.group_split(g) for g in groups[:100]}
    assert all(td.group_split(g) == s for g, s in first.items())  # whatever else is in the db
    counts = {s: sum(td.group_split(g) == s for g in groups) for s in ("train", "val", "test")}
    assert 1500 < counts["train"] < 1700 and 150 < counts["val"] < 250 and 150 < counts["test"] < 250
    assert [td.group_split("x", seed) for seed in range(20)] != [td.group_split("x", 0)] * 20  # the seed matters


def test_splits_stage_trains_every_seed_the_parent_checkpoint_trained_on(tmp_path):
    import argparse

    import torch
    from ase.io import read

    from gencrystal.db.schema import add_structure, connect

    td = load_script("train_default")
    db = connect(str(tmp_path / "hp.db"))
    li = bulk("Li", "bcc", a=3.0)
    seeds = [a.info["id"] for a in read(str(td.SEEDS), index=":")]
    rand = [s for s in seeds if "rand" in s]
    test_group = next(s for s in rand if td.group_split(f"hp_seeds:{s}") != "train")
    for p in (50.0, 100.0):
        add_structure(db, li, pressure_gpa=p, level_of_theory="hp-committee-v2", source=f"hp_seeds:{test_group}",
                      material_id=f"hp_seeds:{test_group}")
    torch.save({"gencrystal_training_ids": [f"hp_seeds:{test_group}@50GPa"]}, tmp_path / "parent.ckpt")
    td.stage_splits(argparse.Namespace(work=str(tmp_path), seed=0, init_from=None))
    assert {r.split for r in connect(str(tmp_path / "hp.db")).select()} == {td.group_split(f"hp_seeds:{test_group}")}
    td.stage_splits(argparse.Namespace(work=str(tmp_path), seed=0, init_from=str(tmp_path / "parent.ckpt")))
    assert {r.split for r in connect(str(tmp_path / "hp.db")).select()} == {"train"}  # 100 GPa too: the same seed
