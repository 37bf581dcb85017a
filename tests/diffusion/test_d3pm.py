"""Absorbing-state D3PM: closed-form marginals, posterior, loss, sampling restrictions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gencrystal.diffusion import D3PMAncestral, MaskedD3PM

F64 = torch.float64


def test_discrete_time_mapping():
    d = MaskedD3PM(num_classes=5, num_steps=1000)
    t = torch.tensor([1e-6, 0.001, 0.3, 0.3 + 1e-9, 0.5, 1.0], dtype=F64)
    assert d.discrete_time(t).tolist() == [1, 1, 300, 300, 500, 1000]
    assert d.discrete_time(torch.zeros(1)).item() == 0


def test_marginal_equals_repeated_one_step_transitions():
    K, T = 4, 12
    d = MaskedD3PM(num_classes=K, num_steps=T)
    x0 = torch.arange(K)
    dist = F.one_hot(x0, K + 1).to(F64)  # q(x_0 | x0)
    states = torch.arange(K + 1)
    for k in range(1, T + 1):
        trans = d.step_probs(states, torch.full((K + 1,), k))  # row j: q(x_k | x_{k-1} = j)
        dist = dist @ trans
        torch.testing.assert_close(dist, d.marginal_probs(x0, torch.full((K,), k)), rtol=1e-12, atol=1e-14)
    assert torch.allclose(dist[:, K], torch.ones(K, dtype=F64))  # everything masked at k = T


def test_masking_probability_is_linear_in_t():
    d = MaskedD3PM(num_classes=3, num_steps=1000)
    for k in (0, 1, 250, 999, 1000):
        p = d.marginal_probs(torch.tensor([2]), torch.tensor([k]))[0]
        assert math.isclose(p[3].item(), k / 1000, abs_tol=1e-15)
        assert math.isclose(p[2].item(), 1 - k / 1000, abs_tol=1e-15)


@pytest.mark.parametrize("t", [0.05, 0.37, 0.8])
def test_empirical_corruption_frequencies_match_closed_form(t):
    d = MaskedD3PM(num_classes=6, num_steps=1000)
    n = 60000
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 6, (n,), generator=g)
    index = torch.arange(n) // 10
    tt = torch.full((n // 10,), t, dtype=F64)
    c = d.corrupt(x0, tt, index=index, generator=g)
    k = d.discrete_time(tt[:1]).item()
    masked = c.x_t == d.mask_index
    assert abs(masked.double().mean().item() - k / 1000) < 4 * math.sqrt(0.25 / n)
    assert torch.equal(c.x_t[~masked], x0[~masked])  # unmasked tokens are untouched
    # class frequencies among unmasked tokens follow x0's
    freq = torch.bincount(c.x_t[~masked], minlength=6).double() / (~masked).sum()
    ref = torch.bincount(x0[~masked], minlength=6).double() / (~masked).sum()
    torch.testing.assert_close(freq, ref)


def test_everything_masked_at_t_equals_one():
    d = MaskedD3PM(num_classes=100)
    x0 = torch.randint(0, 100, (5000,))
    c = d.corrupt(x0, torch.ones(50), index=torch.arange(5000) // 100, generator=torch.Generator().manual_seed(1))
    assert bool((c.x_t == 100).all())
    assert d.prior_sample(x0).eq(100).all()


def test_posterior_is_bayes_rule():
    K, T = 3, 10
    d = MaskedD3PM(num_classes=K, num_steps=T)
    for k in range(1, T + 1):
        for x0 in range(K):
            for xt in range(K + 1):
                kt = torch.tensor([k])
                lq = d.posterior_log_probs(torch.tensor([xt]), torch.log(F.one_hot(torch.tensor([x0]), K).to(F64)),
                                           kt, kt - 1)[0]
                # Bayes: q(x_{k-1} | x_k, x0) ∝ q(x_k | x_{k-1}) q(x_{k-1} | x0)
                prior = d.marginal_probs(torch.tensor([x0]), kt - 1)[0]
                lik = d.step_probs(torch.arange(K + 1), torch.full((K + 1,), k))[:, xt]
                joint = prior * lik
                if joint.sum() == 0:  # x_t impossible given x0
                    continue
                torch.testing.assert_close(lq.exp(), joint / joint.sum(), rtol=1e-12, atol=1e-14)


def test_loss_is_kl_plus_lambda_ce_in_closed_form():
    # For the absorbing process: KL = CE(x0)/k on masked tokens, 0 on unmasked ones.
    K, T, lam = 5, 100, 0.01
    d = MaskedD3PM(num_classes=K, num_steps=T, hybrid_lambda=lam)
    g = torch.Generator().manual_seed(2)
    n = 400
    x0 = torch.randint(0, K, (n,), generator=g)
    t = torch.rand(n, generator=g, dtype=F64) * 0.99 + 0.01
    c = d.corrupt(x0, t, index=torch.arange(n), generator=g)
    logits = torch.randn(n, K + 1, generator=g, dtype=F64)  # the mask column must be ignored
    loss = d.loss(logits, c)
    ce = F.cross_entropy(logits[:, :K], x0, reduction="none")
    k = c.aux["k"].to(F64)
    masked = (c.x_t == K).to(F64)
    torch.testing.assert_close(loss, masked * ce / k + lam * ce)
    # a perfect predictor has zero KL
    perfect = torch.full((n, K), -1e4, dtype=F64).scatter(-1, x0[:, None], 0.0)
    assert d.loss(perfect, c).abs().max().item() < 1e-6


def test_loss_gradient_is_finite():
    d = MaskedD3PM(num_classes=4, num_steps=50)
    x0 = torch.randint(0, 4, (64,))
    c = d.corrupt(x0, torch.rand(8) * 0.9 + 0.1, index=torch.arange(64) // 8)
    logits = torch.randn(64, 4, requires_grad=True)
    d.loss(logits, c).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_ancestral_jump_and_final_unmasking():
    K = 4
    d = MaskedD3PM(num_classes=K, num_steps=1000)
    n = 50000
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    x = torch.full((n,), K)
    logits = pi.log().expand(n, K)
    g = torch.Generator().manual_seed(3)
    t, s = torch.full((n,), 0.6, dtype=F64), torch.full((n,), 0.45, dtype=F64)
    x_s = D3PMAncestral().step(d, x, logits, t, s, generator=g)
    unmasked = x_s != K
    assert abs(unmasked.double().mean().item() - (0.15 / 0.6)) < 0.01  # (alpha_s - alpha_t)/(1 - alpha_t)
    freq = torch.bincount(x_s[unmasked], minlength=K).double() / unmasked.sum()
    assert (freq - pi).abs().max().item() < 0.015
    x_0 = D3PMAncestral().step(d, x_s, logits, s, torch.zeros(n, dtype=F64), generator=g)
    assert not bool((x_0 == K).any())
    assert torch.equal(x_0[unmasked], x_s[unmasked])  # unmasked tokens never change


def test_allowed_classes_restrict_sampling():
    K = 6
    d = MaskedD3PM(num_classes=K, num_steps=100)
    n = 3000
    index = torch.arange(n) // 30
    allowed = torch.zeros(100, K, dtype=torch.bool)
    allowed[:50, [1, 4]] = True  # first half of the samples: a binary system
    allowed[50:, [0]] = True
    x = torch.full((n,), K)
    logits = torch.randn(n, K, generator=torch.Generator().manual_seed(4))
    out = D3PMAncestral().step(d, x, logits, torch.full((100,), 0.5), torch.zeros(100), index=index,
                               allowed=allowed, generator=torch.Generator().manual_seed(5))
    first = index < 50
    assert set(out[first].tolist()) <= {1, 4} and set(out[~first].tolist()) == {0}
    with pytest.raises(ValueError, match="forbids every class"):
        d.x0_log_probs(logits, allowed=torch.zeros(K, dtype=torch.bool))


def test_bad_inputs():
    d = MaskedD3PM(num_classes=3)
    with pytest.raises(ValueError, match="out of range"):
        d.corrupt(torch.tensor([0, 3]), torch.tensor([0.5, 0.5]), index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="columns"):
        d.x0_log_probs(torch.zeros(2, 7))
