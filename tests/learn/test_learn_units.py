"""Fast tests of the active-learning parts: hashes, label store, spread, selection, units."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from gencrystal.errors import GencrystalError
from gencrystal.learn.candidates import CandidateSettings, draw_candidates, perturb
from gencrystal.potentials.committee import spread_of
from gencrystal.learn.finetune import chgnet_stress_input, fit_energy_offsets, shifted_energies_per_atom
from gencrystal.learn.labels import LabelStore, structure_hash
from gencrystal.learn.select import UncertaintyPolicy, distance_fingerprint, select_frames


def li2(a: float = 3.44) -> Atoms:
    return bulk("Li", "bcc", a=a, cubic=True)


def labelled(atoms: Atoms, energy: float, key: str | None = None) -> Atoms:
    a = atoms.copy()
    a.calc = SinglePointCalculator(a, energy=energy, forces=np.zeros((len(a), 3)), stress=np.zeros(6))
    a.info["label_hash"] = key or structure_hash(atoms, "test")
    return a


def test_hash_ignores_wrapping_and_sees_displacements_and_level():
    a = li2()
    b = a.copy()
    b.positions[1] += a.cell[0]  # the same structure, atom shifted by a lattice vector
    assert structure_hash(a, "gpaw") == structure_hash(b, "gpaw")
    c = a.copy()
    c.positions[1, 0] += 0.01
    assert structure_hash(a, "gpaw") != structure_hash(c, "gpaw")
    assert structure_hash(a, "gpaw-pbe-pw250") != structure_hash(a, "gpaw-pbe-pw400")


def test_label_store_round_trip_and_no_duplicates(tmp_path):
    store = LabelStore(tmp_path / "labels.extxyz")
    lab = labelled(li2(), -3.7)
    lab.info["iteration"] = 0
    store.add(lab)
    store.add(lab)  # same hash: ignored
    again = LabelStore(tmp_path / "labels.extxyz")
    assert len(again) == 1 and lab.info["label_hash"] in again
    back = again.labels[0]
    assert back.calc.results["energy"] == pytest.approx(-3.7)
    assert back.calc.results["stress"].shape == (6,)
    assert again.by_iteration() == {0: 1}


def test_spread_closed_form():
    e = np.array([-1.0, -1.2])  # eV/atom
    f = np.zeros((2, 2, 3))
    f[0, 1] = [0.3, 0.0, 0.4]  # member 0 pushes atom 1 by |0.5| eV/Å, member 1 not at all
    s = np.zeros((2, 6))
    s[:, 0] = [1.0, 3.0]
    sp = spread_of(e, f, s)
    assert sp.energy_std == pytest.approx(0.1)
    assert sp.forces_std == pytest.approx(0.25)  # sqrt(var_x + var_y) = sqrt(0.15² + 0.2²)
    assert sp.stress_std == pytest.approx(1.0)


def test_policy_thresholds_and_ceiling():
    pol = UncertaintyPolicy(force_threshold=0.05, stress_threshold=1.0, force_ceiling=2.0)
    assert not pol.uncertain(0.01, 0.5)
    assert pol.uncertain(0.06, 0.0)
    assert pol.uncertain(0.0, 1.5)  # stress alone (symmetric cells have zero forces)
    assert not pol.uncertain(3.0, 0.0)  # above the ceiling: discarded
    assert pol.score(0.1, 0.5) == pytest.approx(2.0)


def test_chgnet_stress_convention():
    """StructureData multiplies its stress input by -0.1 to get GPa in ASE's sign."""
    from ase import units

    s_ase = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3]) * units.GPa  # eV/Å³, tensile positive
    full = chgnet_stress_input(s_ase)
    gpa = -0.1 * full
    assert gpa[0, 0] == pytest.approx(1.0) and gpa[2, 2] == pytest.approx(3.0)
    assert gpa[1, 2] == pytest.approx(0.1) and gpa[0, 1] == pytest.approx(0.3)


def test_energy_offsets_recover_a_constant_shift():
    labels = [labelled(li2(a), e) for a, e in [(3.4, -3.7), (3.0, -3.4), (2.7, -2.5)]]
    ref = [lab.calc.results["energy"] / 2 + 0.25 for lab in labels]  # reference = DFT + 0.25 eV/atom
    off = fit_energy_offsets(labels, ref)
    assert off == {"Li": pytest.approx(0.25)}
    assert np.allclose(shifted_energies_per_atom(labels, off), ref)


def test_fingerprint_invariant_to_permutation_translation_sensitive_to_density():
    a = li2()
    a.rattle(0.05, seed=1)
    b = a[[1, 0]]
    b.translate([0.3, -0.2, 0.1])
    els = ["Li"]
    assert np.allclose(distance_fingerprint(a, els), distance_fingerprint(b, els), atol=1e-10)
    c = a.copy()
    c.set_cell(a.cell * 0.85, scale_atoms=True)
    assert np.abs(distance_fingerprint(a, els) - distance_fingerprint(c, els)).sum() > 1.0


def test_selection_takes_one_frame_per_near_duplicate_group():
    frames, scores = [], []
    rng = np.random.default_rng(0)
    for g, a0 in enumerate([3.44, 3.0, 2.6]):
        for j in range(4):
            a = li2(a0)
            a.positions += rng.normal(0, 0.005, a.positions.shape)
            a.info["group"] = g
            frames.append(a)
            scores.append(float(g * 10 + j))
    idx = select_frames(frames, scores, 3, ["Li"], seed=0)
    assert sorted(frames[i].info["group"] for i in idx) == [0, 1, 2]
    assert all(scores[i] % 10 == 3 for i in idx)  # the most uncertain of each group
    assert select_frames(frames, scores, 0, ["Li"]) == []
    assert select_frames(frames[:2], scores[:2], 5, ["Li"], exclude={0}) == [1]


def test_perturb_volume_in_range_and_candidates_tagged():
    rng = np.random.default_rng(1)
    seed = li2()
    v0 = seed.get_volume()
    for _ in range(10):
        v = perturb(seed, rng, rattle=0.0, strain=0.0, volume_scale=(0.7, 0.9)).get_volume()
        assert 0.7 * v0 - 1e-9 <= v <= 0.9 * v0 + 1e-9
    cands = draw_candidates("Li2", 25.0, [seed], CandidateSettings(perturbations=3), rng)
    assert len(cands) == 3 and all(c.info["pressure_gpa"] == 25.0 for c in cands)
    assert all(c.get_chemical_formula() == "Li2" for c in cands)


def test_bad_config_is_a_one_line_error(tmp_path):
    from gencrystal.config import compose
    from gencrystal.learn.loop import ActiveLearningLoop

    with pytest.raises(GencrystalError, match="pressure"):
        ActiveLearningLoop(compose("learn", [f"out={tmp_path}", "pressures=[0,-5]"]))
    with pytest.raises(GencrystalError, match="composition"):
        ActiveLearningLoop(compose("learn", [f"out={tmp_path}", "composition=Na2"]))
    from gencrystal.potentials.committee import load_committee

    with pytest.raises(GencrystalError, match="committee.json"):
        load_committee(tmp_path)


class _LJBackend:
    """A stand-in DFT backend (ASE Lennard-Jones; energies eV, stress eV/Å³)."""

    level_of_theory = "lj-test"

    def calculator(self, atoms):
        from ase.calculators.lj import LennardJones

        return LennardJones(sigma=2.5, epsilon=0.05, rc=6.0)


class _BrokenBackend(_LJBackend):
    level_of_theory = "broken-test"

    def calculator(self, atoms):
        raise RuntimeError("SCF did not converge in 3 iterations")


def test_labelling_writes_rows_once_and_records_failures(tmp_path):
    from gencrystal.config import compose
    from gencrystal.db.schema import connect
    from gencrystal.learn.labels import LabelStore
    from gencrystal.learn.loop import ActiveLearningLoop

    cfg = compose("learn", [f"out={tmp_path / 'run'}", f"db={tmp_path / 'hp.db'}", "progress=false"])
    loop = ActiveLearningLoop(cfg)
    loop.backend = _LJBackend()
    store = LabelStore(tmp_path / "run" / "labels.extxyz")
    frames = [li2(3.44), li2(3.0)]
    for a in frames:
        a.info["pressure_gpa"] = 25.0
    out = loop.label(0, frames, store)
    assert out["n_new_labels"] == 2 and len(store) == 2
    rows = list(connect(str(tmp_path / "hp.db")).select(source="learn:0"))
    assert len(rows) == 2 and {r.level_of_theory for r in rows} == {"lj-test"}
    assert all(r.pressure_gpa == 25.0 for r in rows)
    # a broken calculation is recorded, not raised, and never retried
    loop.backend = _BrokenBackend()
    loop.state["stage"] = "start"
    out = loop.label(1, [li2(2.8)], store)
    assert out["n_failed_labels"] == 1 and len(store) == 2
    again = ActiveLearningLoop(cfg)
    assert len(again.failed) == 1 and "SCF did not converge" in next(iter(again.failed.values()))["error"]


def test_energy_shift_is_fitted_on_low_pressure_labels_only(monkeypatch):
    """Strongly compressed labels (where the base model is the thing being fixed) do not
    pull the DFT→CHGNet energy shift."""
    from ase import units

    from gencrystal.learn import finetune

    labels = []
    for a0, e, p_gpa in [(3.44, -3.7, 0.5), (2.6, -1.9, 48.0), (2.0, 6.0, 340.0)]:
        lab = labelled(li2(a0), e)
        lab.calc.results["stress"] = -np.array([p_gpa] * 3 + [0.0] * 3) * units.GPa
        labels.append(lab)
    monkeypatch.setattr(finetune, "base_energies_per_atom", lambda subset, *a, **k: np.array(
        [lab.calc.results["energy"] / 2 + 0.2 for lab in subset]))
    subset, ref = finetune.offset_fit_labels(labels, 10.0, finetune.FinetuneSettings())
    assert len(subset) == 1 and subset[0] is labels[0]
    assert finetune.fit_energy_offsets(subset, ref) == {"Li": pytest.approx(0.2)}
    subset, _ = finetune.offset_fit_labels(labels[1:], 10.0, finetune.FinetuneSettings())
    assert subset == [labels[1]]  # none under 10 GPa: the lowest-pressure label


def test_learn_command_is_registered_and_reports_bad_input(tmp_path, capsys):
    from gencrystal.cli import main

    assert main(["learn", "--cfg", f"out={tmp_path}"]) == 0
    assert "n_per_iteration" in capsys.readouterr().out
    assert main(["learn", "pressures=[0,nan]", f"out={tmp_path}"]) == 2
    assert "error:" in capsys.readouterr().err
