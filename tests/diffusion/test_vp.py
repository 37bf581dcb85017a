"""VP diffusion of a symmetric matrix field: schedule, marginals, symmetric noise, steps (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from gencrystal.diffusion import VPAncestral, VPProcess, symmetric_noise, vp_mean_coeff

F64 = torch.float64


def test_mean_coeff_is_exp_of_half_integrated_beta():
    proc = VPProcess(beta_min=0.1, beta_max=20.0)
    for t in (0.05, 0.3, 0.77, 1.0):
        s = torch.linspace(0.0, t, 20001, dtype=F64)
        integral = torch.trapezoid(proc.beta(s), s)
        assert math.isclose(proc.mean_coeff(torch.tensor(t, dtype=F64)).item(), math.exp(-0.5 * integral.item()),
                            rel_tol=1e-8)
    assert vp_mean_coeff(torch.tensor(0.0), 0.1, 20.0).item() == 1.0


@pytest.mark.parametrize("n", [1, 8, 20])
def test_marginal_mean_and_std(n):
    # Limit as the model supplies it: mu(n) = (n c)^(1/3) I Å, std sqrt(v) n^(1/3) Å.
    c, v = 17.33, 0.25
    mu, lstd = (n * c) ** (1 / 3), math.sqrt(v) * n ** (1 / 3)
    proc = VPProcess(beta_min=0.1, beta_max=20.0)
    m = 40000
    x0 = torch.tensor([[4.0, 0.3, 0.1], [0.3, 5.0, -0.2], [0.1, -0.2, 6.0]], dtype=F64).expand(m, 3, 3)
    limit_mean = (mu * torch.eye(3, dtype=F64)).expand(m, 3, 3)
    limit_std = torch.full((m,), lstd, dtype=F64)
    for t in (0.1, 0.5, 1.0):
        tt = torch.full((m,), t, dtype=F64)
        a = math.exp(-t * t * 19.9 / 4 - t * 0.1 / 2)
        mean, std = proc.marginal(x0[:1], tt[:1], limit_mean=limit_mean[:1], limit_std=limit_std[:1])
        torch.testing.assert_close(mean[0], a * x0[0] + (1 - a) * mu * torch.eye(3, dtype=F64))
        assert math.isclose(std.item(), math.sqrt(1 - a * a) * lstd, rel_tol=1e-12)
        c_ = proc.corrupt(x0, tt, limit_mean=limit_mean, limit_std=limit_std, generator=torch.Generator().manual_seed(n))
        assert torch.allclose(c_.x_t, c_.x_t.transpose(-1, -2))
        se = std.item() / math.sqrt(m)
        assert (c_.x_t.mean(0) - mean[0]).abs().max().item() < 5 * se
        assert (c_.x_t.std(0) / std.item() - 1).abs().max().item() < 0.03


def test_symmetric_noise_is_symmetric_with_unit_variance():
    z = symmetric_noise((100000, 3, 3), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.equal(z, z.transpose(-1, -2))
    var = z.var(0)
    assert (var - 1).abs().max().item() < 0.02  # diagonal and off-diagonal alike
    flat = z.reshape(-1, 9)[:, [0, 1, 2, 4, 5, 8]]  # the 6 free entries are uncorrelated
    corr = torch.corrcoef(flat.T)
    assert (corr - torch.eye(6, dtype=F64)).abs().max().item() < 0.02
    with pytest.raises(ValueError, match="square"):
        symmetric_noise((4, 3, 2))


def test_prior_and_t1_marginal_agree():
    proc = VPProcess()
    m = 20000
    limit_mean = (4.0 * torch.eye(3, dtype=F64)).expand(m, 3, 3)
    limit_std = torch.full((m,), 0.7, dtype=F64)
    prior = proc.prior_sample(torch.zeros(m, 3, 3, dtype=F64), limit_mean=limit_mean, limit_std=limit_std,
                              generator=torch.Generator().manual_seed(1))
    assert torch.equal(prior, prior.transpose(-1, -2))
    assert (prior.mean(0) - limit_mean[0]).abs().max().item() < 0.03
    assert (prior.std(0) / 0.7 - 1).abs().max().item() < 0.03


def test_target_and_score_conversion():
    proc = VPProcess(target="score_times_std")
    b = 6
    x0 = torch.randn(b, 3, 3, dtype=F64)
    t = torch.linspace(0.1, 1.0, b, dtype=F64)
    lm = torch.randn(b, 3, 3, dtype=F64)
    ls = torch.rand(b, dtype=F64) + 0.5
    c = proc.corrupt(x0, t, limit_mean=lm, limit_std=ls, generator=torch.Generator().manual_seed(2))
    mean, std = proc.marginal(x0, t, limit_mean=lm, limit_std=ls)
    exact = -(c.x_t - mean) / std[:, None, None] ** 2
    torch.testing.assert_close(proc.score_from_prediction(c.target, t, limit_std=ls), exact)
    eps_proc = VPProcess(target="eps")
    c2 = eps_proc.corrupt(x0, t, limit_mean=lm, limit_std=ls, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(eps_proc.score_from_prediction(c2.target, t, limit_std=ls), exact)
    assert torch.all(proc.loss(c.target, c) == 0) and torch.all(proc.loss(-c.target, c) > 0)


def test_ancestral_step_samples_the_exact_posterior():
    # With the exact score of a point mass x0, eta = 1 draws q(x_s | x_t, x0) (DDPM posterior).
    proc = VPProcess(symmetric=False)
    m = 40000
    x0 = torch.full((m, 1, 1), 2.0, dtype=F64)
    lm, ls = torch.zeros(m, 1, 1, dtype=F64), torch.ones(m, dtype=F64)
    t, s = torch.full((m,), 0.4, dtype=F64), torch.full((m,), 0.3, dtype=F64)
    c = proc.corrupt(x0, t, limit_mean=lm, limit_std=ls, generator=torch.Generator().manual_seed(3))
    mean_t, std_t = proc.marginal(x0, t, limit_mean=lm, limit_std=ls)
    score = -(c.x_t - mean_t) / std_t[:, None, None] ** 2
    x_s = VPAncestral(eta=1.0).step(proc, c.x_t, score, t, s, limit_mean=lm, limit_std=ls,
                                    generator=torch.Generator().manual_seed(4))
    at, as_ = proc.mean_coeff(t[0]).item(), proc.mean_coeff(s[0]).item()
    ab_t, ab_s = at**2, as_**2
    post_var = (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
    # unconditionally on x_t, x_s ~ q(x_s | x0): mean a_s x0, variance 1 - a_s^2
    assert abs(x_s.mean().item() - as_ * 2.0) < 0.02
    assert abs(x_s.var().item() / (1 - ab_s) - 1) < 0.03
    # conditional spread around the posterior mean
    coef0 = as_ * (1 - ab_t / ab_s) / (1 - ab_t)
    coeft = (at / as_) * (1 - ab_s) / (1 - ab_t)
    resid = x_s - (coef0 * 2.0 + coeft * c.x_t)
    assert abs(resid.var().item() / post_var - 1) < 0.03
    # eta = 0 is deterministic and lands on the posterior mean's DDIM counterpart (no noise)
    x_det = VPAncestral(eta=0.0).step(proc, c.x_t, score, t, s, limit_mean=lm, limit_std=ls)
    x_det2 = VPAncestral(eta=0.0).step(proc, c.x_t, score, t, s, limit_mean=lm, limit_std=ls)
    assert torch.equal(x_det, x_det2)


def test_final_step_to_zero_returns_denoised_mean():
    proc = VPProcess()
    x0 = torch.eye(3, dtype=F64).expand(4, 3, 3) * 5.0
    lm, ls = torch.zeros(4, 3, 3, dtype=F64), torch.ones(4, dtype=F64)
    t, s = torch.full((4,), 0.01, dtype=F64), torch.zeros(4, dtype=F64)
    c = proc.corrupt(x0, t, limit_mean=lm, limit_std=ls, generator=torch.Generator().manual_seed(5))
    mean_t, std_t = proc.marginal(x0, t, limit_mean=lm, limit_std=ls)
    score = -(c.x_t - mean_t) / std_t[:, None, None] ** 2
    out = VPAncestral().step(proc, c.x_t, score, t, s, limit_mean=lm, limit_std=ls)
    torch.testing.assert_close(out, x0)
