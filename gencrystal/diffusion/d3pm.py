"""Absorbing-state ("masked") discrete diffusion (D3PM) for categorical fields.

States ``0..K-1`` are the classes (e.g. element ``Z - 1``), state ``K`` is the mask.
With ``T = num_steps`` discrete steps, step ``k`` keeps a token with probability
``alpha_k = 1 - k/T`` and masks it otherwise (MatterGen's "standard" schedule
``beta_k = 1/(T - k + 1)``): the masking probability is linear in ``k`` and every token
is masked at ``k = T``. Continuous ``t`` in (0, 1] maps to ``k = ceil(t T)``.

The network predicts x0 logits (``[N, K]``, or ``[N, K+1]`` whose mask column is
ignored); ``p_theta(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p_theta(x0 | x_t)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gencrystal.diffusion.base import Corrupted, check_times
from gencrystal.diffusion.segments import rows_of

_NEG_INF = float("-inf")


def masked_x0_log_probs(logits: Tensor, num_classes: int, *, allowed: Tensor | None = None,
                        index: Tensor | None = None) -> Tensor:
    """Log-softmax of x0 logits over ``num_classes`` classes, with disallowed classes at -inf.

    ``logits`` [N, K] or [N, K+1] (the mask column is dropped); ``allowed``: BoolTensor [K]
    (all rows) or [B, K] (per sample, broadcast by ``index``).
    """
    if logits.shape[-1] == num_classes + 1:
        logits = logits[..., :num_classes]
    elif logits.shape[-1] != num_classes:
        raise ValueError(f"x0 logits need {num_classes} or {num_classes + 1} columns, got {logits.shape[-1]}")
    if allowed is not None:
        allowed = allowed.to(torch.bool)
        if allowed.shape[-1] != num_classes:
            raise ValueError(f"allowed mask needs {num_classes} columns, got {allowed.shape[-1]}")
        if not bool(allowed.any(-1).all()):
            raise ValueError("allowed mask forbids every class for some sample")
        rows = allowed if allowed.dim() == 1 else rows_of(allowed, index)
        logits = logits.masked_fill(~rows, _NEG_INF)
    return torch.log_softmax(logits, dim=-1)


class MaskedD3PM(nn.Module):
    """Absorbing-state D3PM with the x0 parameterisation.

    Loss per row: ``KL(q(x_{k-1} | x_k, x0) || p_theta(x_{k-1} | x_k)) + hybrid_lambda *
    CE(p_theta(x0 | x_k), x0)``; at ``k = 1`` the KL is the cross-entropy of the masked
    rows, for unmasked rows it is 0.
    """

    def __init__(self, num_classes: int, num_steps: int = 1000, hybrid_lambda: float = 0.01) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if hybrid_lambda < 0:
            raise ValueError(f"hybrid_lambda must be >= 0, got {hybrid_lambda}")
        self.num_classes = int(num_classes)
        self.num_steps = int(num_steps)
        self.hybrid_lambda = float(hybrid_lambda)

    @property
    def mask_index(self) -> int:
        """The absorbing state ``K``."""
        return self.num_classes

    # ------------------------------------------------------------------ schedule
    def discrete_time(self, t: Tensor) -> Tensor:
        """``k = ceil(t T)`` in ``[0, T]`` (long); tolerant to float round-off of grid times."""
        return torch.ceil(t.to(torch.float64) * self.num_steps - 1e-4).clamp(0, self.num_steps).long()

    def keep_prob(self, k: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``alpha_k = 1 - k/T``: probability that a token is still unmasked at step ``k``."""
        return 1.0 - k.to(dtype) / self.num_steps

    # ------------------------------------------------------------------ closed forms
    def marginal_probs(self, x0: Tensor, k: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        """``q(x_k | x0)`` as probabilities over ``K + 1`` states -> [N, K+1]."""
        a = self.keep_prob(k, dtype).unsqueeze(-1)
        onehot = F.one_hot(x0, self.num_classes + 1).to(dtype)
        mask = F.one_hot(torch.full_like(x0, self.mask_index), self.num_classes + 1).to(dtype)
        return a * onehot + (1.0 - a) * mask

    def step_probs(self, x_prev: Tensor, k: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
        """One forward step ``q(x_k | x_{k-1})`` for ``k >= 1`` -> [N, K+1]."""
        a_prev, a = self.keep_prob(k - 1, dtype), self.keep_prob(k, dtype)
        keep = torch.where(a_prev > 0, a / a_prev.clamp(min=1e-30), torch.zeros_like(a)).unsqueeze(-1)
        is_mask = (x_prev == self.mask_index).unsqueeze(-1)
        onehot = F.one_hot(x_prev, self.num_classes + 1).to(dtype)
        mask = F.one_hot(torch.full_like(x_prev, self.mask_index), self.num_classes + 1).to(dtype)
        return torch.where(is_mask, mask, keep * onehot + (1.0 - keep) * mask)

    def x0_log_probs(self, logits: Tensor, *, allowed: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """Log-softmax of x0 logits over the K classes, with disallowed classes at -inf
        (:func:`masked_x0_log_probs`)."""
        return masked_x0_log_probs(logits, self.num_classes, allowed=allowed, index=index)

    def posterior_log_probs(self, x_t: Tensor, x0_log_probs: Tensor, k_t: Tensor, k_s: Tensor) -> Tensor:
        """``log q(x_s | x_t, x0)`` mixed over ``x0 ~ exp(x0_log_probs)`` for ``k_s < k_t`` -> [N, K+1].

        A masked ``x_t`` unmasks to class ``j`` with probability
        ``(alpha_s - alpha_t)/(1 - alpha_t) p(x0 = j)`` and stays masked with
        ``(1 - alpha_s)/(1 - alpha_t)``; an unmasked ``x_t`` stays as it is. With a one-hot
        ``x0`` (log 0 / -inf) this is the true posterior, with predicted probabilities it
        is ``p_theta(x_s | x_t)`` (exact for the absorbing process).
        """
        dtype = x0_log_probs.dtype
        a_t, a_s = self.keep_prob(k_t, dtype), self.keep_prob(k_s, dtype)
        denom = torch.log1p(-a_t.clamp(max=1.0 - 1e-12))
        w_class = torch.log((a_s - a_t).clamp(min=0.0)) - denom
        w_mask = torch.log1p(-a_s) - denom  # -inf at s = 0: everything unmasks
        masked_rows = torch.cat([w_class.unsqueeze(-1) + x0_log_probs, w_mask.unsqueeze(-1)], dim=-1)
        stay = torch.full_like(masked_rows, _NEG_INF).scatter(-1, x_t.unsqueeze(-1), 0.0)
        return torch.where((x_t == self.mask_index).unsqueeze(-1), masked_rows, stay)

    def model_log_probs(self, x_t: Tensor, logits: Tensor, k_t: Tensor, k_s: Tensor, *,
                        allowed: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """``log p_theta(x_s | x_t)`` from x0 logits -> [N, K+1]."""
        return self.posterior_log_probs(x_t, self.x0_log_probs(logits, allowed=allowed, index=index), k_t, k_s)

    # ------------------------------------------------------------------ training
    def corrupt(self, x0: Tensor, t: Tensor, *, index: Tensor | None = None,
                generator: torch.Generator | None = None) -> Corrupted:
        """Mask each row of ``x0`` (long [N], classes ``0..K-1``) with probability ``k/T``."""
        check_times(t)
        if x0.dtype not in (torch.long, torch.int64):
            raise ValueError(f"categorical x0 must be a long tensor, got {x0.dtype}")
        if x0.numel() and (int(x0.min()) < 0 or int(x0.max()) >= self.num_classes):
            raise ValueError(f"class index out of range [0, {self.num_classes - 1}]: "
                             f"{int(x0.min())}..{int(x0.max())}")
        k = rows_of(self.discrete_time(t).clamp(min=1), index)
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=x0.device)
        masked = u >= self.keep_prob(k, torch.float64)
        x_t = torch.where(masked, torch.full_like(x0, self.mask_index), x0)
        return Corrupted(x_t=x_t, target=x0, t=t, index=index, num_segments=t.shape[0], aux={"k": k})

    def loss(self, logits: Tensor, corrupted: Corrupted) -> Tensor:
        """Reverse KL + ``hybrid_lambda`` * CE per row -> Tensor[N] (nats)."""
        x0, x_t, k = corrupted.target, corrupted.x_t, corrupted.aux["k"]
        logp_x0 = self.x0_log_probs(logits)
        true_x0 = torch.full_like(logp_x0, _NEG_INF).scatter(-1, x0.unsqueeze(-1), 0.0)
        lq = self.posterior_log_probs(x_t, true_x0, k, k - 1)
        lp = self.posterior_log_probs(x_t, logp_x0, k, k - 1)
        finite = torch.isfinite(lq)
        kl = torch.where(finite, lq.exp() * (lq - lp), torch.zeros_like(lq)).sum(-1)
        ce = F.nll_loss(logp_x0, x0, reduction="none")
        return kl + self.hybrid_lambda * ce

    # ------------------------------------------------------------------ sampling
    def prior_sample(self, like: Tensor, *, index: Tensor | None = None, allowed: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
        """All rows masked (the stationary distribution), long, shape of ``like``."""
        return torch.full(like.shape, self.mask_index, dtype=torch.long, device=like.device)
