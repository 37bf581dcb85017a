"""ODE samplers for flow-matching fields: Euler, midpoint and classical RK4.

``velocity_fn(state, t) -> {field: output}`` is the model (velocities ``dx/dtau`` for
continuous flow fields, x1 logits for :class:`~gencrystal.diffusion.MaskedFlow`); each
call is one network evaluation (NFE), a classifier-free-guided call on a doubled batch
included, exactly as for the diffusion samplers. The grid is uniform in flow time from
``t_start`` (default 1, the prior) to ``t_end`` (default 0, the data), ``tau = 1 - t``.

Per step of flow-time length ``h`` the continuous fields take one explicit Runge-Kutta
step on their manifold (``process.move``: wrap on the torus, the log chart of the
lattice): Euler (1 NFE), midpoint (2 NFE) or RK4 (4 NFE). Categorical fields jump once
per step with the logits of the step's first evaluation and are held fixed during its
stages. RK4's last stage of the last step evaluates the network at the data end
(``t = 0``); midpoint and Euler never do.

Anti-annealing (CrystalFlow/FlowMM's device): the velocity of the fields in
``anneal_fields`` is multiplied by ``1 + anneal_slope * relu(tau - anneal_offset)``,
which speeds the last part of the flow up (slope 0: off).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gencrystal.diffusion.sampler import SamplerOutput, ScoreFn, _infer_batch_size, _processes, _time_dtype

SOLVERS = {"euler": 1, "midpoint": 2, "rk4": 4}


def _is_discrete(process: Any) -> bool:
    return hasattr(process, "jump")


def _check_flow(procs: Mapping[str, Any]) -> None:
    bad = [name for name, p in procs.items() if not getattr(p, "is_flow", False)]
    if bad:
        raise TypeError(f"the flow sampler integrates flow fields only; {bad} are diffusion processes "
                        f"(use a diffusion sampler: pc, fast or ode)")


@torch.no_grad()
def sample_flow(fields: Mapping[str, Any], velocity_fn: ScoreFn, init_state: Mapping[str, Tensor], num_steps: int, *,
                solver: str = "euler", anneal_slope: float = 0.0, anneal_offset: float = 0.0,
                anneal_fields: Sequence[str] = ("frac_coords",), context: Mapping[str, Mapping[str, Any]] | None = None,
                generator: torch.Generator | None = None, batch_size: int | None = None, t_start: float = 1.0,
                t_end: float = 0.0, progress: bool = False,
                post_step: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None) -> SamplerOutput:
    """Integrate the flow of ``fields`` from ``init_state`` at ``t_start`` to ``t_end`` in ``num_steps`` steps.

    Arguments as for :func:`gencrystal.diffusion.sample`, plus ``solver`` (``euler``,
    ``midpoint``, ``rk4``), the anti-annealing parameters and the time span.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r} (expected one of {sorted(SOLVERS)})")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 <= t_end < t_start <= 1.0:
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")
    context = {k: dict(v) for k, v in (context or {}).items()}
    procs = _processes(fields)
    _check_flow(procs)
    missing = [name for name in procs if name not in init_state]
    if missing:
        raise KeyError(f"init_state lacks flow field(s) {missing}")
    discrete = [n for n, p in procs.items() if _is_discrete(p)]
    continuous = [n for n in procs if n not in discrete]
    annealed = set(anneal_fields) if anneal_slope else set()
    state = dict(init_state)
    B = batch_size if batch_size is not None else _infer_batch_size(procs, state, context)
    device = next(iter(state.values())).device
    dtype = _time_dtype(state)
    grid = torch.linspace(t_start, t_end, num_steps + 1, dtype=torch.float64)
    h = float(t_start - t_end) / num_steps  # flow-time step (tau increases)
    nfe = 0

    def times(tc: float) -> Tensor:
        return torch.full((B,), tc, dtype=dtype, device=device)

    def velocities(st: dict[str, Tensor], tc: float) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        nonlocal nfe
        out = velocity_fn(dict(st), times(tc))
        nfe += 1
        tau = 1.0 - tc
        gain = 1.0 + anneal_slope * max(tau - anneal_offset, 0.0)
        vel = {n: out[n] * gain if n in annealed else out[n] for n in continuous}
        return vel, dict(out)

    def moved(st: dict[str, Tensor], vel: Mapping[str, Tensor], dtau: float) -> dict[str, Tensor]:
        new = dict(st)
        for n in continuous:
            new[n] = procs[n].move(st[n], vel[n], dtau, **context.get(n, {}))
        return new

    for i in tqdm(range(num_steps), disable=not progress, desc=f"sampling (flow, {solver})", unit="step"):
        tc, sc = float(grid[i]), float(grid[i + 1])
        k1, out = velocities(state, tc)
        if solver == "euler" or not continuous:
            new = moved(state, k1, h)
        elif solver == "midpoint":
            k2, _ = velocities(moved(state, k1, 0.5 * h), tc - 0.5 * h)
            new = moved(state, k2, h)
        else:
            k2, _ = velocities(moved(state, k1, 0.5 * h), tc - 0.5 * h)
            k3, _ = velocities(moved(state, k2, 0.5 * h), tc - 0.5 * h)
            k4, _ = velocities(moved(state, k3, h), sc)
            new = moved(state, {n: (k1[n] + 2.0 * k2[n] + 2.0 * k3[n] + k4[n]) / 6.0 for n in continuous}, h)
        for n in discrete:
            new[n] = procs[n].jump(state[n], out[n], times(tc), times(sc), generator=generator, **context.get(n, {}))
        state = new
        if post_step is not None:
            state = dict(post_step(state, times(sc)))
    return SamplerOutput(state=state, nfe=nfe)


class FlowSampler:
    """A configured flow ODE sampler (``conf/sampler/flow*.yaml``); called like :class:`PCSampler`.

    Args:
        num_steps: integration steps N (NFE = N x 1, 2 or 4 for euler, midpoint, rk4).
        solver: ``"euler"``, ``"midpoint"`` or ``"rk4"``.
        anneal_slope, anneal_offset, anneal_fields: velocity x ``(1 + slope relu(tau - offset))``.
    """

    is_flow = True

    def __init__(self, num_steps: int = 50, solver: str = "euler", anneal_slope: float = 0.0,
                 anneal_offset: float = 0.0, anneal_fields: Sequence[str] = ("frac_coords",),
                 progress: bool = False) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if solver not in SOLVERS:
            raise ValueError(f"unknown ODE solver {solver!r} (expected one of {sorted(SOLVERS)})")
        if not anneal_slope >= 0:
            raise ValueError(f"anneal_slope must be >= 0, got {anneal_slope}")
        self.num_steps = int(num_steps)
        self.solver = solver
        self.anneal_slope = float(anneal_slope)
        self.anneal_offset = float(anneal_offset)
        self.anneal_fields = tuple(anneal_fields)
        self.progress = bool(progress)

    @property
    def nfe(self) -> int:
        """Network evaluations of one run: ``num_steps`` x stages of the solver."""
        return self.num_steps * SOLVERS[self.solver]

    def nfe_for(self, fields: Mapping[str, Any]) -> int:
        """NFE of one run over ``fields`` (categorical-only runs take one evaluation per step)."""
        procs = _processes(fields)
        if procs and all(_is_discrete(p) for p in procs.values()):
            return self.num_steps
        return self.nfe

    def __call__(self, fields: Mapping[str, Any], velocity_fn: ScoreFn, init_state: Mapping[str, Tensor], *,
                 context: Mapping[str, Mapping[str, Any]] | None = None, generator: torch.Generator | None = None,
                 batch_size: int | None = None, progress: bool | None = None,
                 post_step: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None) -> SamplerOutput:
        return sample_flow(fields, velocity_fn, init_state, self.num_steps, solver=self.solver,
                           anneal_slope=self.anneal_slope, anneal_offset=self.anneal_offset,
                           anneal_fields=self.anneal_fields, context=context, generator=generator,
                           batch_size=batch_size, progress=self.progress if progress is None else progress,
                           post_step=post_step)
