"""The shipped checkpoint (checkpoints/gencrystal-hp-csp-small.ckpt) keeps loading and sampling
as it was trained: its state-dict keys match the model the current code builds from its stored
config, strictly, and a fixed-seed guided sample reproduces the values recorded with the code
that wrote it (10 predictor-corrector steps, CPU, float32)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "gencrystal-hp-csp-small.ckpt"

# Recorded from the checkpoint retrained with the hold-out (2026-12-03; same seed, sampler and conditions).
LATTICE_DIAG = [[2.6676607, 2.9259875, 5.7527323], [3.1769767, 3.1186399, 3.364203]]  # Å
LATTICE_XY = [0.9197168, -0.3789692]  # Å
FRAC = [[0.3660344, 0.323534, 0.4113288], [0.0999506, 0.2316201, 0.0573344], [0.0718999, 0.7354864, 0.0545813]]


@pytest.fixture(scope="module")
def checkpoint():
    if not CKPT.is_file():
        pytest.skip(f"{CKPT.name} is not in this checkout")
    return torch.load(CKPT, map_location="cpu", weights_only=False)


def test_state_dict_keys_load_strictly(checkpoint):
    from gencrystal.model.module import CrystalDiffusionModule

    h = checkpoint["hyper_parameters"]
    module = CrystalDiffusionModule(h["cfg"], data_stats=h["data_stats"], lattice_prior=h["lattice_prior"],
                                    condition_scalers=h["condition_scalers"])
    assert set(module.state_dict()) == set(checkpoint["state_dict"])
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    # the configs of the checkpoint name no field context: the built-in ones come from its model keys
    assert module.lattice_skip_enabled and module.prior_metric_input
    assert module.contexts["frac_coords"].std_scaling


def test_fixed_seed_sample_is_reproduced():
    from gencrystal.model.module import CrystalDiffusionModule

    if not CKPT.is_file():
        pytest.skip(f"{CKPT.name} is not in this checkout")
    m = CrystalDiffusionModule.load_checkpoint(CKPT)
    z = torch.tensor([14, 14, 8, 8, 8, 8, 14, 8, 8])
    comp = torch.zeros(2, 100)
    comp[:, 13], comp[:, 7] = 1 / 3, 2 / 3  # SiO2
    out = m.sample(torch.tensor([6, 3]), z, {"pressure": torch.tensor([50.0, 20.0]), "composition": comp},
                   sampler={"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 10}, guidance_scale=1.5,
                   generator=torch.Generator().manual_seed(0))
    assert out["nfe"] == 10 and torch.equal(out["atom_types"], z)
    torch.testing.assert_close(out["lattice"].diagonal(dim1=1, dim2=2), torch.tensor(LATTICE_DIAG), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["lattice"][:, 0, 1], torch.tensor(LATTICE_XY), atol=1e-4, rtol=0)
    d = out["frac_coords"][[0, 5, 8]] - torch.tensor(FRAC)
    assert float((d - torch.round(d)).abs().max()) < 1e-4  # on the torus
