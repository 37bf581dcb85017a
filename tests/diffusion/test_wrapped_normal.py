"""Wrapped-normal VE diffusion on the torus: density, score, weighting, prior (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gencrystal.diffusion import WrappedVE, wrap01, wrap_displacement, wrapped_normal_log_prob, wrapped_normal_score
from gencrystal.diffusion.wrapped_normal import images_needed, score_norm_ratio

F64 = torch.float64


@pytest.fixture(scope="module")
def diffcsp_proc() -> WrappedVE:
    """DiffCSP settings (the sigma-norm table is built once per module)."""
    return WrappedVE(sigma_min=0.005, sigma_max=0.5, num_images=10, weighting="sigma_norm")


SIGMAS = [0.005, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0]


def _theta_density(x: torch.Tensor, sigma: float, terms: int = 60) -> torch.Tensor:
    """Fourier series of the wrapped normal (independent of the image sum)."""
    m = torch.arange(1, terms + 1, dtype=F64)
    return 1.0 + 2.0 * (torch.exp(-2.0 * math.pi**2 * m**2 * sigma**2) * torch.cos(2.0 * math.pi * m * x[:, None])).sum(-1)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_score_equals_autograd_of_log_density(sigma):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 3, generator=g, dtype=F64).requires_grad_(True)
    mean = torch.rand(500, 3, generator=g, dtype=F64)
    k = images_needed(sigma)
    logp = wrapped_normal_log_prob(x, mean, sigma, k)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    score = wrapped_normal_score(x.detach(), mean, sigma, k)
    torch.testing.assert_close(score, grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigma", [0.02, 0.2, 0.5, 1.0, 3.0])
def test_density_is_normalised_and_matches_fourier_series(sigma):
    x = torch.arange(4000, dtype=F64) / 4000
    p = wrapped_normal_log_prob(x, 0.0, sigma, images_needed(sigma)).exp()
    assert abs(p.mean().item() - 1.0) < 1e-9  # periodic trapezoid rule over one period
    if sigma >= 0.2:  # the Fourier series converges fast there
        torch.testing.assert_close(p, _theta_density(x, sigma), rtol=1e-9, atol=1e-12)


def test_too_few_images_is_visible():
    # 1 image per side cannot represent sigma = 1: the density is no longer normalised.
    x = torch.arange(2000, dtype=F64) / 2000
    p = wrapped_normal_log_prob(x, 0.0, 1.0, num_images=1).exp()
    assert abs(p.mean().item() - 1.0) > 0.1


@pytest.mark.parametrize("std_scale", [1.0, 20 ** (-1 / 3)])
def test_prior_at_sigma_max_is_uniform_in_total_variation(std_scale):
    proc = WrappedVE(sigma_min=0.01, sigma_max=5.0, prior="wrapped_normal")
    sigma = proc.sigma(torch.ones(1, dtype=F64), torch.tensor([std_scale], dtype=F64)).item()
    x = torch.arange(20000, dtype=F64) / 20000
    p = wrapped_normal_log_prob(x, 0.0, sigma, proc.num_images).exp()
    tv = 0.5 * (p - 1.0).abs().mean().item()
    assert tv < 1e-3


def test_small_sigma_max_is_not_uniform():
    # DiffCSP's sigma_max = 0.5 is visibly non-uniform (TV ~ 5e-3): the check can fail.
    x = torch.arange(20000, dtype=F64) / 20000
    p = wrapped_normal_log_prob(x, 0.0, 0.5, 10).exp()
    assert 0.5 * (p - 1.0).abs().mean().item() > 1e-3


def test_prior_samples_in_unit_interval_and_uniform():
    g = torch.Generator().manual_seed(1)
    for prior in ("uniform", "wrapped_normal"):
        proc = WrappedVE(prior=prior)
        x = proc.prior_sample(torch.zeros(20000, 3, dtype=F64), generator=g)
        assert x.min() >= 0 and x.max() < 1
        hist = np.histogram(x.numpy().ravel(), bins=10, range=(0, 1))[0] / x.numel()
        assert np.abs(hist - 0.1).max() < 0.01


def test_wrap_helpers():
    x = torch.tensor([-1e-12, -0.25, 1.0, 2.75, 0.5], dtype=torch.float32)
    w = wrap01(x)
    assert bool(((w >= 0) & (w < 1)).all())
    d = wrap_displacement(torch.tensor([0.9, -0.7, 0.2], dtype=F64))
    torch.testing.assert_close(d, torch.tensor([-0.1, 0.3, 0.2], dtype=F64))


def test_sigma_schedule_is_geometric_and_scaled():
    proc = WrappedVE(sigma_min=0.01, sigma_max=5.0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    torch.testing.assert_close(proc.sigma(t), torch.tensor([0.01, math.sqrt(0.05), 5.0], dtype=F64))
    scale = torch.tensor([1.0, 0.5, 8 ** (-1 / 3)], dtype=F64)
    torch.testing.assert_close(proc.sigma(t, scale), proc.sigma(t) * scale)


def test_norm_ratio_table_matches_quadrature(diffcsp_proc):
    proc = diffcsp_proc
    sig = torch.tensor([0.003, 0.02, 0.077, 0.21, 0.33, 0.49], dtype=F64)
    direct = score_norm_ratio(sig.clamp(min=0.02), 10, grid_size=4096)
    torch.testing.assert_close(proc.norm_ratio(sig), direct, rtol=2e-3, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.3, 0.5])
def test_sigma_norm_target_has_unit_second_moment(sigma, diffcsp_proc):
    # DiffCSP's normalisation: E[target^2] = 1 at every noise level.
    proc = diffcsp_proc
    t = torch.tensor([math.log(sigma / 0.005) / math.log(100.0)], dtype=F64).expand(4000)
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(4000, 3, generator=g, dtype=F64)
    c = proc.corrupt(x0, t.clone(), index=torch.arange(4000), generator=g)
    assert abs(c.target.pow(2).mean().item() - 1.0) < 0.06


def test_score_times_std_target_and_inverse():
    proc = WrappedVE(sigma_min=0.01, sigma_max=5.0)
    g = torch.Generator().manual_seed(3)
    index = torch.tensor([0, 0, 1, 1, 1])
    t = torch.tensor([0.2, 0.7], dtype=F64)
    scale = torch.tensor([2 ** (-1 / 3), 3 ** (-1 / 3)], dtype=F64)
    x0 = torch.rand(5, 3, generator=g, dtype=F64)
    c = proc.corrupt(x0, t, index=index, std_scale=scale, generator=g)
    assert bool(((c.x_t >= 0) & (c.x_t < 1)).all())
    sig = proc.sigma(t, scale)[index]
    score = wrapped_normal_score(c.x_t, x0, sig[:, None], proc.num_images)
    torch.testing.assert_close(c.target, score * sig[:, None])
    torch.testing.assert_close(proc.score_from_prediction(c.target, t, index=index, std_scale=scale), score)
    assert torch.all(proc.loss(c.target, c) == 0)


def test_small_sigma_noise_statistics():
    proc = WrappedVE(sigma_min=0.01, sigma_max=5.0)
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(20000, 1, generator=g, dtype=F64)
    t = torch.zeros(20000, dtype=F64) + 0.25  # sigma = 0.01 * 500^0.25 ~ 0.047
    c = proc.corrupt(x0, t, index=torch.arange(20000), generator=g)
    d = wrap_displacement(c.x_t - x0)
    assert abs(d.std().item() / proc.sigma(t[:1]).item() - 1.0) < 0.02


def test_remove_mean_makes_loss_translation_invariant():
    proc = WrappedVE(sigma_min=0.01, sigma_max=1.0, remove_mean=True)
    index = torch.tensor([0, 0, 0, 1, 1])
    t = torch.tensor([0.3, 0.6], dtype=F64)
    x0 = torch.rand(5, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    shift = torch.tensor([0.31, 0.77, 0.05], dtype=F64)
    c1 = proc.corrupt(x0, t, index=index, generator=torch.Generator().manual_seed(6))
    c2 = proc.corrupt(wrap01(x0 + shift), t, index=index, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(c1.target, c2.target, rtol=1e-9, atol=1e-9)
    seg_mean = torch.zeros(2, 3, dtype=F64).index_add(0, index, c1.target)
    torch.testing.assert_close(seg_mean, torch.zeros_like(seg_mean), atol=1e-12, rtol=0)
    pred = torch.randn(5, 3, dtype=F64)
    torch.testing.assert_close(proc.loss(pred, c1), proc.loss(pred + 0.4, c1))  # a common offset is projected out


def test_float32_and_bad_config():
    proc = WrappedVE()
    c = proc.corrupt(torch.rand(4, 3), torch.tensor([0.5, 0.9]), index=torch.tensor([0, 0, 1, 1]),
                     std_scale=torch.tensor([0.7, 0.8]))
    assert c.x_t.dtype == torch.float32 and c.target.dtype == torch.float32 and torch.isfinite(c.target).all()
    with pytest.raises(ValueError, match="sigma_max"):
        WrappedVE(sigma_max=5.0, weighting="sigma_norm")
    with pytest.raises(ValueError, match="weighting"):
        WrappedVE(weighting="foo")
    with pytest.raises(ValueError, match="time"):
        proc.corrupt(torch.rand(2, 3), torch.tensor([0.0, 1.5]))
