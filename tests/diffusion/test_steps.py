"""Single predictor and corrector steps against their closed forms (float64)."""

from __future__ import annotations

import math

import torch

from gencrystal.diffusion import LangevinCorrector, VPProcess, WrappedVE, WrappedVEAncestral, wrap_displacement
from gencrystal.diffusion.wrapped_normal import wrapped_normal_score

F64 = torch.float64


def test_wrapped_ancestral_step_samples_the_ve_posterior():
    # Point-mass data and a small sigma (images irrelevant): eta = 1 draws
    # q(x_s | x_t, x0) = N(x0 + sigma_s^2/sigma_t^2 (x_t - x0), sigma_s^2 (sigma_t^2 - sigma_s^2)/sigma_t^2).
    proc = WrappedVE(sigma_min=0.001, sigma_max=0.1)
    m = 50000
    x0 = torch.full((m, 1), 0.5, dtype=F64)
    t, s = torch.full((m,), 0.8, dtype=F64), torch.full((m,), 0.6, dtype=F64)
    c = proc.corrupt(x0, t, index=torch.arange(m), generator=torch.Generator().manual_seed(0))
    sig_t, sig_s = proc.sigma(t[:1]).item(), proc.sigma(s[:1]).item()
    score = wrapped_normal_score(c.x_t, x0, sig_t, proc.num_images)
    x_s = WrappedVEAncestral(eta=1.0).step(proc, c.x_t, score, t, s, index=torch.arange(m),
                                           generator=torch.Generator().manual_seed(1))
    d_t, d_s = wrap_displacement(c.x_t - x0), wrap_displacement(x_s - x0)
    resid = d_s - (sig_s**2 / sig_t**2) * d_t
    post_var = sig_s**2 * (sig_t**2 - sig_s**2) / sig_t**2
    assert abs(resid.mean().item()) < 4 * math.sqrt(post_var / m)
    assert abs(resid.var().item() / post_var - 1) < 0.03
    assert abs(d_s.std().item() / sig_s - 1) < 0.02  # marginally x_s ~ q(x_s | x0)
    # eta = 0: deterministic, x_s - x0 = (sigma_s / sigma_t)(x_t - x0)
    x_det = WrappedVEAncestral(eta=0.0).step(proc, c.x_t, score, t, s, index=torch.arange(m))
    torch.testing.assert_close(wrap_displacement(x_det - x0), (sig_s / sig_t) * d_t, rtol=1e-9, atol=1e-12)
    # the final step (s = 0) returns the Tweedie denoised point
    x_end = WrappedVEAncestral().step(proc, c.x_t, score, t, torch.zeros_like(s), index=torch.arange(m))
    torch.testing.assert_close(x_end, x0, rtol=0, atol=1e-9)


def test_langevin_step_size_follows_snr_rule():
    proc = WrappedVE()
    index = torch.tensor([0, 0, 1])
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=F64)
    score = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64)
    t = s = torch.full((2,), 0.5, dtype=F64)
    per_sample = LangevinCorrector(snr=0.4, norm="sample").step_size(proc, z, score, t, s, index)
    torch.testing.assert_close(per_sample, 2 * 0.16 * torch.tensor([5.0 / 4.0, 9.0 / 1.0], dtype=F64))
    batch = LangevinCorrector(snr=0.4, norm="batch").step_size(proc, z, score, t, s, index)
    zn = (math.sqrt(5.0) + 3.0) / 2
    sn = (2.0 + 1.0) / 2
    torch.testing.assert_close(batch, torch.full((2,), 2 * 0.16 * (zn / sn) ** 2, dtype=F64))
    capped = LangevinCorrector(snr=0.4, norm="sample", max_step_size=1.0).step_size(proc, z, score, t, s, index)
    assert capped.max().item() == 1.0
    zero = LangevinCorrector(norm="sample").step_size(proc, z, torch.zeros_like(score), t, s, index)
    assert torch.all(zero == 0)


def test_langevin_on_vp_uses_alpha_and_stays_symmetric():
    proc = VPProcess()
    t, s = torch.full((3,), 0.5, dtype=F64), torch.full((3,), 0.49, dtype=F64)
    alpha = proc.langevin_alpha(t, s)
    torch.testing.assert_close(alpha, (proc.mean_coeff(t) / proc.mean_coeff(s)) ** 2)
    assert bool((alpha < 1).all())
    x = torch.randn(3, 3, 3, dtype=F64)
    x = x + x.transpose(-1, -2)
    out = LangevinCorrector(snr=0.2).step(proc, x, -x, t, s, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, out.transpose(-1, -2)) and not torch.equal(out, x)


def test_ode_drifts_match_the_probability_flow():
    # VE: dx/dt = -1/2 d(sigma^2)/dt score; VP: dx/dt = -beta/2 (x - mu) - beta/2 L^2 score.
    ve = WrappedVE(sigma_min=0.01, sigma_max=5.0)
    t = torch.tensor([0.3, 0.7], dtype=F64)
    scale = torch.tensor([0.5, 1.0], dtype=F64)
    score = torch.randn(2, 3, dtype=F64)
    tt = t.clone().requires_grad_(True)
    (dvar,) = torch.autograd.grad((ve.sigma(tt, scale) ** 2).sum(), tt)
    torch.testing.assert_close(ve.ode_drift(torch.zeros(2, 3, dtype=F64), score, t, std_scale=scale),
                               -0.5 * dvar[:, None] * score)
    vp = VPProcess()
    x = torch.randn(2, 3, 3, dtype=F64)
    mu = torch.randn(2, 3, 3, dtype=F64)
    ls = torch.tensor([0.5, 2.0], dtype=F64)
    s3 = torch.randn(2, 3, 3, dtype=F64)
    beta = vp.beta(t)[:, None, None]
    torch.testing.assert_close(vp.ode_drift(x, s3, t, limit_mean=mu, limit_std=ls),
                               -0.5 * beta * (x - mu) - 0.5 * beta * ls[:, None, None] ** 2 * s3)
