"""The generic predictor-corrector loop over named fields.

``score_fn(state, t) -> {field: output}`` is the model: for each diffused field the score
of ``p_t`` (continuous) or x0 logits (D3PM) at the current state and per-sample times
``t`` [B]. Each call is one network evaluation (NFE); a classifier-free-guided
``score_fn`` that runs the network on a doubled batch still counts as one call here.

Per step ``t_i -> t_{i+1}`` of :func:`~gencrystal.diffusion.schedules.time_grid`:
``corrector_steps`` x (one ``score_fn`` call, then a Langevin step for every field with
a corrector), then one ``score_fn`` call and a predictor step for every diffused field.
Fields of the state without a process are *fixed* and passed through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gencrystal.diffusion.predictors import default_predictor
from gencrystal.diffusion.schedules import time_grid

ScoreFn = Callable[[dict[str, Tensor], Tensor], Mapping[str, Tensor]]


@dataclass
class SamplerOutput:
    """Final state (one tensor per field) and the number of ``score_fn`` calls (NFE)."""

    state: dict[str, Tensor]
    nfe: int


def _processes(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: getattr(f, "process", f) for name, f in fields.items()}


def _infer_batch_size(processes: Mapping[str, Any], state: Mapping[str, Tensor], context: Mapping[str, Mapping[str, Any]]) -> int:
    for name in processes:
        ctx = context.get(name, {})
        if ctx.get("index") is None:
            return int(state[name].shape[0])
    for name in processes:
        for key in ("std_scale", "limit_std"):
            if context.get(name, {}).get(key) is not None:
                return int(context[name][key].shape[0])
    for name in processes:
        index = context.get(name, {}).get("index")
        if index is not None and index.numel():
            return int(index.max()) + 1
    raise ValueError("cannot infer the batch size: pass batch_size=")


def _time_dtype(state: Mapping[str, Tensor]) -> torch.dtype:
    for v in state.values():
        if v.is_floating_point():
            return v.dtype
    return torch.float32


def draw_prior(
    fields: Mapping[str, Any],
    like: Mapping[str, Tensor],
    context: Mapping[str, Mapping[str, Any]] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Initial state: each process's prior with the shape of ``like[name]``; other entries of ``like`` are kept."""
    context = context or {}
    procs = _processes(fields)
    state = dict(like)
    for name, proc in procs.items():
        state[name] = proc.prior_sample(like[name], generator=generator, **dict(context.get(name, {})))
    return state


@torch.no_grad()
def sample(
    fields: Mapping[str, Any],
    score_fn: ScoreFn,
    init_state: Mapping[str, Tensor],
    num_steps: int,
    *,
    predictors: Mapping[str, Any] | None = None,
    correctors: Mapping[str, Any] | None = None,
    context: Mapping[str, Mapping[str, Any]] | None = None,
    generator: torch.Generator | None = None,
    spacing: str = "linear",
    power: float = 2.0,
    corrector_steps: int = 1,
    batch_size: int | None = None,
    progress: bool = False,
    post_step: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None,
) -> SamplerOutput:
    """Run the predictor-corrector loop from ``init_state`` (at t = 1) to t = 0.

    Args:
        fields: ``{name: process}`` (or ``DiffusionField``s / a ``FieldSet``) of the diffused fields.
        score_fn: the model, ``score_fn(state, t[B]) -> {name: score or x0 logits}``.
        init_state: all fields at t = 1 (see :func:`draw_prior`) plus fixed fields.
        num_steps: predictor steps (NFE = ``num_steps * (1 + corrector_steps)`` with correctors).
        predictors: ``{name: predictor}``; missing names get the ancestral default.
        correctors: ``{name: LangevinCorrector}`` for the fields to correct (None: none).
        context: ``{name: {"index": ..., "std_scale": ..., "limit_mean": ..., ...}}``.
        generator: a ``torch.Generator`` on the state's device for reproducible samples.
        spacing, power: the time grid (``"linear"`` or ``"power"``).
        corrector_steps: Langevin steps per noise level.
        batch_size: number of samples B (inferred from the fields when omitted).
        progress: show a tqdm progress bar.
        post_step: optional ``f(state, s) -> state`` applied after each predictor step.
    """
    context = {k: dict(v) for k, v in (context or {}).items()}
    procs = _processes(fields)
    missing = [name for name in procs if name not in init_state]
    if missing:
        raise KeyError(f"init_state lacks diffused field(s) {missing}")
    if corrector_steps < 0:
        raise ValueError(f"corrector_steps must be >= 0, got {corrector_steps}")
    preds = {name: (predictors or {}).get(name) or default_predictor(p) for name, p in procs.items()}
    corrs = {name: c for name, c in (correctors or {}).items() if name in procs and c is not None}
    state = dict(init_state)
    B = batch_size if batch_size is not None else _infer_batch_size(procs, state, context)
    device = next(iter(state.values())).device
    dtype = _time_dtype(state)
    grid = time_grid(num_steps, spacing=spacing, power=power, dtype=torch.float64)
    nfe = 0
    for i in tqdm(range(num_steps), disable=not progress, desc="sampling", unit="step"):
        t = torch.full((B,), float(grid[i]), dtype=dtype, device=device)
        s = torch.full((B,), float(grid[i + 1]), dtype=dtype, device=device)
        if corrs:
            for _ in range(corrector_steps):
                out = score_fn(dict(state), t)
                nfe += 1
                for name, corr in corrs.items():
                    state[name] = corr.step(
                        procs[name], state[name], out[name], t, s, generator=generator, **context.get(name, {})
                    )
        out = score_fn(dict(state), t)
        nfe += 1
        for name, proc in procs.items():
            state[name] = preds[name].step(proc, state[name], out[name], t, s, generator=generator, **context.get(name, {}))
        if post_step is not None:
            state = dict(post_step(state, s))
    return SamplerOutput(state=state, nfe=nfe)


class PCSampler:
    """A configured sampler (``conf/sampler/{pc,fast}.yaml``): steps, grid, predictors, correctors.

    ``sampler(fields, score_fn, init_state, context=..., generator=...)`` runs
    :func:`sample`; :attr:`nfe` is the number of network evaluations it will make.
    """

    def __init__(
        self,
        num_steps: int = 1000,
        predictors: Mapping[str, Any] | None = None,
        correctors: Mapping[str, Any] | None = None,
        corrector_steps: int = 1,
        spacing: str = "linear",
        power: float = 2.0,
        progress: bool = False,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        time_grid(1, spacing=spacing, power=power)  # validates spacing/power
        self.num_steps = int(num_steps)
        self.predictors = dict(predictors or {})
        self.correctors = {k: v for k, v in dict(correctors or {}).items() if v is not None}
        self.corrector_steps = int(corrector_steps)
        self.spacing = spacing
        self.power = float(power)
        self.progress = bool(progress)

    def nfe_for(self, fields: Mapping[str, Any]) -> int:
        """NFE of one run over ``fields`` (correctors count only for fields that are diffused)."""
        corrected = any(name in fields for name in self.correctors)
        return self.num_steps * (1 + (self.corrector_steps if corrected else 0))

    @property
    def nfe(self) -> int:
        """NFE with every configured corrector active."""
        return self.num_steps * (1 + (self.corrector_steps if self.correctors else 0))

    def __call__(
        self,
        fields: Mapping[str, Any],
        score_fn: ScoreFn,
        init_state: Mapping[str, Tensor],
        *,
        context: Mapping[str, Mapping[str, Any]] | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        progress: bool | None = None,
        post_step: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None,
    ) -> SamplerOutput:
        return sample(
            fields,
            score_fn,
            init_state,
            self.num_steps,
            predictors=self.predictors,
            correctors=self.correctors,
            context=context,
            generator=generator,
            spacing=self.spacing,
            power=self.power,
            corrector_steps=self.corrector_steps,
            batch_size=batch_size,
            progress=self.progress if progress is None else progress,
            post_step=post_step,
        )
