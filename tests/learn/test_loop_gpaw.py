"""One loop iteration on bcc Li (2 atoms) with test-size GPAW: labels, database rows,
committee spread, resume without relabelling."""

from __future__ import annotations

import json
import shutil

import pytest
from ase.build import bulk

pytestmark = pytest.mark.slow

OVERRIDES = [
    "composition=Li2", "pressures=[0]", "iterations=1", "progress=false", "seed=3",
    "candidates.perturbations=3", "candidates.volume_scale=[0.95,1.05]", "candidates.rattle=0.08",
    "relax.steps=8", "relax.frame_every=4", "select.n_per_iteration=3",
    "finetune.n_members=2", "finetune.epochs=8", "finetune.batch_size=4",
]


@pytest.fixture(scope="module")
def one_iteration(tmp_path_factory):
    pytest.importorskip("gpaw")
    from gencrystal.config import compose
    from gencrystal.learn.loop import ActiveLearningLoop

    out = tmp_path_factory.mktemp("learn")
    cfg = compose("learn", OVERRIDES + [f"out={out / 'run'}", f"db={out / 'hp.db'}"])
    summary = ActiveLearningLoop(cfg).run()
    return cfg, out, summary


def test_one_iteration_labels_rows_and_committee(one_iteration):
    from gencrystal.db.schema import connect
    from gencrystal.potentials.committee import is_committee_dir

    cfg, out, summary = one_iteration
    assert summary["n_labels"] == 3
    rows = list(connect(str(out / "hp.db")).select(source="learn:0"))
    assert len(rows) == 3
    assert {r.level_of_theory for r in rows} == {"gpaw-pbe-pw250"}
    assert all(r.pressure_gpa == 0.0 and r.natoms == 2 and r.data["forces"].shape == (2, 3) for r in rows)
    assert len({r.label_hash for r in rows}) == 3
    assert is_committee_dir(summary["committee"])
    state = json.loads((out / "run" / "state.json").read_text())
    assert state["stage"] == "trained" and state["done"]


def test_spread_larger_on_compressed_li_than_on_training_structures(one_iteration):
    from ase.io import read

    from gencrystal.potentials.committee import load_committee

    cfg, out, summary = one_iteration
    committee = load_committee(summary["committee"])
    train = read(out / "run" / "labels.extxyz", index=":")
    on_train = max(committee.spread(a).stress_std for a in train)
    compressed = bulk("Li", "bcc", a=2.6, cubic=True)  # ~8.8 Å³/atom, ~50 GPa in PBE
    assert min(a.get_volume() / 2 for a in train) > 15.0  # training frames are all near ambient density
    off = committee.spread(compressed).stress_std
    assert off > 2 * on_train, f"stress spread {off:.3f} GPa on compressed Li vs {on_train:.3f} GPa on training frames"


def test_resumed_loop_does_not_relabel(one_iteration, tmp_path, monkeypatch):
    """A kill during labelling (state at 'selected', one label in the db but not in the store)
    resumes without any new DFT call and without duplicate rows."""
    from ase.io import read

    from gencrystal.config import compose
    from gencrystal.db.schema import connect
    from gencrystal.io import write_extxyz, write_json
    from gencrystal.learn import labels as labels_mod
    from gencrystal.learn.loop import ActiveLearningLoop

    cfg, out, summary = one_iteration
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    shutil.copy(out / "hp.db", tmp_path / "hp.db")
    shutil.rmtree(run / "iter_000" / "committee")
    lab = read(run / "labels.extxyz", index=":")
    write_extxyz(lab[:2], run / "labels.extxyz")  # the third label reached the db only
    state = json.loads((run / "state.json").read_text())
    state.update(stage="selected", done=False, history=[])
    write_json(state, run / "state.json")

    def no_dft(*args, **kwargs):
        raise AssertionError("a resumed loop relabelled a structure")

    monkeypatch.setattr(labels_mod, "dft_single_point", no_dft)
    cfg2 = compose("learn", OVERRIDES + [f"out={run}", f"db={tmp_path / 'hp.db'}"])
    summary2 = ActiveLearningLoop(cfg2).run()
    assert summary2["n_labels"] == 3
    assert summary2["history"][0]["n_skipped_labels"] == 3  # two in the store, one read back from the db
    assert summary2["history"][0]["n_new_labels"] == 3  # labels of iteration 0, none computed again
    assert len(list(connect(str(tmp_path / "hp.db")).select(source="learn:0"))) == 3
    assert (run / "iter_000" / "committee" / "committee.json").is_file()
