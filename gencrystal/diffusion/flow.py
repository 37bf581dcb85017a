"""Flow-matching fields: torus coordinates, a symmetric-positive matrix, masked categories.

Same interface and time convention as the diffusion processes (``t = 1`` is the prior,
``t = 0`` the data), so that :class:`~gencrystal.diffusion.FieldSet`, the model's context
and classifier-free guidance are shared. Inside a flow field the *flow time* is
``tau = 1 - t`` (``tau = 0`` prior, ``tau = 1`` data) and the schedule ``kappa(tau)``
(:class:`FlowSchedule`) moves a prior draw ``z`` to a data point ``x1``:

* :class:`FlowTorus` — fractional coordinates on ``[0, 1)^d``: uniform prior, geodesic
  path ``x_tau = z + kappa(tau) w(x1 - z)`` (``w`` wraps to [-1/2, 1/2): the short way
  round), target velocity ``dx/dtau = kappa'(tau) w(x1 - z)`` (FlowMM's flat torus).
  The loss removes the per-sample mean of the velocity error: the network sees only
  fractional differences and cannot express a common drift, and a common translation of
  the crystal changes nothing.
* :class:`FlowMatrix` — a symmetric positive-definite matrix (the lattice's symmetric
  polar factor ``S``, Å). ``space="log"`` (default) flows the matrix logarithm
  ``X = log S`` in a straight line (CrystalFlow's log-polar representation): every point
  of the path is symmetric positive definite. The prior is the lattice prior of the VP
  field mapped to log space: ``log S ~ N(log(mu) I, (limit_std/mu)^2)`` entry-wise
  (symmetric noise), with ``mu I = limit_mean`` — to first order the same Gaussian
  ``N(mu I, limit_std^2)``, so the atom-count- and pressure-scaled ``mu(n, P)`` carries
  over. ``space="linear"`` flows ``S`` itself from exactly that Gaussian. The state the
  sampler and the network see is always ``S`` in the field's own units; the velocity is
  in the flow space (``dX/dtau``).
* :class:`MaskedFlow` — discrete flow matching with an absorbing (mask) source: each row
  is the mask state ``K`` at ``tau = 0`` and its data class with probability
  ``kappa(tau)``; the network predicts x1 logits and the loss is the cross-entropy on
  the masked rows. A step ``tau -> tau'`` unmasks a masked row with probability
  ``(kappa(tau') - kappa(tau)) / (1 - kappa(tau))`` into a class drawn from the
  predicted distribution.

Continuous flow fields offer ``velocity_from_prediction(pred, t, **ctx)`` (identity: the
network regresses the velocity) and ``move(x, v, dtau, **ctx)`` (the exponential map of
the field: ``x`` moved along velocity ``v`` for flow time ``dtau``), used by
:mod:`gencrystal.diffusion.flow_sampler`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gencrystal.diffusion.base import Corrupted, check_times, rand_like
from gencrystal.diffusion.d3pm import masked_x0_log_probs
from gencrystal.diffusion.segments import expand_like, remove_segment_mean, rows_of
from gencrystal.diffusion.vp import symmetric_noise, symmetrize
from gencrystal.diffusion.wrapped_normal import wrap01, wrap_displacement

SCHEDULES = ("cond_ot", "cosine")
MATRIX_SPACES = ("log", "linear")


class FlowSchedule(nn.Module):
    """Interpolation schedule ``kappa(tau)`` with ``kappa(0) = 0``, ``kappa(1) = 1``.

    ``"cond_ot"`` (default): ``kappa = tau`` — the conditional optimal-transport path,
    straight lines at constant speed. ``"cosine"``: ``kappa = 1 - cos(pi tau / 2)``, slow
    at the prior end and fast near the data.
    """

    def __init__(self, kind: str = "cond_ot") -> None:
        super().__init__()
        if kind not in SCHEDULES:
            raise ValueError(f"unknown flow schedule {kind!r} (expected one of {SCHEDULES})")
        self.kind = kind

    def kappa(self, tau: Tensor) -> Tensor:
        """``kappa(tau)`` (same shape as ``tau``)."""
        if self.kind == "cond_ot":
            return tau
        return 1.0 - torch.cos(0.5 * math.pi * tau)

    def dkappa(self, tau: Tensor) -> Tensor:
        """``d kappa / d tau``."""
        if self.kind == "cond_ot":
            return torch.ones_like(tau)
        return 0.5 * math.pi * torch.sin(0.5 * math.pi * tau)


def _schedule(schedule: str | FlowSchedule) -> FlowSchedule:
    return schedule if isinstance(schedule, FlowSchedule) else FlowSchedule(schedule)


class FlowTorus(nn.Module):
    """Flow matching on the flat torus ``[0, 1)^d`` from the uniform prior (see module docstring).

    Args:
        schedule: ``"cond_ot"`` or ``"cosine"`` (or a :class:`FlowSchedule`).
        remove_mean: subtract the per-sample mean of the velocity error in the loss
            (translation invariance; needs ``index``).
    """

    is_flow = True

    def __init__(self, schedule: str | FlowSchedule = "cond_ot", remove_mean: bool = True) -> None:
        super().__init__()
        self.schedule = _schedule(schedule)
        self.remove_mean = bool(remove_mean)

    def path(self, z: Tensor, x1: Tensor, tau_rows: Tensor) -> tuple[Tensor, Tensor]:
        """Point ``x_tau`` in [0, 1) and velocity ``dx/dtau`` of the geodesic from ``z`` to ``x1``."""
        d = wrap_displacement(x1 - z)
        k = expand_like(self.schedule.kappa(tau_rows), d)
        dk = expand_like(self.schedule.dkappa(tau_rows), d)
        return wrap01(z + k * d), dk * d

    def corrupt(self, x0: Tensor, t: Tensor, *, index: Tensor | None = None, generator: torch.Generator | None = None,
                **_: object) -> Corrupted:
        """Draw ``z ~ U[0,1)^d`` and place each row on its path at ``tau = 1 - t`` (``x0`` = data)."""
        check_times(t, allow_zero=True)
        z = rand_like(x0, generator)
        x_t, target = self.path(z, x0, rows_of(1.0 - t, index).to(x0.dtype))
        return Corrupted(x_t=x_t, target=target, t=t, index=index, num_segments=t.shape[0], aux={"z": z})

    def loss(self, pred: Tensor, corrupted: Corrupted) -> Tensor:
        """Squared velocity error per row (mean over the d coordinates), per-sample mean removed."""
        if pred.shape != corrupted.target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(corrupted.target.shape)}")
        err = pred - corrupted.target
        if self.remove_mean:
            if corrupted.index is None:
                raise ValueError("remove_mean needs the row -> sample index")
            err = remove_segment_mean(err, corrupted.index, corrupted.num_segments)
        return err.pow(2).mean(-1)

    def prior_sample(self, like: Tensor, *, generator: torch.Generator | None = None, **_: object) -> Tensor:
        """Uniform draw on [0, 1)^d with the shape of ``like``."""
        return rand_like(like, generator)

    def velocity_from_prediction(self, pred: Tensor, t: Tensor, **_: object) -> Tensor:
        """The network regresses the velocity ``dx/dtau`` itself."""
        return pred

    def move(self, x: Tensor, v: Tensor, dtau: Tensor | float, *, index: Tensor | None = None, **_: object) -> Tensor:
        """Exponential map: ``(x + dtau v) mod 1`` (``dtau`` scalar or per sample)."""
        if isinstance(dtau, Tensor) and dtau.dim() == 1 and dtau.shape[0] != x.shape[0]:
            dtau = rows_of(dtau, index)
        step = expand_like(dtau, v) if isinstance(dtau, Tensor) else dtau
        return wrap01(x + step * v)

    def project(self, x: Tensor) -> Tensor:
        """Wrap into [0, 1)."""
        return wrap01(x)


def sym_log(s: Tensor) -> Tensor:
    """Matrix logarithm of symmetric positive-definite matrices [..., n, n] (eigendecomposition)."""
    w, q = torch.linalg.eigh(symmetrize(s))
    if bool((w <= 0).any()):
        raise ValueError(f"matrix logarithm of a matrix that is not positive definite (eigenvalue {float(w.min()):.3g})")
    return symmetrize(q @ torch.diag_embed(torch.log(w)) @ q.transpose(-1, -2))


def sym_exp(x: Tensor) -> Tensor:
    """Matrix exponential of symmetric matrices [..., n, n] (eigendecomposition)."""
    w, q = torch.linalg.eigh(symmetrize(x))
    return symmetrize(q @ torch.diag_embed(torch.exp(w)) @ q.transpose(-1, -2))


class FlowMatrix(nn.Module):
    """Flow matching of a symmetric positive-definite matrix field (one per sample), e.g. a lattice.

    Context (per sample, from the model): ``limit_mean`` [B, n, n] = ``mu I`` and
    ``limit_std`` [B] — the same prior as :class:`~gencrystal.diffusion.VPProcess`.

    Args:
        schedule: ``"cond_ot"`` or ``"cosine"``.
        space: ``"log"`` (flow ``log S``; SPD along the whole path) or ``"linear"`` (flow ``S``).
    """

    is_flow = True

    def __init__(self, schedule: str | FlowSchedule = "cond_ot", space: str = "log") -> None:
        super().__init__()
        if space not in MATRIX_SPACES:
            raise ValueError(f"unknown matrix flow space {space!r} (expected one of {MATRIX_SPACES})")
        self.schedule = _schedule(schedule)
        self.space = space

    # ------------------------------------------------------------------ charts
    def to_flow(self, s: Tensor) -> Tensor:
        """Field value (``S``) -> flow coordinates (``log S`` or ``S``)."""
        return sym_log(s) if self.space == "log" else s

    def from_flow(self, x: Tensor) -> Tensor:
        """Flow coordinates -> field value ``S`` (symmetric)."""
        return sym_exp(x) if self.space == "log" else symmetrize(x)

    def prior_params(self, limit_mean: Tensor, limit_std: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Mean matrix [B, n, n] and per-entry std [B] of the prior in flow coordinates."""
        mean = limit_mean.to(dtype)
        std = limit_std.to(dtype)
        if self.space == "linear":
            return mean, std
        n = mean.shape[-1]
        mu = torch.diagonal(mean, dim1=-2, dim2=-1).mean(-1)
        eye = torch.eye(n, dtype=dtype, device=mean.device)
        return torch.log(mu)[:, None, None] * eye, std / mu

    def _prior_flow(self, like: Tensor, limit_mean: Tensor, limit_std: Tensor,
                    generator: torch.Generator | None) -> Tensor:
        mean, std = self.prior_params(limit_mean, limit_std, like.dtype)
        noise = symmetric_noise(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        return mean.expand_as(like) + expand_like(std, like) * noise

    # ------------------------------------------------------------------ training
    def corrupt(self, x0: Tensor, t: Tensor, *, limit_mean: Tensor, limit_std: Tensor, index: Tensor | None = None,
                generator: torch.Generator | None = None, **_: object) -> Corrupted:
        """Straight path in flow coordinates from a prior draw to ``x0`` (data, [B, n, n]) at ``tau = 1 - t``."""
        check_times(t, allow_zero=True)
        if index is not None:
            raise ValueError("FlowMatrix is a per-sample field: pass index=None")
        z = self._prior_flow(x0, limit_mean, limit_std, generator)
        x1 = self.to_flow(x0)
        tau = (1.0 - t).to(x0.dtype)
        k = expand_like(self.schedule.kappa(tau), x0)
        dk = expand_like(self.schedule.dkappa(tau), x0)
        x_t = self.from_flow(z + k * (x1 - z))
        return Corrupted(x_t=x_t, target=dk * (x1 - z), t=t, index=None, num_segments=t.shape[0], aux={"z": z})

    def loss(self, pred: Tensor, corrupted: Corrupted) -> Tensor:
        """Squared velocity error averaged over the matrix entries -> Tensor[B]."""
        if pred.shape != corrupted.target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(corrupted.target.shape)}")
        err = (symmetrize(pred) - corrupted.target).pow(2)
        return err.reshape(err.shape[0], -1).mean(-1)

    def prior_sample(self, like: Tensor, *, limit_mean: Tensor, limit_std: Tensor, generator: torch.Generator | None = None,
                     **_: object) -> Tensor:
        """A prior draw as a field value ``S`` (shape of ``like``)."""
        return self.from_flow(self._prior_flow(like, limit_mean, limit_std, generator))

    def skip_guess(self, x_t: Tensor, t: Tensor, *, limit_mean: Tensor, limit_std: Tensor, **_: object) -> Tensor:
        """Closed-form velocity if the data were distributed like the prior (the network adds a residual).

        With ``z, x1 ~ N(m, s^2)`` independent and ``x = (1 - kappa) z + kappa x1`` (flow
        coordinates), ``E[kappa' (x1 - z) | x] = kappa' (2 kappa - 1) / ((1 - kappa)^2 + kappa^2) (x - m)``;
        ``s`` cancels. The analogue of the VP lattice field's Gaussian preconditioning."""
        tau = (1.0 - t).to(x_t.dtype)
        k, dk = self.schedule.kappa(tau), self.schedule.dkappa(tau)
        coeff = dk * (2.0 * k - 1.0) / ((1.0 - k) ** 2 + k ** 2)
        mean, _std = self.prior_params(limit_mean, limit_std, x_t.dtype)
        return expand_like(coeff, x_t) * (self.to_flow(x_t) - mean)

    def velocity_from_prediction(self, pred: Tensor, t: Tensor, **_: object) -> Tensor:
        """The network regresses the (symmetric) flow-space velocity; symmetrised here."""
        return symmetrize(pred)

    def move(self, x: Tensor, v: Tensor, dtau: Tensor | float, **_: object) -> Tensor:
        """``S`` moved along flow-space velocity ``v`` for flow time ``dtau``."""
        step = expand_like(dtau, v) if isinstance(dtau, Tensor) else dtau
        return self.from_flow(self.to_flow(x) + step * v)

    def project(self, x: Tensor) -> Tensor:
        """Re-symmetrise."""
        return symmetrize(x)


class MaskedFlow(nn.Module):
    """Discrete flow matching with a masking (absorbing) source for categorical rows.

    Classes ``0..K-1`` plus the mask state ``K``; the network predicts x1 logits
    (``[N, K]`` or ``[N, K+1]``, mask column ignored).

    Args:
        num_classes: K.
        schedule: ``"cond_ot"`` (unmasked fraction ``kappa = tau``) or ``"cosine"``.
    """

    is_flow = True

    def __init__(self, num_classes: int, schedule: str | FlowSchedule = "cond_ot") -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.schedule = _schedule(schedule)

    @property
    def mask_index(self) -> int:
        """The mask state ``K``."""
        return self.num_classes

    def x0_log_probs(self, logits: Tensor, *, allowed: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """Log-softmax over the K classes, disallowed classes at -inf (see MaskedD3PM)."""
        return masked_x0_log_probs(logits, self.num_classes, allowed=allowed, index=index)

    def corrupt(self, x0: Tensor, t: Tensor, *, index: Tensor | None = None, generator: torch.Generator | None = None,
                **_: object) -> Corrupted:
        """Mask each row of ``x0`` (long [N]) with probability ``1 - kappa(1 - t)``."""
        check_times(t, allow_zero=True)
        if x0.dtype not in (torch.long, torch.int64):
            raise ValueError(f"categorical x0 must be a long tensor, got {x0.dtype}")
        if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= self.num_classes):
            raise ValueError(f"class index out of range [0, {self.num_classes - 1}]: {int(x0.min())}..{int(x0.max())}")
        keep = rows_of(self.schedule.kappa((1.0 - t).to(torch.float64)), index)
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=x0.device)
        x_t = torch.where(u >= keep, torch.full_like(x0, self.mask_index), x0)
        return Corrupted(x_t=x_t, target=x0, t=t, index=index, num_segments=t.shape[0])

    def loss(self, logits: Tensor, corrupted: Corrupted) -> Tensor:
        """Cross-entropy of the masked rows (nats); unmasked rows give 0 -> Tensor[N]."""
        ce = F.nll_loss(self.x0_log_probs(logits), corrupted.target, reduction="none")
        return torch.where(corrupted.x_t == self.mask_index, ce, torch.zeros_like(ce))

    def prior_sample(self, like: Tensor, **_: object) -> Tensor:
        """All rows masked (long, shape of ``like``)."""
        return torch.full(like.shape, self.mask_index, dtype=torch.long, device=like.device)

    def jump(self, x: Tensor, logits: Tensor, t: Tensor, s: Tensor, *, index: Tensor | None = None,
             allowed: Tensor | None = None, generator: torch.Generator | None = None, **_: object) -> Tensor:
        """One step ``t -> s`` (``s < t``): masked rows unmask with the exact probability of the path."""
        if x.numel() == 0:
            return x
        k_t = rows_of(self.schedule.kappa((1.0 - t).to(torch.float64)), index)
        k_s = rows_of(self.schedule.kappa((1.0 - s).to(torch.float64)), index)
        p = torch.where(k_s >= 1.0, torch.ones_like(k_s), ((k_s - k_t) / (1.0 - k_t).clamp(min=1e-12)).clamp(0.0, 1.0))
        probs = self.x0_log_probs(logits, allowed=allowed, index=index).exp()
        draw = torch.multinomial(probs.reshape(-1, probs.shape[-1]).float(), 1, generator=generator).reshape(x.shape)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=x.device)
        unmask = (x == self.mask_index) & (u < p)
        return torch.where(unmask, draw, x)
