"""Variance-preserving diffusion of a (symmetric) matrix field, e.g. a lattice [B, 3, 3].

Marginal (MatterGen's lattice SDE with a caller-supplied limit):
``x_t = a(t) x_0 + (1 - a(t)) limit_mean + sqrt(1 - a(t)^2) limit_std eps`` with
``a(t) = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2)``, ``beta(t)`` linear.
``limit_mean`` [B, ...] and ``limit_std`` [B] are per sample and computed by the model
(e.g. ``(n c)^(1/3) I`` Å and ``sqrt(v) n^(1/3)`` Å, or a pressure-aware ``c(P)``).
With ``symmetric=True`` the noise of the trailing square matrix is symmetric with unit
variance per entry: ``e_ii`` on the diagonal and ``(e_ij + e_ji)/sqrt(2)`` off it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gencrystal.diffusion.base import Corrupted, check_times, randn_like
from gencrystal.diffusion.schedules import linear_beta, vp_mean_coeff
from gencrystal.diffusion.segments import expand_like

TARGETS = ("score_times_std", "eps")


def symmetrize(x: Tensor) -> Tensor:
    """``(X + X^T) / 2`` over the last two dimensions."""
    return 0.5 * (x + x.transpose(-1, -2))


def symmetric_noise(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Symmetric standard-normal matrices (last two dims square), unit variance per entry.

    Diagonal entries are ``e_ii``; each off-diagonal pair is ``(e_ij + e_ji)/sqrt(2)``,
    so every entry has variance 1 and ``X == X^T`` exactly.
    """
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"symmetric noise needs square trailing dims, got shape {tuple(shape)}")
    if generator is not None:
        device = generator.device
    e = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    n = shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=e.device)
    off = (e + e.transpose(-1, -2)) / math.sqrt(2.0)
    return torch.where(eye, e, off)


class VPProcess(nn.Module):
    """VP diffusion towards a per-sample Gaussian limit ``N(limit_mean, limit_std^2)``.

    ``target="score_times_std"`` (MatterGen): the network regresses ``std(t) * score =
    -eps``; ``target="eps"``: it regresses ``eps``. Both give the same loss up to sign.
    Units of ``x``, ``limit_mean`` and ``limit_std`` are the caller's (Å for a lattice).
    """

    def __init__(
        self, beta_min: float = 0.1, beta_max: float = 20.0, symmetric: bool = True, target: str = "score_times_std"
    ) -> None:
        super().__init__()
        if not (0.0 <= beta_min < beta_max) or not math.isfinite(beta_max):
            raise ValueError(f"need 0 <= beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r} (expected one of {TARGETS})")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.symmetric = bool(symmetric)
        self.target = target

    # ------------------------------------------------------------------ schedule
    def beta(self, t: Tensor) -> Tensor:
        """``beta(t)`` per unit time."""
        return linear_beta(t, self.beta_min, self.beta_max)

    def mean_coeff(self, t: Tensor) -> Tensor:
        """``a(t)``: the weight of ``x_0`` in the marginal mean."""
        return vp_mean_coeff(t, self.beta_min, self.beta_max)

    def marginal(self, x0: Tensor, t: Tensor, *, limit_mean: Tensor, limit_std: Tensor) -> tuple[Tensor, Tensor]:
        """Marginal mean [B, ...] and std [B] of ``x_t`` given ``x0`` (``t`` per sample)."""
        a = self.mean_coeff(t).to(x0.dtype)
        mean = expand_like(a, x0) * x0 + expand_like(1.0 - a, x0) * limit_mean.to(x0.dtype)
        std = torch.sqrt(1.0 - a * a) * limit_std.to(x0.dtype)
        return mean, std

    def std(self, t: Tensor, limit_std: Tensor) -> Tensor:
        """Marginal std ``sqrt(1 - a(t)^2) limit_std`` per sample."""
        a = self.mean_coeff(t)
        return torch.sqrt(1.0 - a * a) * limit_std.to(a.dtype)

    def noise_like(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Standard noise for this field: symmetric if ``symmetric``, else i.i.d."""
        if self.symmetric:
            return symmetric_noise(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return randn_like(x, generator)

    # ------------------------------------------------------------------ training
    def corrupt(
        self,
        x0: Tensor,
        t: Tensor,
        *,
        limit_mean: Tensor,
        limit_std: Tensor,
        index: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Corrupted:
        """Noise ``x0`` [B, ...] to times ``t`` [B]; ``target`` is ``-eps`` or ``eps``."""
        check_times(t)
        if index is not None:
            raise ValueError("VPProcess is a per-sample field: pass index=None")
        mean, std = self.marginal(x0, t, limit_mean=limit_mean, limit_std=limit_std)
        eps = self.noise_like(x0, generator)
        x_t = mean + expand_like(std, x0) * eps
        target = -eps if self.target == "score_times_std" else eps
        return Corrupted(x_t=x_t, target=target, t=t, index=None, num_segments=t.shape[0], aux={"std": std, "eps": eps})

    def loss(self, pred: Tensor, corrupted: Corrupted) -> Tensor:
        """Squared error averaged over the matrix entries -> Tensor[B]."""
        if pred.shape != corrupted.target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(corrupted.target.shape)}")
        err = (pred - corrupted.target).pow(2)
        return err.reshape(err.shape[0], -1).mean(-1)

    def score_from_prediction(
        self, pred: Tensor, t: Tensor, *, limit_std: Tensor, limit_mean: Tensor | None = None, index: Tensor | None = None
    ) -> Tensor:
        """Network output -> score of ``p_t`` (``score = -eps / std``)."""
        std = expand_like(self.std(t, limit_std).to(pred.dtype), pred)
        return pred / std if self.target == "score_times_std" else -pred / std

    # ------------------------------------------------------------------ sampling
    def ode_drift(
        self,
        x: Tensor,
        score: Tensor,
        t: Tensor,
        *,
        limit_mean: Tensor,
        limit_std: Tensor,
        index: Tensor | None = None,
        **_: object,
    ) -> Tensor:
        """Probability-flow ODE velocity ``dx/dt = -beta(t)/2 (x - limit_mean + limit_std^2 score)``."""
        beta = expand_like(self.beta(t).to(x.dtype), x)
        var = expand_like(limit_std.to(x.dtype) ** 2, x)
        return -0.5 * beta * (x - limit_mean.to(x.dtype) + var * score)

    def prior_sample(
        self,
        like: Tensor,
        *,
        limit_mean: Tensor,
        limit_std: Tensor,
        index: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw from the limit ``limit_mean + limit_std * noise`` (shape of ``like`` [B, ...])."""
        noise = self.noise_like(like, generator)
        return limit_mean.to(like.dtype).expand_as(like) + expand_like(limit_std.to(like.dtype), like) * noise

    def project(self, x: Tensor) -> Tensor:
        """Re-symmetrise (``symmetric=True``); identity otherwise."""
        return symmetrize(x) if self.symmetric else x

    def langevin_alpha(self, t: Tensor, s: Tensor) -> Tensor:
        """Langevin step factor ``alpha = a(t)^2 / a(s)^2`` (``1 - beta dt`` for small steps)."""
        at, as_ = self.mean_coeff(t), self.mean_coeff(s)
        return (at / as_).pow(2)
