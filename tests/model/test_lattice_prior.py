"""Lattice prior: μ(n, P) = (n·c(P))^(1/3), variance v·n^(2/3), c(P) decreasing; polar round trip."""

import math

import numpy as np
import pytest
import torch

from gencrystal.errors import GencrystalError
from gencrystal.geometry import polar_decomposition, polar_symmetric
from gencrystal.model.lattice_prior import (LatticePrior, LatticePriorParams, fit_lattice_prior, fit_volume_model,
                                            volume_per_atom_np)

C_MP20 = 1.0 / 0.05771451654022283  # MatterGen's MP-20 value, 17.33 Å³/atom


@pytest.mark.parametrize("n", [1, 8, 20])
def test_prior_mean_and_variance_closed_form(n):
    prior = LatticePrior(LatticePriorParams(volume_model="constant", c0=C_MP20, v=0.25))
    na = torch.tensor([n])
    assert prior.mean(na, dtype=torch.float64).item() == pytest.approx((n * C_MP20) ** (1 / 3), rel=1e-12)
    assert prior.std(na, dtype=torch.float64).item() ** 2 == pytest.approx(0.25 * n ** (2 / 3), rel=1e-12)
    m = prior.mean_matrix(na, dtype=torch.float64)[0]
    assert torch.allclose(m, (n * C_MP20) ** (1 / 3) * torch.eye(3, dtype=torch.float64))


def test_anchor_numbers():
    prior = LatticePrior(LatticePriorParams(volume_model="constant", c0=C_MP20, v=0.25))
    mu = prior.mean(torch.tensor([1, 8, 20]), dtype=torch.float64)
    assert mu.tolist() == pytest.approx([2.59, 5.18, 7.02], abs=0.01)
    assert prior.std(torch.tensor([1, 20]), dtype=torch.float64).tolist() == pytest.approx([0.5, 1.357], abs=1e-3)


@pytest.mark.parametrize("n", [1, 8, 20])
def test_vp_limit_distribution_matches_prior(n):
    """Sampling the diffusion core's VP prior with our context gives mean μ(n)·I and variance v·n^(2/3)."""
    vp = pytest.importorskip("gencrystal.diffusion.vp")
    prior = LatticePrior(LatticePriorParams(volume_model="constant", c0=C_MP20, v=0.25))
    m = 20000
    na = torch.full((m,), n)
    proc = vp.VPProcess()
    g = torch.Generator().manual_seed(0)
    x = proc.prior_sample(torch.zeros(m, 3, 3, dtype=torch.float64), limit_mean=prior.mean_matrix(na, dtype=torch.float64),
                          limit_std=prior.std(na, dtype=torch.float64), generator=g)
    mu, var = (n * C_MP20) ** (1 / 3), 0.25 * n ** (2 / 3)
    assert torch.allclose(x.mean(0), mu * torch.eye(3, dtype=torch.float64), atol=5 * math.sqrt(var / m))
    assert torch.allclose(x.var(0), torch.full((3, 3), var, dtype=torch.float64), rtol=0.05)
    assert torch.allclose(x, x.transpose(-1, -2))


def _murnaghan_data():
    p = np.array([0.0, 10.0, 25.0, 50.0, 100.0, 200.0])
    v = 20.0 * (1 + 4.5 * p / 80.0) ** (-1 / 4.5)
    return p, v


@pytest.mark.parametrize("model", ["murnaghan", "loglinear"])
def test_pressure_prior_decreases_and_fits(model):
    p, v = _murnaghan_data()
    params = fit_volume_model(p, v, counts=np.full(len(p), 100), model=model)
    assert params.volume_model == model
    grid = np.linspace(0, 300, 61)
    c = volume_per_atom_np(grid, params)
    assert np.all(np.diff(c) < 0), "c(P) must decrease with pressure"
    if model == "murnaghan":  # exact family: recovers the generating constants
        assert params.c0 == pytest.approx(20.0, rel=1e-4)
        assert params.bulk_modulus == pytest.approx(80.0, rel=1e-3)
        assert params.bulk_modulus_derivative == pytest.approx(4.5, rel=1e-3)
    prior = LatticePrior(params)
    mu = prior.mean(torch.tensor([8, 8, 8]), torch.tensor([0.0, 50.0, 150.0]), dtype=torch.float64)
    assert mu[0] > mu[1] > mu[2]
    assert mu[1].item() == pytest.approx((8 * volume_per_atom_np(50.0, params)) ** (1 / 3), rel=1e-10)


def test_constant_fallback_when_all_pressures_zero():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 21, size=50)
    vpa = rng.uniform(10, 25, size=50)
    lat = np.stack([np.eye(3) * (k * c) ** (1 / 3) for k, c in zip(n, vpa)])
    params = fit_lattice_prior(lat, n, np.zeros(50), volume_model="murnaghan", v=None)
    assert params.volume_model == "constant" and params.fit_info["fallback"]
    assert params.c0 == pytest.approx(vpa.mean(), rel=1e-10)
    # v fitted as the per-entry variance of S − μ(n)·I per n^(2/3): positive and finite
    mu = (n * params.c0) ** (1 / 3)
    expected = np.mean([(((np.eye(3) * ((k * c) ** (1 / 3) - m)) ** 2).mean()) / k ** (2 / 3)
                        for k, c, m in zip(n, vpa, mu)])
    assert params.v == pytest.approx(expected, rel=1e-10)


def test_fit_from_lattices_with_pressure():
    p_levels = np.repeat([0.0, 20.0, 50.0, 100.0], 30)
    n = np.tile(np.arange(1, 31), 4)
    vpa = 15.0 * (1 + 4 * p_levels / 100.0) ** (-1 / 4)
    lat = np.stack([np.eye(3) * (k * c) ** (1 / 3) for k, c in zip(n, vpa)])
    params = fit_lattice_prior(lat, n, p_levels, volume_model="murnaghan", v=0.25)
    assert params.volume_model == "murnaghan" and params.v == 0.25
    assert volume_per_atom_np(np.array([0.0, 100.0]), params) == pytest.approx([15.0, 15.0 * 5 ** -0.25], rel=1e-3)


def test_bad_prior_model_is_a_clear_error():
    with pytest.raises(GencrystalError, match="volume_model"):
        fit_volume_model([0, 10], [10, 9], model="birch")


def test_polar_round_trip():
    torch.manual_seed(0)
    lat = torch.randn(16, 3, 3, dtype=torch.float64) + 4 * torch.eye(3, dtype=torch.float64)
    s, q = polar_decomposition(lat)
    assert torch.allclose(s @ q, lat, atol=1e-10)
    assert torch.allclose(q @ q.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3), atol=1e-10)
    assert torch.allclose(s, s.transpose(-1, -2), atol=1e-12)
    assert torch.allclose(s, polar_symmetric(lat), atol=1e-10)
    assert torch.allclose(s @ s.transpose(-1, -2), lat @ lat.transpose(-1, -2), atol=1e-9)  # same metric
    s2, q2 = polar_decomposition(s)  # S is its own polar factor, Q = I
    assert torch.allclose(s2, s, atol=1e-10) and torch.allclose(q2, torch.eye(3, dtype=torch.float64).expand(16, 3, 3), atol=1e-9)
    r, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    s3, _ = polar_decomposition(lat @ r.T)  # rotating the frame leaves S unchanged
    assert torch.allclose(s3, s, atol=1e-10)


def test_scalar_condition_scaler_covers_the_training_range():
    """Mostly-0-GPa data with a few high-pressure rows: every training pressure lies in the basis."""
    import torch

    from gencrystal.model.train import basis_covering_scaler

    pressures = torch.cat([torch.zeros(1000), torch.tensor([25.0, 50.0, 100.0])])
    mean, std = basis_covering_scaler(pressures, -2.0, 5.0)
    z = (pressures - mean) / std
    assert float(z.max()) <= 5.0 + 1e-9 and float(z.min()) >= -2.0 - 1e-9
    assert float(z.max()) == pytest.approx(5.0)
    # well-spread data keeps its plain z-score
    spread = torch.linspace(0.0, 100.0, 101)
    assert basis_covering_scaler(spread, -2.0, 5.0) == pytest.approx((50.0, float(spread.std(unbiased=False))))
