"""Wrapped-normal variance-exploding diffusion on the torus [0, 1)^d (fractional coordinates).

The wrapped normal of width ``sigma`` around ``mean`` is treated per dimension and its
density is the truncated image sum ``p(x) = sum_{k=-K..K} N(x - mean + k; 0, sigma^2)``
with ``K = num_images``, evaluated with logsumexp (stable for small ``sigma``). The
displacement ``x - mean`` is first wrapped into [-1/2, 1/2] so that the ``2K + 1``
nearest images are the ones kept. Fractional coordinates are dimensionless (units of
the lattice vectors), so is ``sigma``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gencrystal.diffusion.base import Corrupted, check_times, rand_like, randn_like
from gencrystal.diffusion.schedules import geometric_sigma
from gencrystal.diffusion.segments import expand_like, remove_segment_mean, rows_of

WEIGHTINGS = ("score_times_std", "sigma_norm")
PRIORS = ("uniform", "wrapped_normal")


def wrap01(x: Tensor) -> Tensor:
    """Map ``x`` into [0, 1) (``x mod 1``, guarding the float round-up to exactly 1)."""
    r = x - torch.floor(x)
    return torch.where(r >= 1.0, r - 1.0, r)


def wrap_displacement(d: Tensor) -> Tensor:
    """Shortest signed periodic displacement: ``d - round(d)`` in [-1/2, 1/2] (gradient 1)."""
    return d - torch.round(d)


def _image_exponents(x: Tensor, mean: Tensor | float, sigma: Tensor | float, num_images: int) -> tuple[Tensor, Tensor, Tensor]:
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    d = wrap_displacement(x - mean)
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    k = torch.arange(-num_images, num_images + 1, dtype=x.dtype, device=x.device)
    dk = d.unsqueeze(-1) + k  # [..., 2K+1]
    var = (sigma * sigma).unsqueeze(-1) if sigma.dim() else sigma * sigma
    return dk, -0.5 * dk * dk / var, sigma


def wrapped_normal_log_prob(x: Tensor, mean: Tensor | float, sigma: Tensor | float, num_images: int = 10) -> Tensor:
    """Per-coordinate log density of the wrapped normal (same shape as ``x``).

    ``sigma`` broadcasts against ``x``. Sum over the last dimension for the density of a
    d-dimensional point with isotropic noise.
    """
    _, expo, sigma = _image_exponents(x, mean, sigma, num_images)
    return torch.logsumexp(expo, dim=-1) - torch.log(sigma) - 0.5 * math.log(2.0 * math.pi)


def wrapped_normal_score(x: Tensor, mean: Tensor | float, sigma: Tensor | float, num_images: int = 10) -> Tensor:
    """Per-coordinate score ``d/dx log p(x)`` of the wrapped normal (same shape as ``x``)."""
    dk, expo, sigma = _image_exponents(x, mean, sigma, num_images)
    w = torch.softmax(expo, dim=-1)
    var = sigma * sigma
    return -(w * dk).sum(-1) / var


def images_needed(sigma: float, tol_sigmas: float = 6.0, minimum: int = 10) -> int:
    """Image count so that every dropped image lies more than ``tol_sigmas`` sigma away."""
    return max(minimum, int(math.ceil(tol_sigmas * sigma)))


def score_norm_ratio(sigma: Tensor, num_images: int, grid_size: int = 512, chunk: int = 32) -> Tensor:
    """``r(sigma) = sigma^2 E_{x~p_sigma}[(d/dx log p_sigma)^2]`` per coordinate, on a grid.

    ``r -> 1`` for small sigma (a Gaussian) and ``-> 0`` as the wrapped normal becomes
    uniform. The expectation is the periodic trapezoid rule on ``grid_size`` points,
    which converges exponentially for this smooth periodic integrand as long as the
    grid spacing is well below sigma (``sigma >= 0.02`` with the default grid); no Monte
    Carlo. Computed in float64, ``chunk`` sigmas at a time to bound memory.
    """
    sigma = sigma.to(torch.float64).reshape(-1)
    x = torch.arange(grid_size, dtype=torch.float64) / grid_size - 0.5
    out = []
    for part in sigma.split(chunk):
        sig = part.reshape(-1, 1)
        logp = wrapped_normal_log_prob(x, 0.0, sig, num_images)
        s = wrapped_normal_score(x, 0.0, sig, num_images)
        out.append(part * part * (torch.exp(logp) * s * s).mean(-1))  # integral over one period
    return torch.cat(out)


class WrappedVE(nn.Module):
    """Wrapped VE diffusion of points on the torus [0, 1)^d.

    ``x_t = (x_0 + sigma_n(t) eps) mod 1`` with ``sigma_n(t) = std_scale * sigma(t)``,
    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``; ``std_scale`` [B] is supplied by
    the caller (``n**(-1/3)`` in MatterGen, 1 in DiffCSP).

    Training target (``weighting``):
      * ``"score_times_std"`` (MatterGen): ``target = sigma_n * score``, i.e. the
        sigma^2-weighted denoising score matching loss.
      * ``"sigma_norm"`` (DiffCSP): ``target = score / sqrt(E[score^2])``, the per-level
        normalisation; ``E[score^2]`` is tabulated once on a log-sigma grid (a buffer)
        by quadrature and interpolated. Meant for ``sigma_max <= 1`` (beyond that the
        wrapped normal is uniform to machine precision and the norm underflows).
    ``score`` is the per-coordinate score of ``p(x_t | x_0)`` from the truncated image
    sum with ``num_images`` images per side (``None``: enough for ``sigma_max`` with
    ``std_scale <= 1``, at least 10).

    ``remove_mean=True`` removes each sample's mean from target and prediction in the
    loss (the translation-invariant part); with a denoiser that sees only fractional
    differences the loss is translation invariant without it.

    Prior: ``"uniform"`` on the torus, or ``"wrapped_normal"`` of width
    ``sigma_max * std_scale`` around 0.
    """

    table_log_sigma: Tensor  # buffers (register_buffer in __init__): log sigma grid and log r(sigma)
    table_log_ratio: Tensor

    def __init__(
        self,
        sigma_min: float = 0.01,
        sigma_max: float = 5.0,
        num_images: int | None = None,
        weighting: str = "score_times_std",
        prior: str = "uniform",
        remove_mean: bool = False,
        table_size: int = 1024,
    ) -> None:
        super().__init__()
        if not (0.0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r} (expected one of {WEIGHTINGS})")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r} (expected one of {PRIORS})")
        if weighting == "sigma_norm" and sigma_max > 1.0:
            raise ValueError(
                f"weighting='sigma_norm' needs sigma_max <= 1 (got {sigma_max}): "
                "use weighting='score_times_std' for large sigma_max"
            )
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.num_images = images_needed(sigma_max) if num_images is None else int(num_images)
        if self.num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        self.weighting = weighting
        self.prior = prior
        self.remove_mean = bool(remove_mean)
        # log r(sigma) on a log-sigma grid; r = 1 below the grid (Gaussian limit).
        lo, hi = math.log(0.02), math.log(2.0 * sigma_max)
        log_sigma = torch.linspace(lo, hi, table_size, dtype=torch.float64)
        if weighting == "sigma_norm":
            ratio = score_norm_ratio(log_sigma.exp(), images_needed(2.0 * sigma_max)).clamp(min=1e-300)
        else:
            ratio = torch.ones_like(log_sigma)
        self.register_buffer("table_log_sigma", log_sigma, persistent=False)
        self.register_buffer("table_log_ratio", ratio.log(), persistent=False)

    # ------------------------------------------------------------------ schedule
    def sigma(self, t: Tensor, std_scale: Tensor | None = None) -> Tensor:
        """Per-sample noise level ``std_scale * sigma(t)`` (dimensionless), shape of ``t``."""
        s = geometric_sigma(t, self.sigma_min, self.sigma_max)
        return s if std_scale is None else s * std_scale.to(s.dtype)

    def _row_sigma(self, t: Tensor, index: Tensor | None, std_scale: Tensor | None) -> Tensor:
        return rows_of(self.sigma(t, std_scale), index)

    def norm_ratio(self, sigma: Tensor) -> Tensor:
        """``r(sigma) = sigma^2 E[score^2]`` from the cached table (1 for ``score_times_std``)."""
        if self.weighting != "sigma_norm":
            return torch.ones_like(sigma)
        ls = torch.log(sigma).to(self.table_log_sigma.dtype).clamp(self.table_log_sigma[0], self.table_log_sigma[-1])
        grid = self.table_log_sigma
        i = torch.searchsorted(grid, ls.contiguous()).clamp(1, grid.numel() - 1)
        x0, x1 = grid[i - 1], grid[i]
        y0, y1 = self.table_log_ratio[i - 1], self.table_log_ratio[i]
        w = (ls - x0) / (x1 - x0)
        return torch.exp(y0 + w * (y1 - y0)).to(sigma.dtype)

    def target_scale(self, sigma: Tensor) -> Tensor:
        """Factor ``c`` with ``target = c * score``: ``sigma`` or ``sigma / sqrt(r(sigma))``."""
        return sigma / torch.sqrt(self.norm_ratio(sigma))

    # ------------------------------------------------------------------ training
    def score(self, x_t: Tensor, x0: Tensor, sigma: Tensor) -> Tensor:
        """Score of ``p(x_t | x0)`` w.r.t. ``x_t`` per coordinate; ``sigma`` per row [N]."""
        return wrapped_normal_score(x_t, x0, expand_like(sigma, x_t), self.num_images)

    def corrupt(
        self,
        x0: Tensor,
        t: Tensor,
        *,
        index: Tensor | None = None,
        std_scale: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Corrupted:
        """Noise ``x0`` [N, d] (in [0, 1)) to time ``t`` [B]; target as set by ``weighting``."""
        check_times(t)
        sig = self._row_sigma(t, index, std_scale).to(x0.dtype)
        x_t = wrap01(x0 + expand_like(sig, x0) * randn_like(x0, generator))
        target = self.score(x_t, x0, sig) * expand_like(self.target_scale(sig), x0)
        if self.remove_mean:
            target = remove_segment_mean(target, index, t.shape[0])
        return Corrupted(x_t=x_t, target=target, t=t, index=index, num_segments=t.shape[0], aux={"sigma": sig})

    def loss(self, pred: Tensor, corrupted: Corrupted) -> Tensor:
        """Per-row squared error averaged over the coordinate dimensions -> Tensor[N]."""
        if pred.shape != corrupted.target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(corrupted.target.shape)}")
        if self.remove_mean:
            pred = remove_segment_mean(pred, corrupted.index, corrupted.num_segments)
        err = (pred - corrupted.target).pow(2)
        return err.reshape(err.shape[0], -1).mean(-1)

    def score_from_prediction(
        self, pred: Tensor, t: Tensor, *, index: Tensor | None = None, std_scale: Tensor | None = None
    ) -> Tensor:
        """Undo the target scaling: network output -> score of ``p_t`` (per coordinate)."""
        sig = self._row_sigma(t, index, std_scale).to(pred.dtype)
        return pred / expand_like(self.target_scale(sig), pred)

    # ------------------------------------------------------------------ sampling
    def prior_sample(
        self,
        like: Tensor,
        *,
        index: Tensor | None = None,
        std_scale: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``x_1`` with the shape/dtype/device of ``like`` [N, d] (values in [0, 1))."""
        if self.prior == "uniform":
            return rand_like(like, generator)
        sig = torch.full((like.shape[0],), self.sigma_max, dtype=like.dtype, device=like.device)
        if std_scale is not None:
            sig = sig * rows_of(std_scale.to(like.dtype), index)
        return wrap01(expand_like(sig, like) * randn_like(like, generator))

    def ode_drift(
        self, x: Tensor, score: Tensor, t: Tensor, *, index: Tensor | None = None, std_scale: Tensor | None = None, **_: object
    ) -> Tensor:
        """Probability-flow ODE velocity ``dx/dt = -1/2 g^2 score = -sigma_n^2 ln(sigma_max/sigma_min) score``."""
        sig = expand_like(self._row_sigma(t, index, std_scale).to(x.dtype), x)
        return -sig * sig * math.log(self.sigma_max / self.sigma_min) * score

    def noise_like(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Langevin noise for this field (i.i.d. standard normal)."""
        return randn_like(x, generator)

    def project(self, x: Tensor) -> Tensor:
        """Map a state back onto the torus."""
        return wrap01(x)

    def langevin_alpha(self, t: Tensor, s: Tensor) -> Tensor:
        """Langevin step factor alpha (1 for a VE process), per sample."""
        return torch.ones_like(t)
