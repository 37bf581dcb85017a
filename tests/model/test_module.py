"""CrystalDiffusionModule without data: sampling contract, lattice preconditioning, guidance."""

from __future__ import annotations

import pytest
import torch

from gencrystal.config import compose
from gencrystal.errors import GencrystalError
from gencrystal.model.lattice_prior import LatticePriorParams

PRIOR = LatticePriorParams(volume_model="murnaghan", c0=15.0, bulk_modulus=100.0, bulk_modulus_derivative=4.0, v=0.1)
STATS = {"max_atoms": 8, "pressure_min": 0.0, "pressure_max": 100.0, "n_structures": 1}


def _module(*overrides):
    from gencrystal.model.module import CrystalDiffusionModule

    torch.manual_seed(0)
    cfg = compose("train", ["model=tiny", *overrides])
    return CrystalDiffusionModule(cfg, data_stats=STATS, lattice_prior=PRIOR.to_dict(),
                                  condition_scalers={"pressure": [50.0, 30.0]}).eval()


def _zero_lattice_residual(module):
    head = module.ema.module.denoiser.lattice_head[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)


def test_zero_residual_samples_the_lattice_prior():
    """With the network's lattice residual at zero, the preconditioned model is the exact
    score of N(μ(n, P)·I, v·n^(2/3)) data, so the sampler must return that distribution
    (and not blow up through the 1/a_t amplification of the reverse VP process)."""
    m = _module()
    _zero_lattice_residual(m)
    b = 200
    n = torch.full((b,), 4)
    z = torch.full((4 * b,), 14)
    pressure = torch.full((b,), 60.0)
    sampler = {"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 50,
               "predictors": {"lattice": {"_target_": "gencrystal.diffusion.VPAncestral"}}}
    out = m.sample(n, z, {"pressure": pressure}, sampler=sampler, generator=torch.Generator().manual_seed(0))
    mu = (4 * 15.0 * (1 + 4 * 60.0 / 100.0) ** (-1 / 4)) ** (1 / 3)  # c(60 GPa), Murnaghan
    sd = (0.1 * 4 ** (2 / 3)) ** 0.5
    lat = out["lattice"]
    dev = lat - mu * torch.eye(3)
    assert lat.diagonal(dim1=1, dim2=2).mean().item() == pytest.approx(mu, abs=4 * sd / (3 * b) ** 0.5)
    assert dev.pow(2).mean().sqrt().item() == pytest.approx(sd, rel=0.1)


def test_sample_contract_and_guidance_variants():
    m = _module()
    assert m.csp and m.max_atoms == 8 and m.pressure_range == (0.0, 100.0)
    assert set(m.condition_columns) == {"composition", "pressure"}
    n = torch.tensor([2, 3])
    z = torch.tensor([14, 14, 8, 8, 8])
    comp = torch.zeros(2, 100)
    comp[0, 13] = 1.0
    comp[1, 7] = 1.0
    sampler = {"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 3}
    for scale in (1.0, 0.0, 2.0, {"pressure": 1.5, "composition": 1.0}):
        out = m.sample(n, z, {"pressure": torch.tensor([10.0, 20.0]), "composition": comp}, sampler=sampler,
                       guidance_scale=scale, generator=torch.Generator().manual_seed(0))
        assert out["frac_coords"].shape == (5, 3) and out["lattice"].shape == (2, 3, 3) and out["nfe"] == 3
        assert torch.equal(out["atom_types"], z) and torch.equal(out["num_atoms"], n)
    with pytest.raises(GencrystalError, match="pressure"):
        m.sample(n, z, {"pressure": torch.tensor([-1.0, 2.0])}, sampler=sampler)
    with pytest.raises(GencrystalError, match="atom_types"):
        m.sample(n, z[:4], {}, sampler=sampler)
    with pytest.raises(GencrystalError, match="temperature"):
        m.sample(n, z, {"pressure": torch.tensor([1.0, 2.0])}, sampler=sampler, guidance_scale={"temperature": 2.0})


def test_guidance_combines_conditional_and_unconditional_scores():
    """γ = 0 gives the unconditional model's sample, γ = 1 the conditional one's (same noise)."""
    m = _module("model.p_uncond=0.2")
    n = torch.tensor([3])
    z = torch.tensor([6, 6, 6])
    sampler = {"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 4}
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    comp = torch.zeros(1, 100)
    comp[0, 5] = 1.0
    # composition only: pressure also sets the lattice prior c(P), so it cannot be "absent" here
    cond = m.sample(n, z, {"composition": comp}, sampler=sampler, guidance_scale=1.0, generator=g())
    uncond_gamma0 = m.sample(n, z, {"composition": comp}, sampler=sampler, guidance_scale=0.0, generator=g())
    absent = m.sample(n, z, {}, sampler=sampler, generator=g())
    assert torch.allclose(uncond_gamma0["lattice"], absent["lattice"], atol=1e-5)
    assert not torch.allclose(cond["lattice"], absent["lattice"], atol=1e-5)


def test_dng_model_diffuses_types_and_respects_allowed_elements():
    m = _module("diffusion=dng")
    assert not m.csp
    n = torch.tensor([3, 2])
    allowed = torch.zeros(100, dtype=torch.bool)
    allowed[[7, 13]] = True  # O, Si
    sampler = {"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 10}
    out = m.sample(n, None, {"allowed_elements": allowed}, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert out["atom_types"].shape == (5,)
    assert set(out["atom_types"].tolist()) <= {8, 14}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is the GPU option (CPU oneDNN here lacks bf16)")
def test_bf16_autocast_forward_on_gpu():
    """The denoiser runs under bf16 autocast (trainer.precision=bf16-mixed) and returns finite outputs."""
    m = _module().cuda()
    net = m.net
    n = torch.tensor([2, 3])
    batch = torch.repeat_interleave(torch.arange(2), n)
    lat = torch.eye(3).expand(2, 3, 3) * 4.0
    with torch.autocast("cuda", dtype=torch.bfloat16):
        x = {"frac_coords": torch.rand(5, 3).cuda(), "lattice": lat.cuda(), "atom_types": torch.tensor([5, 5, 7, 7, 7]).cuda()}
        out = net(x, n.cuda(), batch.cuda(), torch.tensor([0.3, 0.7]).cuda(), {"pressure": torch.tensor([1.0, 2.0]).cuda()})
    assert all(torch.isfinite(v.float()).all() for v in out.values())


def test_pressure_outside_the_basis_warns():
    m = _module()  # pressure scaler mean 50, std 30, basis z in [-2, 5] -> [-10, 200] GPa
    sampler = {"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 1}
    with pytest.warns(UserWarning, match="outside the model's basis range"):
        m.sample(torch.tensor([2]), torch.tensor([3, 3]), {"pressure": torch.tensor([300.0])}, sampler=sampler)


def test_a_new_scalar_condition_is_a_config_entry():
    """`+model.conditions.temperature={...ScalarCondition, column: temperature}` is all it takes:
    the module reads batch.temperature in training and conditions={"temperature": ...} in sampling."""
    from torch_geometric.data import Batch, Data

    m = _module("+model.conditions.temperature={_target_:gencrystal.model.conditioning.ScalarCondition,"
                "column:temperature,n_basis:8,out_dim:8}")
    assert "temperature" in m.condition_columns
    m.net.conditions.conditions["temperature"].set_scaler(300.0, 100.0)
    items = []
    for k in range(3):
        comp = torch.zeros(1, 100)
        comp[0, 2] = 1.0
        items.append(Data(frac_coords=torch.rand(2, 3), atom_types=torch.tensor([3, 3]), lattice=torch.eye(3)[None] * 3.0,
                          num_atoms=torch.tensor([2]), num_nodes=2, pressure=torch.tensor([10.0 * k]),
                          composition=comp, temperature=torch.tensor([300.0 + 100 * k])))
    batch = Batch.from_data_list(items)
    m.train()
    loss, parts = m.compute_loss(batch)
    assert torch.isfinite(loss) and set(parts) == {"frac_coords", "lattice"}
    del batch.temperature
    with pytest.raises(GencrystalError, match="temperature"):
        m.compute_loss(batch)
    m.eval()
    out = m.sample(torch.tensor([2]), torch.tensor([3, 3]), {"temperature": torch.tensor([500.0])},
                   sampler={"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 2}, guidance_scale={"temperature": 2.0})
    assert out["lattice"].shape == (1, 3, 3)


def test_preconditioning_switches_default_off_for_older_configs():
    """Configs (and checkpoints) without the keys get neither the lattice skip nor the
    prior-normalised metric input, i.e. the behaviour they were trained with."""
    from omegaconf import OmegaConf

    from gencrystal.model.module import CrystalDiffusionModule

    cfg = compose("train", ["model=tiny"])
    m_on = _module()
    assert m_on.lattice_skip_enabled and m_on.prior_metric_input
    raw = OmegaConf.to_container(cfg, resolve=True)
    for field in raw["diffusion"]["fields"].values():  # an older config: no field names its context
        del field["context"]
    m_old = CrystalDiffusionModule(raw, data_stats=STATS, lattice_prior=PRIOR.to_dict()).eval()
    assert not m_old.lattice_skip_enabled and not m_old.prior_metric_input
    x = {"frac_coords": torch.rand(4, 3), "lattice": torch.eye(3).expand(2, 3, 3) * 3.0}
    ctx = m_old.field_context(torch.tensor([2, 2]), torch.tensor([0, 0, 1, 1]), None, torch.float32)
    assert m_old._skips(x, torch.tensor([0.5, 0.5]), ctx) == {} and m_old._denoiser_inputs(ctx) == {}
    out = m_old.sample(torch.tensor([2, 2]), torch.tensor([3, 3, 3, 3]), {},
                       sampler={"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 2})
    assert torch.isfinite(out["lattice"]).all()
