"""The raw -> MLP -> DFT stage pipeline on a cheap potential (ASE EMT for both stages): scores, per-structure
caches that make a re-run compute nothing, the DFT budget, and the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from gencrystal.metrics.io import Entry
from gencrystal.metrics.pipeline import StageSettings, run_stages, smallest
from gencrystal.potentials import calculator_potential
from gencrystal.structures import to_structure


class EMTBackend:
    """A DFT-stage backend with the interface of ``GPAWBackend`` (``relax``, ``level_of_theory``) on EMT."""

    level_of_theory = "emt-as-dft"

    def __init__(self):
        self.calls = 0

    def relax(self, atoms, pressure_gpa, sid=""):
        from gencrystal.relax.ase_relax import relax_one

        self.calls += 1
        return relax_one(atoms, EMT(), pressure_gpa, self.level_of_theory, fmax=0.05, steps=50, sid=sid)


def _case():
    refs, frames = [], []
    rng = np.random.default_rng(0)
    for k, (a_el, b_el, a) in enumerate([("Cu", "Au", 3.75), ("Ni", "Pt", 3.70), ("Ag", "Pd", 4.00)]):
        # L1_2 A3B: 4 atoms that no primitive-cell reduction can shrink, so noise shows in the RMSE
        ref = Atoms([b_el, a_el, a_el, a_el], scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                    cell=np.eye(3) * a, pbc=True)
        el = f"{a_el}3{b_el}"
        refs.append(Entry(f"{el}-ref", to_structure(ref)))
        sample = ref.copy()
        sample.set_cell(sample.cell * 1.06, scale_atoms=True)
        sample.positions += 0.05 * rng.normal(size=sample.positions.shape)
        sample.info["ref_id"] = f"{el}-ref"
        frames.append(sample)
    return refs, frames


def test_stages_score_cache_and_resume(tmp_path, monkeypatch):
    refs, frames = _case()
    pot = calculator_potential(EMT, "emt-test")
    s = StageSettings(potential=pot, mlp_n=2, dft_n=1, relax_steps=100, workers=1, timeout_s=10)
    backend = EMTBackend()
    res = run_stages(refs, frames, tmp_path, s, dft=backend)
    mlp, dft = res["mlp"], res["dft"]
    # the 2 smallest references (4 atoms each; ties by id: Ag3Pd, Cu3Au) and their samples
    assert mlp["n_ref"] == 2 and mlp["n_samples"] == 2 and mlp["n_relaxed"] == 2 and mlp["n_cached"] == 0
    assert [r["label"] for r in mlp["rows"]] == ["raw samples", "after MLP pre-relax (emt-test)"]
    for r in mlp["rows"]:
        assert {"match_rate", "rmse", "crmse", "metre", "metre_crmse"} <= set(r)
        assert 0.0 <= r["crmse_unfiltered"] <= 0.5 and 0.0 <= r["metre"] <= 1.0
    after = mlp["rows"][1]
    assert after["match_rate_unfiltered"] == 1.0 and after["metre"] == 1.0
    # relaxation removes the noise: RMSE drops
    assert after["rmse_unfiltered"] < mlp["rows"][0]["rmse_unfiltered"]
    assert dft["n_ref"] == 1 and dft["ref_ids"] == ["Ag3Pd-ref"] and backend.calls == 1
    assert len(dft["rows"]) == 3 and dft["rows"][2]["label"] == "after DFT relax (emt-as-dft)"
    assert len(list((tmp_path / "mlp_cache").glob("*.extxyz"))) == 2
    assert len(list((tmp_path / "dft_cache").glob("*.extxyz"))) == 1
    # a re-run computes nothing: every relaxation comes from the caches
    import gencrystal.relax as relax_pkg

    monkeypatch.setattr(relax_pkg, "relax_structures", lambda *a, **k: pytest.fail("MLP relaxation re-run"))
    again = run_stages(refs, frames, tmp_path, s, dft=backend)
    assert backend.calls == 1 and again["mlp"]["n_cached"] == 2 and again["dft"]["n_cached"] == 1
    assert again["mlp"]["rows"] == mlp["rows"]


def test_dft_budget_stops_and_a_rerun_continues(tmp_path):
    refs, frames = _case()
    pot = calculator_potential(EMT, "emt-test")
    backend = EMTBackend()
    run_stages(refs, frames, tmp_path, StageSettings(potential=pot, mlp_n=3, dft_n=1, workers=1), dft=backend)
    assert backend.calls == 1
    # a spent budget starts nothing new: the cached crystal counts, the table stops before the second
    res = run_stages(refs, frames, tmp_path, StageSettings(potential=pot, mlp_n=3, dft_n=3, workers=1, dft_budget_s=1e-9),
                     dft=backend)
    assert backend.calls == 1 and res["dft"]["n_ref"] == 1 and res["dft"]["n_requested"] == 3
    assert res["dft"]["stopped_by_budget_before"] == "Cu3Au-ref"
    res2 = run_stages(refs, frames, tmp_path, StageSettings(potential=pot, mlp_n=3, dft_n=3, workers=1), dft=backend)
    assert res2["dft"]["n_ref"] == 3 and res2["dft"]["n_cached"] == 1 and backend.calls == 3
    assert res2["dft"]["stopped_by_budget_before"] is None


def test_a_spent_budget_still_takes_later_cached_crystals(tmp_path):
    """A second worker (or an earlier run in another order) cached the largest crystal: with the budget
    spent, the smallest (cached) and the largest count, the middle one is left out and named."""
    refs, frames = _case()
    pot = calculator_potential(EMT, "emt-test")
    backend = EMTBackend()
    run_stages(refs, frames, tmp_path, StageSettings(potential=pot, mlp_n=3, dft_n=1, workers=1), dft=backend)
    order = [r.id for r in smallest(refs, 3)]
    largest_only = [r for r in refs if r.id == order[2]]
    run_stages(largest_only, [f for f in frames if f.info["ref_id"] == order[2]], tmp_path,
               StageSettings(potential=pot, mlp_n=1, dft_n=1, workers=1), dft=backend)
    calls = backend.calls
    res = run_stages(refs, frames, tmp_path, StageSettings(potential=pot, mlp_n=3, dft_n=3, workers=1, dft_budget_s=1e-9),
                     dft=backend)
    assert backend.calls == calls  # nothing new started
    assert res["dft"]["ref_ids"] == [order[0], order[2]] and res["dft"]["n_ref"] == 2
    assert res["dft"]["left_out_by_budget"] == [order[1]] and res["dft"]["stopped_by_budget_before"] == order[1]


def test_evaluate_pipeline_cli_raw_only_and_bad_input(tmp_path, capsys):
    from gencrystal.cli import main
    from gencrystal.io import write_extxyz
    from gencrystal.structures import to_atoms

    refs, frames = _case()
    ref_frames = []
    for e in refs:
        a = to_atoms(e.structure)
        a.info["id"] = e.id
        ref_frames.append(a)
    write_extxyz(ref_frames, tmp_path / "ref.extxyz")
    write_extxyz(frames, tmp_path / "pred.extxyz")
    out = tmp_path / "out"
    assert main(["evaluate", "pipeline", f"pred={tmp_path / 'pred.extxyz'}", f"ref={tmp_path / 'ref.extxyz'}",
                 f"out={out}", "mlp_n=0", "workers=1"]) == 0
    res = json.loads((out / "stages.json").read_text())
    assert res["n_ref"] == 3 and "mlp" not in res
    assert main(["evaluate", "pipeline", f"pred={tmp_path / 'pred.extxyz'}", f"ref={tmp_path / 'ref.extxyz'}",
                 f"out={tmp_path / 'bad'}", "pressure=-3"]) == 2
    assert not (tmp_path / "bad").exists()
    assert "error:" in capsys.readouterr().err


def test_dft_stage_cache_round_trip(tmp_path):
    """A relaxation stored by one invocation is found by the next (same input, same settings) only."""
    from ase.build import bulk

    from gencrystal.metrics.pipeline import _cache_path, _cached, _store
    from gencrystal.relax.result import RelaxResult

    a = bulk("Si", "diamond", a=5.43)
    a.info["ref_id"] = "mp-149"
    settings = {"ecut": 250.0, "xc": "PBE"}
    path = _cache_path(tmp_path, "dft", a, settings)
    assert _cached(path, "mp-149") is None
    relaxed = a.copy()
    relaxed.set_cell(a.cell * 1.01, scale_atoms=True)
    res = RelaxResult(atoms=relaxed, converged=True, wall_s=12.5, level_of_theory="gpaw-pbe-pw250")
    stored = _store(path, "mp-149", res)
    hit = _cached(path, "mp-149")
    assert hit is not None and hit["cached"] and not stored["cached"]
    assert hit["converged"] and hit["error"] is None and hit["wall_s"] == 12.5 and hit["ref_id"] == "mp-149"
    assert abs(hit["atoms"].get_volume() - relaxed.get_volume()) < 1e-6
    assert _cache_path(tmp_path, "dft", a, {**settings, "ecut": 400.0}) != path  # other settings: not reused


def test_niggli_copy_is_the_same_crystal_with_a_reduced_cell():
    from ase.build import bulk

    from gencrystal.matching import make_matcher
    from gencrystal.metrics.pipeline import niggli_copy

    a = bulk("Cu", "fcc", a=3.6)
    skewed = a.copy()
    skewed.set_cell([a.cell[0], a.cell[1], a.cell[2] + 3 * a.cell[0] + 2 * a.cell[1]], scale_atoms=False)
    assert min(skewed.cell.cellpar()[3:]) < 30
    red = niggli_copy(skewed)
    assert min(red.cell.cellpar()[3:]) >= 59.9 and abs(red.get_volume() - a.get_volume()) < 1e-6
    assert make_matcher("csp").fit(to_structure(red), to_structure(a))
    assert skewed.cell.cellpar()[3:].min() < 30  # the input is not modified


def test_dft_budget_stops_a_running_relaxation_and_caches_nothing(tmp_path):
    import time

    refs, frames = _case()

    class Slow(EMTBackend):
        def relax(self, atoms, pressure_gpa, sid=""):
            self.calls += 1
            time.sleep(30)  # interrupted by the budget
            return super().relax(atoms, pressure_gpa, sid)

    backend = Slow()
    t0 = time.time()
    res = run_stages(refs, frames, tmp_path, StageSettings(potential=calculator_potential(EMT, "emt-test"), mlp_n=1,
                                                           dft_n=1, workers=1, dft_budget_s=0.5), dft=backend)
    assert time.time() - t0 < 25 and backend.calls == 1
    assert res["dft"]["n_ref"] == 0 and res["dft"]["stopped_by_budget_before"] == "Ag3Pd-ref"
    assert not list((tmp_path / "dft_cache").glob("*.extxyz")) and res["dft"]["rows"] == []
