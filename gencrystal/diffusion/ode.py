"""A probability-flow ODE sampler (Heun) for the continuous fields.

Continuous fields follow the probability-flow ODE ``dx/dt = process.ode_drift(x, score, t)``
from t = 1 to 0 with Heun's second-order method on the time grid (the last step, which
lands on t = 0 where the score is singular, is an Euler step); the torus field is
wrapped after each step, the symmetric matrix re-symmetrised. Categorical (D3PM)
fields make ancestral jumps on the same grid with the logits of the first evaluation of
each step, so ``NFE = 2 num_steps - 1``. Deterministic for the continuous fields given
the prior draw; the generator seeds the prior and the D3PM jumps.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gencrystal.diffusion.d3pm import MaskedD3PM
from gencrystal.diffusion.predictors import D3PMAncestral
from gencrystal.diffusion.sampler import SamplerOutput, ScoreFn, _infer_batch_size, _processes, _time_dtype
from gencrystal.diffusion.schedules import time_grid


@torch.no_grad()
def sample_ode(
    fields: Mapping[str, Any],
    score_fn: ScoreFn,
    init_state: Mapping[str, Tensor],
    num_steps: int,
    *,
    context: Mapping[str, Mapping[str, Any]] | None = None,
    generator: torch.Generator | None = None,
    spacing: str = "power",
    power: float = 2.0,
    batch_size: int | None = None,
    progress: bool = False,
    post_step: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None,
) -> SamplerOutput:
    """Integrate the probability-flow ODE (Heun) from ``init_state`` at t = 1 to t = 0.

    Arguments as for :func:`gencrystal.diffusion.sample` (no predictors/correctors).
    """
    context = {k: dict(v) for k, v in (context or {}).items()}
    procs = _processes(fields)
    missing = [name for name in procs if name not in init_state]
    if missing:
        raise KeyError(f"init_state lacks diffused field(s) {missing}")
    discrete = {name for name, p in procs.items() if isinstance(p, MaskedD3PM)}
    continuous = [name for name in procs if name not in discrete]
    jump = D3PMAncestral()
    state = dict(init_state)
    B = batch_size if batch_size is not None else _infer_batch_size(procs, state, context)
    device = next(iter(state.values())).device
    dtype = _time_dtype(state)
    grid = time_grid(num_steps, spacing=spacing, power=power, dtype=torch.float64)
    nfe = 0
    for i in tqdm(range(num_steps), disable=not progress, desc="sampling (ODE)", unit="step"):
        t = torch.full((B,), float(grid[i]), dtype=dtype, device=device)
        s = torch.full((B,), float(grid[i + 1]), dtype=dtype, device=device)
        h = float(grid[i + 1] - grid[i])  # negative
        out = score_fn(dict(state), t)
        nfe += 1
        drift = {n: procs[n].ode_drift(state[n], out[n], t, **context.get(n, {})) for n in continuous}
        euler = dict(state)
        for n in continuous:
            euler[n] = procs[n].project(state[n] + h * drift[n])
        for n in discrete:
            euler[n] = jump.step(procs[n], state[n], out[n], t, s, generator=generator, **context.get(n, {}))
        if i + 1 < num_steps and continuous:
            out2 = score_fn(dict(euler), s)
            nfe += 1
            for n in continuous:
                drift2 = procs[n].ode_drift(euler[n], out2[n], s, **context.get(n, {}))
                euler[n] = procs[n].project(state[n] + 0.5 * h * (drift[n] + drift2))
        state = euler
        if post_step is not None:
            state = dict(post_step(state, s))
    return SamplerOutput(state=state, nfe=nfe)


class ODESampler:
    """A configured probability-flow ODE sampler (``conf/sampler/ode.yaml``); called like :class:`PCSampler`."""

    def __init__(self, num_steps: int = 50, spacing: str = "power", power: float = 2.0, progress: bool = False) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        time_grid(1, spacing=spacing, power=power)
        self.num_steps = int(num_steps)
        self.spacing = spacing
        self.power = float(power)
        self.progress = bool(progress)

    @property
    def nfe(self) -> int:
        """Network evaluations of one run (Heun: two per step, one on the last)."""
        return 2 * self.num_steps - 1

    def nfe_for(self, fields: Mapping[str, Any]) -> int:
        """NFE of one run over ``fields``."""
        return self.nfe

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
        return sample_ode(
            fields,
            score_fn,
            init_state,
            self.num_steps,
            context=context,
            generator=generator,
            spacing=self.spacing,
            power=self.power,
            batch_size=batch_size,
            progress=self.progress if progress is None else progress,
            post_step=post_step,
        )
