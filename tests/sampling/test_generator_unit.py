"""Generator logic against a stand-in module: batching, seeding, Z counts, flags, validation.

The end-to-end behaviour with a real trained checkpoint is in test_sample_e2e.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from pymatgen.core import Composition, Structure

from gencrystal.errors import GencrystalError
from gencrystal.checks import StructureChecks as SampleChecks
from gencrystal.sampling import Generator, PressureRangeWarning, SamplingWarning
from gencrystal.sampling.requests import expand_request


def _comp(atoms: Atoms) -> Composition:
    return Composition(atoms.get_chemical_formula())


def test_batches_mix_compositions_and_keep_exact_counts(fake_module):
    gen = Generator(fake_module, batch_size=4)
    reqs = expand_request("SiO2", 20, 10, formula_units="1-3") + expand_request("Li16", 50, 3)
    run = gen.run(reqs, seed=3)
    assert len(run.frames) == 13 and run.num_batches == 4  # ceil(13 / 4)
    assert [len(c["num_atoms"]) for c in fake_module.calls] == [4, 4, 4, 1]
    expected = [Composition("SiO2")] * 4 + [Composition("Si2O4")] * 3 + [Composition("Si3O6")] * 3 + [Composition("Li16")] * 3
    assert [_comp(a) for a in run.frames] == expected
    assert [a.info["sample_index"] for a in run.frames] == list(range(13))
    assert [a.info["pressure_gpa"] for a in run.frames] == [20.0] * 10 + [50.0] * 3
    # the conditions the model saw: composition fractions (index Z-1) and pressure per crystal
    first = fake_module.calls[0]["conditions"]
    assert torch.allclose(first["composition"][0, 13], torch.tensor(1 / 3))  # Si (Z=14)
    assert torch.allclose(first["composition"][0, 7], torch.tensor(2 / 3))  # O (Z=8)
    assert torch.allclose(first["composition"].sum(1), torch.ones(4))
    assert fake_module.calls[3]["conditions"]["pressure"].tolist() == [50.0]
    assert run.nfe_per_sample == 10 and run.nfe_total == 40


def test_same_seed_same_structures_and_caller_rng_untouched(fake_module):
    gen = Generator(fake_module, batch_size=3)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = gen.sample("Li4", 10, 5, seed=7)
    after = torch.rand(1)
    b = gen.sample("Li4", 10, 5, seed=7)
    c = gen.sample("Li4", 10, 5, seed=8)
    assert torch.equal(before, after)
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions) and np.array_equal(x.cell[:], y.cell[:])
    assert not np.allclose(a[0].positions, c[0].positions)


def test_progress_over_steps_for_one_batch_over_structures_otherwise(fake_module):
    Generator(fake_module, batch_size=4, progress=True).sample("Li2", 1, 3, seed=0)
    assert [c["progress"] for c in fake_module.calls] == [True]
    Generator(fake_module, batch_size=2, progress=True).sample("Li2", 1, 3, seed=0)
    assert [c["progress"] for c in fake_module.calls[1:]] == [False, False]
    Generator(fake_module, batch_size=4).sample("Li2", 1, 3, seed=0)
    assert fake_module.calls[-1]["progress"] is False


def test_seed_none_is_drawn_and_recorded(fake_module):
    run = Generator(fake_module).run(expand_request("Li2", 0, 2))
    assert isinstance(run.seed, int) and all(a.info["seed"] == run.seed for a in run.frames)
    again = Generator(fake_module).run(expand_request("Li2", 0, 2), seed=run.seed)
    assert np.array_equal(again.frames[1].positions, run.frames[1].positions)


def test_structure_output_carries_info(fake_module):
    out = Generator(fake_module).sample("MgO", 5, 2, seed=0, formula_units=2, output="structure")
    assert all(isinstance(s, Structure) for s in out)
    assert out[0].composition == Composition("Mg2O2") and out[0].properties["pressure_gpa"] == 5.0


def test_too_many_atoms_names_the_cell(fake_module):
    gen = Generator(fake_module)  # max_atoms = 20
    with pytest.raises(GencrystalError, match=r"Si7O14 \(Z=7 of SiO2\) has 21 atoms per cell; .*at most 20"):
        gen.sample("SiO2", 10, 8, formula_units="1-7")
    with pytest.raises(GencrystalError, match="Li21 has 21 atoms"):
        gen.sample("Li21", 10, 1)
    assert fake_module.calls == []  # validated before any model call


def test_pressure_outside_trained_range_warns(fake_module):
    gen = Generator(fake_module)  # trained on 0-100 GPa
    with pytest.warns(PressureRangeWarning, match="pressure=300 GPa is outside the trained range 0-100 GPa"):
        out = gen.sample("Li2", 300, 1, seed=0)
    assert len(out) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.sample("Li2", 100, 1, seed=0)


def test_elements_unseen_in_training_warn(fake_module):
    with pytest.warns(SamplingWarning, match="element\\(s\\) U never occur in the training data"):
        out = Generator(fake_module).sample("UO2", 10, 1, seed=0)
    assert out[0].get_chemical_formula() == "O2U"


def test_csp_model_requires_a_composition(fake_module):
    with pytest.raises(GencrystalError, match="CSP model: composition= is required"):
        Generator(fake_module).sample(None, 10, 2)


def test_denovo_draws_atom_counts_from_training_histogram(fake_module):
    fake_module.csp = False  # histogram {2: 3, 4: 1, 40: 5}; 40 > max_atoms=20 is never drawn
    run = Generator(fake_module, batch_size=50).run(expand_request(None, 10, 200), seed=0)
    counts = np.array([len(a) for a in run.frames])
    assert set(counts) == {2, 4}
    assert 0.6 < np.mean(counts == 2) < 0.9  # expected 3/4
    call = fake_module.calls[0]
    assert call["atom_types"] is None and "composition" not in call["conditions"]


def test_denovo_chemical_system_is_passed_as_allowed_elements(fake_module):
    fake_module.csp = False
    reqs = expand_request(None, 10, 6, chemical_system="Li-B") + expand_request(None, 20, 2)
    run = Generator(fake_module, batch_size=8).run(reqs, seed=0)
    allowed = fake_module.calls[0]["conditions"]["allowed_elements"]
    assert allowed.shape == (8, 100)
    assert torch.nonzero(allowed[0]).flatten().tolist() == [2, 4]  # Li (Z=3), B (Z=5)
    assert bool(allowed[6:].all())  # the unrestricted request
    assert all(set(a.get_chemical_symbols()) <= {"Li", "B"} for a in run.frames[:6])
    assert not any("outside_chemical_system" in a.info["flags"] for a in run.frames)


def test_denovo_chemical_system_flags_foreign_elements(fake_module):
    fake_module.csp = False
    fake_module.honour_allowed = False  # a model that ignores the mask draws Li, Be, B
    run = Generator(fake_module).run(expand_request(None, 10, 20, chemical_system="Li-B"), seed=0)
    assert any("Be" in a.get_chemical_symbols() for a in run.frames)
    for a in run.frames:
        outside = not set(a.get_chemical_symbols()) <= {"Li", "B"}
        assert ("outside_chemical_system" in a.info["flags"]) == outside


def test_denovo_model_with_a_composition_flags_mismatches(fake_module):
    fake_module.csp = False  # exact formulas are a CSP-mode promise only
    run = Generator(fake_module).run(expand_request("Li4", 10, 10), seed=0)
    for a in run.frames:
        assert ("composition_mismatch" in a.info["flags"]) == (a.get_chemical_formula() != "Li4")


def test_flags_short_distances_and_absurd_volumes(fake_module):
    fake_module.volume_per_atom = 0.5
    frames = Generator(fake_module).sample("Li8", 10, 2, seed=0)
    assert all(a.info["flagged"] and "small_volume" in a.info["flags"] for a in frames)
    fake_module.volume_per_atom = 500.0
    frames = Generator(fake_module, checks=SampleChecks(min_distance=0.5, min_volume_per_atom=1, max_volume_per_atom=200)).sample("Li8", 10, 2, seed=0)
    assert all("large_volume" in a.info["flags"] for a in frames)


def test_checks_measure_known_structures():
    from ase.build import bulk

    li = bulk("Li", "bcc", a=3.44, cubic=True)
    res = SampleChecks().evaluate(li)
    assert res["flags"] == [] and res["min_distance"] == pytest.approx(3.44 * np.sqrt(3) / 2, rel=1e-6)
    assert res["volume_per_atom"] == pytest.approx(3.44**3 / 2)
    squeezed = li.copy()
    squeezed.positions[1] = squeezed.positions[0] + [0.3, 0, 0]
    assert SampleChecks().evaluate(squeezed)["flags"] == ["short_distance"]
    nan = li.copy()
    nan.positions[0, 0] = np.nan
    assert SampleChecks().evaluate(nan)["flags"] == ["non_finite"]
    with pytest.raises(GencrystalError, match="must be below"):
        SampleChecks(min_volume_per_atom=300, max_volume_per_atom=200)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "tpu"}, "device="),
        ({"sampler": "euler"}, "sampler='euler' is unknown"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"guidance_scale": float("nan")}, "guidance_scale=nan"),
    ],
)
def test_bad_generator_settings(fake_module, kwargs, needle):
    with pytest.raises(GencrystalError, match=needle):
        Generator(fake_module, **kwargs)


def test_out_of_memory_names_the_batch_size(fake_module):
    fake_module.memory_atoms = 50
    with pytest.raises(GencrystalError, match="out of memory .* batch of 8 crystals .64 atoms.; lower batch_size=8"):
        Generator(fake_module, batch_size=8).sample("Li8", 1, 8, seed=0)
    assert len(Generator(fake_module, batch_size=4).sample("Li8", 1, 8, seed=0)) == 8


def test_bad_seed_and_output(fake_module):
    gen = Generator(fake_module)
    with pytest.raises(GencrystalError, match="seed=-1"):
        gen.sample("Li2", 1, 1, seed=-1)
    with pytest.raises(GencrystalError, match="output='cif'"):
        gen.sample("Li2", 1, 1, output="cif")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(GencrystalError, match="does not exist"):
        Generator(tmp_path / "missing.ckpt")
    with pytest.raises(GencrystalError, match="holds no checkpoints/best.ckpt"):
        Generator(tmp_path)


def test_run_folder_resolves_to_best_then_last(tmp_path):
    from gencrystal.sampling.generator import resolve_checkpoint

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/last.ckpt").write_bytes(b"x")
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints/last.ckpt"
    (tmp_path / "checkpoints/best.ckpt").write_bytes(b"x")
    assert resolve_checkpoint(tmp_path) == tmp_path / "checkpoints/best.ckpt"
    assert resolve_checkpoint(tmp_path / "checkpoints/last.ckpt") == tmp_path / "checkpoints/last.ckpt"
