"""Potentials behind one interface: names, fine-tuned checkpoints by path, batched == calculator."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from gencrystal.errors import GencrystalError
from gencrystal.potentials import load_potential


def _structures():
    si = bulk("Si", "diamond", a=5.5)
    si.rattle(0.05, seed=0)
    li = bulk("Li", "bcc", a=3.3, cubic=True)
    li.rattle(0.05, seed=1)
    return [si, li]


def _calc_predictions(pot, structs):
    out = []
    for a in structs:
        b = a.copy()
        b.calc = pot.calculator()
        out.append((b.get_potential_energy(), b.get_forces(), b.get_stress()))
    return out


def test_chgnet_batched_prediction_equals_calculator(chgnet):
    structs = _structures()
    batch = chgnet.predict(structs)
    for p, (e, f, s) in zip(batch, _calc_predictions(chgnet, structs)):
        assert p.energy == pytest.approx(e, abs=1e-4)
        assert np.allclose(p.forces, f, atol=1e-4) and np.allclose(p.stress, s, atol=1e-6)


def test_loading_is_cached_per_process(chgnet):
    assert load_potential("chgnet", device="cpu") is chgnet


def test_fine_tuned_chgnet_checkpoint_by_path(chgnet, tmp_path):
    """A CHGNet checkpoint file (trainer format {'model': as_dict()}) loads by path and predicts like its source."""
    import torch

    ckpt = tmp_path / "my_finetune.pth.tar"
    torch.save({"model": chgnet_model_dict(chgnet)}, ckpt)
    ft = load_potential(str(ckpt), device="cpu")
    assert ft.name == "chgnet" and ft.level_of_theory == "chgnet-ft-my_finetune"
    also = load_potential("chgnet", path=str(ckpt), device="cpu")
    assert also.level_of_theory == "chgnet-ft-my_finetune"
    structs = _structures()
    for a, b in zip(ft.predict(structs), chgnet.predict(structs)):
        assert a.energy == pytest.approx(b.energy, abs=1e-5)


def chgnet_model_dict(pot):
    model = pot.calculator().model
    return model.as_dict()


def test_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(GencrystalError, match="cannot read potential checkpoint"):
        load_potential(str(bad), device="cpu")
    with pytest.raises(GencrystalError, match="does not exist"):
        load_potential("chgnet", path=str(tmp_path / "missing.pth.tar"))
    with pytest.raises(GencrystalError, match="unknown potential"):
        load_potential("mace")


@pytest.mark.slow
def test_sevenn_batched_prediction_equals_calculator_and_loads_by_path():
    pytest.importorskip("sevenn")
    from sevenn.util import pretrained_name_to_path

    pot = load_potential("sevenn", device="cpu")
    assert pot.level_of_theory == "sevenn-0"
    structs = _structures()
    for p, (e, f, s) in zip(pot.predict(structs), _calc_predictions(pot, structs)):
        assert p.energy == pytest.approx(e, abs=1e-4)
        assert np.allclose(p.forces, f, atol=1e-4) and np.allclose(p.stress, s, atol=1e-6)
    by_path = load_potential(pretrained_name_to_path("7net-0"), device="cpu")
    assert by_path.name == "sevenn" and by_path.level_of_theory.startswith("sevenn-ft-")
    assert by_path.predict(structs[:1])[0].energy == pytest.approx(pot.predict(structs[:1])[0].energy, abs=1e-5)
