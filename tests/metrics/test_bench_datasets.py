"""scripts/bench_mp20.py --dataset perov5|carbon24: the dataset's test split, anchors and report name."""

from __future__ import annotations

import json

import pytest

from gencrystal.io import write_extxyz
from gencrystal.structures import to_atoms
from tests.scripts import load_script


def _bench():

    mod = load_script("bench_mp20")
    return mod


@pytest.mark.parametrize("dataset, folder, title, n_all, anchor", [
    ("perov5", "perov_5", "Perov-5", "3,785", "| DiffCSP (published) | 2000 | 3785 | 52.02 | 0.0760 |"),
    ("carbon24", "carbon_24", "Carbon-24", "2,030", "| FlowMM (published) | 1000 | 2030 | 23.47 | 0.4122 |"),
])
def test_bench_dataset_scores_its_own_test_split(tmp_path, data_root, dataset, folder, title, n_all, anchor):
    from gencrystal.metrics.io import read_entries

    test_csv = data_root / folder / "test.csv"
    if not test_csv.is_file():
        pytest.skip(f"{test_csv} not present")
    refs = read_entries(test_csv, limit=6)
    frames = []
    for e in refs:
        a = to_atoms(e.structure)
        a.info["ref_id"] = e.id
        frames.append(a)
    pred = tmp_path / "pred.extxyz"
    write_extxyz(frames, pred)
    mod = _bench()
    rc = mod.main(["--dataset", dataset, "--pred", str(pred), "--pred-label", "test set itself", "--n-test", "6",
                   "--subset", "first", "--workers", "1", "--reports-dir", str(tmp_path / "rep"),
                   "--run-dir", str(tmp_path / "run"), "--data-root", str(data_root)])
    assert rc == 0
    md = (tmp_path / "rep" / f"{dataset}_csp.md").read_text()
    assert md.startswith(f"# {title} CSP benchmark — REDUCED RUN")
    assert f"6 of {n_all} {title} test crystals" in md
    assert anchor in md and "MP-20" not in md
    row = json.loads((tmp_path / "rep" / f"{dataset}_csp.json").read_text())["main"][0]
    assert row["match_rate_unfiltered"] == 1.0 and row["rmse_unfiltered"] == pytest.approx(0.0, abs=1e-6)
    # --render-only re-writes the same markdown from the JSON, provenance untouched
    (tmp_path / "rep" / f"{dataset}_csp.md").unlink()
    assert mod.main(["--render-only", str(tmp_path / "rep" / f"{dataset}_csp.json"),
                     "--reports-dir", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / f"{dataset}_csp.md").read_text() == md


def test_unknown_dataset_is_refused():
    mod = _bench()
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "mpts52"])


def test_sampled_frames_are_the_ones_a_rerun_reads(tmp_path, monkeypatch):
    """The samples a first run hands to the stages equal, to the last bit, those a resumed run reads from
    the sample file, so the per-structure relaxation caches (keyed on positions to 1e-6 Å) hit on resume:
    a position just off the 1e-6 grid must not round one way in memory and the other after extxyz."""
    import types

    import numpy as np
    from ase import Atoms

    import gencrystal.sampling as sampling
    from gencrystal.metrics.stability import structure_key

    x = 1.8792954970928246  # 1.879295 at 1e-6 Å in memory; extxyz writes 1.87929550, which rounds to 1.879296
    base = Atoms("NaCl", positions=[[0, 0, 0], [x, x, x]], cell=np.eye(3) * 4.1, pbc=True)

    class FakeGenerator:
        sampler_name = "fake"

        def __init__(self, *args, **kwargs):
            pass

        def run(self, requests, seed=None):
            frames = [base.copy() for _ in requests]
            return types.SimpleNamespace(frames=frames, nfe_per_sample=1, wall_time_s=0.0, flagged=[])

    monkeypatch.setattr(sampling, "Generator", FakeGenerator)
    mod = _bench()
    ref = types.SimpleNamespace(id="r1", structure=None)
    monkeypatch.setattr(mod, "cell_composition", lambda entry: {"Na": 1, "Cl": 1})
    args = types.SimpleNamespace(device="cpu", sample_batch=8, seed=0)
    cache = tmp_path / "samples.extxyz"
    first, _ = mod.sample_references("unused.ckpt", [ref], "fake", 1, args, cache=cache)
    again, meta = mod.sample_references("unused.ckpt", [ref], "fake", 1, args, cache=cache)
    assert meta.get("reused") == str(cache)
    assert np.array_equal(first[0].positions, again[0].positions)
    assert structure_key(first[0], {}) == structure_key(again[0], {})


def test_repeated_error_lines_are_counted_once_in_first_seen_order():
    counted = _bench().counted
    lines = ["not converged in 10 steps", "no U setup", "not converged in 10 steps", "not converged in 10 steps"]
    assert counted(lines) == "3 × not converged in 10 steps; no U setup"
    assert counted(["only once"]) == "only once"
