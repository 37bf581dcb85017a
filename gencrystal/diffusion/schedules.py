"""Noise schedules and time grids (continuous time t in (0, 1], one value per sample)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def geometric_sigma(t: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """VE noise level ``sigma(t) = sigma_min (sigma_max / sigma_min)^t`` (units of x)."""
    return sigma_min * (sigma_max / sigma_min) ** t


def linear_beta(t: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """VP rate ``beta(t) = beta_min + t (beta_max - beta_min)`` (per unit time)."""
    return beta_min + t * (beta_max - beta_min)


def vp_mean_coeff(t: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """VP mean coefficient ``a(t) = exp(-int_0^t beta / 2) = exp(-t^2 (b_max-b_min)/4 - t b_min/2)``."""
    return torch.exp(-0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min)


def sample_time(
    batch_size: int,
    *,
    t_min: float = 1e-5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Training times ``t ~ U[t_min, 1]``, one per sample -> Tensor[batch_size]."""
    if not 0.0 <= t_min < 1.0:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}")
    if generator is not None:
        device = generator.device
    u = torch.rand(batch_size, generator=generator, device=device, dtype=dtype)
    return t_min + (1.0 - t_min) * u


def time_grid(
    num_steps: int,
    *,
    spacing: str = "linear",
    power: float = 2.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Decreasing sampling grid ``t_0 = 1 > t_1 > ... > t_N = 0`` (``num_steps + 1`` points).

    Step ``i`` evaluates the network at ``t_i`` (so never at 0) and moves to ``t_{i+1}``;
    the last step lands on ``t = 0`` (the noise-free data). ``spacing="linear"`` is the
    uniform grid of DiffCSP/MatterGen; ``"power"`` uses ``t_i = (1 - i/N)^power``, which
    puts more steps at low noise (useful for re-spaced fast samplers).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    u = torch.linspace(1.0, 0.0, num_steps + 1, dtype=dtype, device=device)
    if spacing == "linear":
        return u
    if spacing == "power":
        if not power > 0 or math.isnan(power):
            raise ValueError(f"power must be > 0, got {power}")
        return u.pow(power)
    raise ValueError(f"unknown time spacing {spacing!r} (expected 'linear' or 'power')")
