"""The default model's held-out volume check against DFT: references come from the committee's EOS
table, each marked held out only when the hold-out removed that phase."""

from __future__ import annotations

import json

import numpy as np
from ase.build import bulk

from tests.scripts import load_script


def _table(tmp_path):
    table = {"shipped": {"li": {"phases": {
        "bcc Li": {"formula": "Li2", "known_id": "Li-bcc",
                   "eos": {"0": {"dft": 20.35, "dft_converged": True}, "50": {"dft": 8.70, "dft_converged": True},
                           "100": {"dft": 6.75, "dft_converged": False}}},
        "fcc Li": {"formula": "Li", "known_id": "Li-fcc", "eos": {"50": {"dft": 8.65}}},
        "old entry": {"eos": {"0": {"dft": 1.0}}}}}}}  # written before formulas were recorded: skipped
    path = tmp_path / "active_learning.json"
    path.write_text(json.dumps(table))
    return path


def test_references_skip_unconverged_dft_and_mark_the_held_out_phases(tmp_path):
    td = load_script("train_default")
    refs = td.dft_volume_references(_table(tmp_path), {"known:Li-bcc"})
    assert [(r["phase"], r["pressure_gpa"], r["held_out"]) for r in refs] == [
        ("bcc Li", 0.0, True), ("bcc Li", 50.0, True), ("fcc Li", 50.0, False)]
    assert td.dft_volume_references(tmp_path / "missing.json", set()) == []


def test_volume_errors_are_per_sample_against_the_dft_volume(tmp_path):
    td = load_script("train_default")
    refs = td.dft_volume_references(_table(tmp_path), {"known:Li-bcc", "known:Li-fcc"})

    class FakeGenerator:  # samples at exactly 1.1 x the DFT volume of request 0 and 0.8 x elsewhere
        def run(self, reqs, seed):
            frames = []
            for i, r in enumerate(reqs):
                for _ in range(r.num_samples):
                    a = bulk("Li", "bcc", a=3.0, cubic=True) if r.formula == "Li2" else bulk("Li", "fcc", a=4.0)
                    v = refs[i]["volume_per_atom"] * (1.1 if i == 0 else 0.8)
                    a.set_cell(a.cell * (v * len(a) / a.get_volume()) ** (1 / 3), scale_atoms=True)
                    a.info["request_index"] = i
                    frames.append(a)
            return type("Run", (), {"frames": frames})()

    res = td.known_phase_volume_errors(FakeGenerator(), refs, samples=3, seed=0)
    assert res["n_samples"] == 9 and res["all_held_out"]
    assert np.isclose(res["volume_err_median_abs"], 0.2) and np.isclose(res["volume_err_mean"], (0.1 - 0.4) / 3)
    assert [round(r["median_err"], 6) for r in res["rows"]] == [0.1, -0.2, -0.2]
