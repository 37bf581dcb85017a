"""Predictors: one reverse step ``t -> s`` (``s < t``, ``s = 0`` is the final, noise-free step).

Every predictor has ``step(process, x, out, t, s, *, generator=None, **context)`` where
``out`` is the score of ``p_t`` (continuous fields) or the x0 logits (D3PM), ``t`` and
``s`` are per-sample times [B] and ``context`` holds the field's ``index`` and
process-specific tensors (``std_scale``, ``limit_mean``/``limit_std``, ``allowed``).

``eta`` interpolates between the deterministic DDIM-style update (``eta = 0``) and the
ancestral update that samples the exact Gaussian posterior ``q(x_s | x_t, x0_hat)``
(``eta = 1``, DiffCSP/MatterGen's predictor).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gencrystal.diffusion.base import randn_like
from gencrystal.diffusion.d3pm import MaskedD3PM
from gencrystal.diffusion.segments import expand_like, rows_of
from gencrystal.diffusion.vp import VPProcess
from gencrystal.diffusion.wrapped_normal import WrappedVE, wrap01


def _check_eta(eta: float) -> float:
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return float(eta)


class WrappedVEAncestral:
    """VE ancestral / DDIM step on the torus, then wrap into [0, 1).

    With ``x0_hat = x + sigma_t^2 score`` and ``eps_hat = -sigma_t score``:
    ``x_s = x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z``,
    ``c = eta sigma_s sqrt(sigma_t^2 - sigma_s^2) / sigma_t``. For ``eta = 1`` this is
    ``x + (sigma_t^2 - sigma_s^2) score + c z`` (DiffCSP's predictor). ``sigma_0 = 0``.
    """

    def __init__(self, eta: float = 1.0) -> None:
        self.eta = _check_eta(eta)

    def step(
        self,
        process: WrappedVE,
        x: Tensor,
        score: Tensor,
        t: Tensor,
        s: Tensor,
        *,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
        std_scale: Tensor | None = None,
        **_: Any,
    ) -> Tensor:
        sig_t = rows_of(process.sigma(t, std_scale), index).to(x.dtype)
        sig_s = rows_of(torch.where(s > 0, process.sigma(s, std_scale), torch.zeros_like(s)), index).to(x.dtype)
        sig_t, sig_s = expand_like(sig_t, x), expand_like(sig_s, x)
        c = self.eta * sig_s * torch.sqrt((sig_t**2 - sig_s**2).clamp(min=0.0)) / sig_t
        x0_hat = x + sig_t**2 * score
        eps_hat = -sig_t * score
        x_s = x0_hat + torch.sqrt((sig_s**2 - c**2).clamp(min=0.0)) * eps_hat
        if self.eta > 0:
            x_s = x_s + c * randn_like(x, generator)
        return wrap01(x_s)


class VPAncestral:
    """VP ancestral / DDIM step towards the per-sample limit, with the field's noise.

    In standardised units ``y = (x - limit_mean)/limit_std`` the process is
    ``y_t = a_t y_0 + sqrt(1 - a_t^2) eps``; with ``eps_hat = -sqrt(1 - a_t^2) limit_std
    score`` and ``y0_hat = (y_t - sqrt(1 - a_t^2) eps_hat)/a_t`` the step is
    ``y_s = a_s y0_hat + sqrt(1 - a_s^2 - c^2) eps_hat + c z`` with
    ``c = eta sqrt((1 - a_s^2)/(1 - a_t^2)) sqrt(1 - a_t^2/a_s^2)`` and ``z`` symmetric
    noise when the process is symmetric (the result is re-symmetrised).
    """

    def __init__(self, eta: float = 1.0) -> None:
        self.eta = _check_eta(eta)

    def step(
        self,
        process: VPProcess,
        x: Tensor,
        score: Tensor,
        t: Tensor,
        s: Tensor,
        *,
        limit_mean: Tensor,
        limit_std: Tensor,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
        **_: Any,
    ) -> Tensor:
        a_t = expand_like(process.mean_coeff(t).to(x.dtype).clamp(min=1e-12), x)
        a_s = expand_like(process.mean_coeff(s).to(x.dtype), x)
        std_lim = expand_like(limit_std.to(x.dtype), x)
        mu = limit_mean.to(x.dtype)
        sq_t = torch.sqrt((1.0 - a_t**2).clamp(min=0.0))
        eps_hat = -sq_t * std_lim * score
        y_t = (x - mu) / std_lim
        y0_hat = (y_t - sq_t * eps_hat) / a_t
        c = self.eta * torch.sqrt(
            ((1.0 - a_s**2) / (1.0 - a_t**2).clamp(min=1e-30)).clamp(min=0.0) * (1.0 - (a_t / a_s) ** 2).clamp(min=0.0)
        )
        y_s = a_s * y0_hat + torch.sqrt((1.0 - a_s**2 - c**2).clamp(min=0.0)) * eps_hat
        if self.eta > 0:
            y_s = y_s + c * process.noise_like(x, generator)
        return process.project(mu + std_lim * y_s)


class D3PMAncestral:
    """Masked-D3PM ancestral jump ``k_t -> k_s``: sample ``p_theta(x_s | x_t)`` from x0 logits.

    Unmasked rows never change; masked rows unmask to a class drawn from the predicted
    x0 distribution (restricted by ``allowed``) with probability
    ``(alpha_s - alpha_t)/(1 - alpha_t)``; at ``s = 0`` every row is unmasked.
    """

    def step(
        self,
        process: MaskedD3PM,
        x: Tensor,
        logits: Tensor,
        t: Tensor,
        s: Tensor,
        *,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
        allowed: Tensor | None = None,
        **_: Any,
    ) -> Tensor:
        k_t = rows_of(process.discrete_time(t), index)
        k_s = rows_of(process.discrete_time(s), index)
        logp = process.model_log_probs(x, logits, k_t, k_s, allowed=allowed, index=index)
        if x.numel() == 0:
            return x
        probs = logp.exp()
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(x.shape)


def default_predictor(process: Any) -> WrappedVEAncestral | VPAncestral | D3PMAncestral:
    """The ancestral predictor matching a process type (``eta = 1``)."""
    if isinstance(process, WrappedVE):
        return WrappedVEAncestral()
    if isinstance(process, VPProcess):
        return VPAncestral()
    if isinstance(process, MaskedD3PM):
        return D3PMAncestral()
    raise TypeError(f"no default predictor for process {type(process).__name__}")
