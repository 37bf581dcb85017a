"""Classifier-free guidance: combine conditional and unconditional network outputs.

Continuous fields (scores): ``uncond + scale (cond - uncond)`` (``scale = 1`` is the
conditional model, ``0`` the unconditional one). Categorical fields (x0 logits):
``log p = (1 - scale) log p_uncond + scale log p_cond`` on normalised log-probabilities
(classes forbidden by either side stay forbidden).

:class:`ClassifierFreeGuidance` is the guided score/velocity function built from these: given
the names of the conditions present and a scale (one γ, or ``{condition: γ}``), it says which
condition subsets (*variants*) the caller's network must be evaluated with, and turns the
caller's per-variant predictions into one guided output per field. Domain-agnostic: a
condition is a name, a field a name, a prediction a tensor (scores and velocities combine
linearly, fields named ``discrete`` as log-probabilities).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

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


Outputs = Mapping[str, Tensor]


class ClassifierFreeGuidance:
    """Classifier-free guidance over named conditions.

    Args:
        conditions: names of the conditions given for this batch (absent ones are not guided).
        scale: one guidance weight γ for all conditions together (1 = plain conditional, 0 =
            unconditional), or ``{condition: γ_c}`` to guide each condition on its own
            (``u + Σ_c γ_c (cond_c − u)``; conditions not named are dropped).

    ``variants`` lists the condition subsets to evaluate, in order: ``[all]`` (γ = 1 or no
    condition), ``[all, none]`` (one γ), ``[none]`` (γ = 0), ``[none, {c1}, {c2}, ...]`` (per
    condition). :meth:`combine` takes the predictions in that order.
    """

    def __init__(self, conditions: Sequence[str], scale: float | Mapping[str, float] = 1.0) -> None:
        self.conditions = list(conditions)
        self.scales = {str(c): float(v) for c, v in scale.items()} if isinstance(scale, Mapping) else None
        self.gamma = None if self.scales is not None else float(scale)  # type: ignore[arg-type]
        cols = self.conditions
        if not cols or (self.gamma is not None and self.gamma == 1.0):
            self.variants: list[frozenset[str]] = [frozenset(cols)]
            self.guided: list[str] = []
        elif self.gamma is not None:
            self.variants = [frozenset(cols), frozenset()] if self.gamma != 0.0 else [frozenset()]
            self.guided = []
        else:
            assert self.scales is not None
            self.guided = [c for c in self.scales if c in cols]
            self.variants = [frozenset()] + [frozenset({c}) for c in self.guided]

    def dropped(self, condition: str) -> list[bool]:
        """Per variant, whether ``condition`` is dropped (True) or kept."""
        return [condition not in kept for kept in self.variants]

    def combine(self, outputs: Sequence[Outputs], discrete: Iterable[str] = ()) -> dict[str, Tensor]:
        """One guided output per field from the predictions of each variant (in ``variants`` order)."""
        if len(outputs) != len(self.variants):
            raise ValueError(f"expected {len(self.variants)} variant outputs, got {len(outputs)}")
        discrete = set(discrete)
        if len(outputs) == 1:
            return dict(outputs[0])
        if self.gamma is not None:
            return cfg_combine_fields(outputs[0], outputs[1], self.gamma, discrete)
        assert self.scales is not None
        uncond = outputs[0]
        return {
            name: cfg_combine_multi(
                uncond[name],
                {c: r[name] for c, r in zip(self.guided, outputs[1:])},
                {c: self.scales[c] for c in self.guided},
                logits=name in discrete,
            )
            for name in uncond
        }

    def score_fn(
        self,
        predict: Callable[[Mapping[str, Tensor], Tensor], Sequence[Outputs]],
        discrete: Iterable[str] = (),
    ) -> Callable[[Mapping[str, Tensor], Tensor], dict[str, Tensor]]:
        """The guided ``score_fn(state, t)`` of a sampler from ``predict(state, t)``, which returns
        the scores (or velocities, or logits) of every variant in ``variants`` order."""
        discrete = tuple(discrete)

        def guided(state: Mapping[str, Tensor], t: Tensor) -> dict[str, Tensor]:
            return self.combine(predict(state, t), discrete)

        return guided


def prediction_to_score(process: object, pred: Tensor, t: Tensor, **context: object) -> Tensor:
    """The sampler's input from a network prediction: the velocity of a continuous flow field
    (``velocity_from_prediction``), the score of a continuous diffusion field
    (``score_from_prediction(pred, t, **context)``), the logits themselves for a discrete field."""
    if hasattr(process, "velocity_from_prediction"):
        return process.velocity_from_prediction(pred, t)
    if hasattr(process, "score_from_prediction"):
        return process.score_from_prediction(pred, t, **context)
    return pred


def is_discrete(process: object) -> bool:
    """True for a field whose network output is logits (no score or velocity conversion)."""
    return not (hasattr(process, "velocity_from_prediction") or hasattr(process, "score_from_prediction"))
