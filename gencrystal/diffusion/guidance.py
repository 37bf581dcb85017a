"""Classifier-free guidance: combine conditional and unconditional network outputs.

Continuous fields (scores): ``uncond + scale (cond - uncond)`` (``scale = 1`` is the
conditional model, ``0`` the unconditional one). Categorical fields (x0 logits):
``log p = (1 - scale) log p_uncond + scale log p_cond`` on normalised log-probabilities
(classes forbidden by either side stay forbidden). The model evaluates its network
twice, or once on a doubled batch, and calls these inside its ``score_fn``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor


def cfg_combine(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Guided score ``uncond + scale (cond - uncond)``."""
    return uncond + scale * (cond - uncond)


def cfg_combine_logits(cond_logits: Tensor, uncond_logits: Tensor, scale: float) -> Tensor:
    """Guided log-probabilities ``(1 - scale) log_softmax(uncond) + scale log_softmax(cond)``."""
    lc = torch.log_softmax(cond_logits, dim=-1)
    lu = torch.log_softmax(uncond_logits, dim=-1)
    forbidden = torch.isinf(lc) | torch.isinf(lu)
    out = (1.0 - scale) * lu.masked_fill(forbidden, 0.0) + scale * lc.masked_fill(forbidden, 0.0)
    return out.masked_fill(forbidden, float("-inf"))


def cfg_combine_multi(
    uncond: Tensor, conds: Mapping[str, Tensor], scales: Mapping[str, float], *, logits: bool = False
) -> Tensor:
    """Guidance with one scale per condition: ``u + sum_c scale_c (cond_c - u)``.

    ``conds[c]`` is the output with only condition ``c`` kept. With ``logits=True`` the
    same combination is taken on log-softmax values (forbidden classes stay forbidden).
    """
    missing = set(conds) ^ set(scales)
    if missing:
        raise KeyError(f"conditions and scales differ on {sorted(missing)}")
    if logits:
        base = torch.log_softmax(uncond, dim=-1)
        parts = {c: torch.log_softmax(v, dim=-1) for c, v in conds.items()}
        forbidden = torch.isinf(base)
        for v in parts.values():
            forbidden = forbidden | torch.isinf(v)
        out = base.masked_fill(forbidden, 0.0)
        for c, v in parts.items():
            out = out + scales[c] * (v.masked_fill(forbidden, 0.0) - base.masked_fill(forbidden, 0.0))
        return out.masked_fill(forbidden, float("-inf"))
    out = uncond
    for c, v in conds.items():
        out = out + scales[c] * (v - uncond)
    return out


def cfg_combine_fields(
    cond: Mapping[str, Tensor], uncond: Mapping[str, Tensor], scale: float, discrete: Iterable[str] = ()
) -> dict[str, Tensor]:
    """Apply :func:`cfg_combine` (or the logit version for names in ``discrete``) field by field."""
    discrete = set(discrete)
    return {
        name: (
            cfg_combine_logits(cond[name], uncond[name], scale)
            if name in discrete
            else cfg_combine(cond[name], uncond[name], scale)
        )
        for name in cond
    }
