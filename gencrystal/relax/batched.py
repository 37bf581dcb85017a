"""Batched variable-cell FIRE: many structures per potential call.

Each structure keeps its own ASE ``FrechetCellFilter`` (generalised coordinates:
atom positions in the undeformed cell plus the matrix log of the cell deformation,
scaled by ``exp_cell_factor``; generalised forces: atomic forces and the
virial − P·V·I mapped through the exponential's Fréchet derivative) and its own FIRE
state (velocity, time step, mixing α, steps since the last uphill move). At every
iteration the still-active structures are evaluated together with one
:meth:`Potential.predict` call (CHGNet / SevenNet batch their graphs), then each takes
one FIRE step. Converged or failed structures drop out of the batch (per-structure
masking). The FIRE update follows the same rules and defaults as ASE's ``FIRE``
(Bitzek et al., PRL 97, 170201 (2006)): dt 0.1, dtmax 1.0, Nmin 5, finc 1.1, fdec 0.5,
α 0.1, fα 0.99, max step 0.2 — so a structure follows the same path as with the
one-by-one ASE relaxation, to floating-point noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from ase import Atoms

from gencrystal.potentials import Potential, Prediction
from gencrystal.relax.ase_relax import RelaxAbort, RelaxGuard, _one_line, check_finite, finish_result
from gencrystal.relax.result import RelaxResult
from gencrystal.units import gpa_to_ev_per_a3


@dataclass
class FireParams:
    """FIRE constants (ASE's defaults). Time in FIRE's arbitrary units, maxstep in Å."""

    dt: float = 0.1
    dtmax: float = 1.0
    maxstep: float = 0.2
    nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


@dataclass
class _State:
    """One structure's FIRE state and bookkeeping."""

    atoms: Atoms
    filt: Any
    dt: float
    a: float
    vel: np.ndarray | None = None
    nsince: int = 0  # steps since the last v·F <= 0 (ASE's Nsteps)
    steps: int = 0
    grad: np.ndarray | None = None
    energy: float = math.nan
    stress: np.ndarray | None = None
    v0: float = 0.0
    v_prev: float = 0.0
    converged: bool = False
    error: str | None = None
    done: bool = False
    t0: float = field(default_factory=time.perf_counter)

    @property
    def nsteps(self) -> int:
        """Steps taken (the name ASE's optimizers use, so that observers read it alike)."""
        return self.steps


def fire_step(st: _State, p: FireParams) -> None:
    """One FIRE update of ``st``'s generalised coordinates (same rules as ASE's FIRE)."""
    if st.grad is None:
        raise ValueError("fire_step needs the state's gradient (evaluate the potential first)")
    f = -st.grad  # generalised force
    if st.vel is None:
        st.vel = np.zeros_like(f)
    else:
        vf = float(np.vdot(f, st.vel))
        if vf > 0.0:
            st.vel = (1.0 - st.a) * st.vel + st.a * f / math.sqrt(float(np.vdot(f, f))) * math.sqrt(
                float(np.vdot(st.vel, st.vel))
            )
            if st.nsince > p.nmin:
                st.dt = min(st.dt * p.finc, p.dtmax)
                st.a *= p.fa
            st.nsince += 1
        else:
            st.vel[:] = 0.0
            st.a = p.astart
            st.dt *= p.fdec
            st.nsince = 0
    st.vel = st.vel + st.dt * f
    dr = st.dt * st.vel
    norm = math.sqrt(float(np.vdot(dr, dr)))
    if norm > p.maxstep:
        dr = p.maxstep * dr / norm
    x = st.filt.get_positions().ravel()
    st.filt.set_positions((x + dr).reshape(-1, 3))


def _predict_isolating(potential: Potential, atoms_list: list[Atoms], batch_size: int) -> list[Prediction | str]:
    """Batched prediction; if the batch call fails, retry one by one so only the culprit fails."""
    try:
        return list(potential.predict(atoms_list, batch_size=batch_size))
    except Exception:
        out: list[Prediction | str] = []
        for a in atoms_list:
            try:
                out.append(potential.predict([a], batch_size=1)[0])
            except Exception as exc:
                out.append(_one_line(exc))
        return out


def relax_batched(
    atoms_list: Sequence[Atoms],
    potential: Potential,
    pressure_gpa: float,
    *,
    fmax: float = 0.05,
    steps: int = 300,
    guard: RelaxGuard | None = None,
    batch_size: int = 32,
    ids: Sequence[str] | None = None,
    fire: FireParams | None = None,
    exp_cell_factor: float | None = None,
    symprec: float = 0.1,
    progress: Callable[[int], None] | None = None,
    observers: Sequence[Sequence[Callable[[Atoms, Any], Any]]] | None = None,
) -> list[RelaxResult]:
    """Relax many structures together with batched potential calls and per-structure FIRE.

    Args:
        atoms_list: input structures (not modified).
        potential: a :class:`Potential` (its :meth:`~Potential.predict` is called once per
            iteration on all still-active structures, ``batch_size`` per model call).
        pressure_gpa: target pressure, GPa.
        fmax: threshold on the generalised forces, eV/Å (as for ASE's optimisers).
        steps: maximum FIRE steps per structure.
        guard: volume limits; NaN outputs and guard trips fail only that structure.
        progress: called with the number of structures that finished in an iteration.
        observers: one sequence of observers per input structure, each called as
            ``observer(atoms, state)`` at step 0 and after every step that the guard and the
            potential accepted, exactly as :func:`~gencrystal.relax.ase_relax.relax_one`
            calls its ASE-attached observers (``atoms`` carries the step's energy, forces and
            stress; ``state.nsteps`` is the step; one that raises ``RelaxAbort`` stops that
            structure with its message as the error), so that e.g. a
            :class:`~gencrystal.relax.ase_relax.FrameRecorder` works with either loop.

    Returns:
        One :class:`RelaxResult` per input, same order.
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.filters import FrechetCellFilter

    guard = guard or RelaxGuard()
    fire = fire or FireParams()
    ids = list(ids) if ids is not None else [str(i) for i in range(len(atoms_list))]
    if observers is not None and len(observers) != len(atoms_list):
        raise ValueError(f"observers: {len(observers)} sequences for {len(atoms_list)} structures")
    p_ev = gpa_to_ev_per_a3(pressure_gpa)
    states: list[_State] = []
    for a in atoms_list:
        work = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
        st = _State(atoms=work, filt=None, dt=fire.dt, a=fire.astart)
        st.v0 = st.v_prev = work.get_volume() / len(work)
        bad = guard.check_input(work)
        if bad:
            st.error, st.done = bad, True
            states.append(st)
            continue
        try:
            st.filt = FrechetCellFilter(work, scalar_pressure=p_ev, exp_cell_factor=exp_cell_factor)
        except Exception as exc:
            st.error, st.done = _one_line(exc), True
        states.append(st)

    def evaluate(active: list[int]) -> None:
        preds = _predict_isolating(potential, [states[i].atoms for i in active], batch_size)
        for i, pred in zip(active, preds):
            st = states[i]
            if isinstance(pred, str):
                st.error = pred
                continue
            st.energy, st.stress = float(pred.energy), np.asarray(pred.stress, dtype=float)
            bad = check_finite(pred.energy, pred.forces, pred.stress)
            if bad:
                st.error = bad
                continue
            st.atoms.calc = SinglePointCalculator(
                st.atoms,
                energy=pred.energy,
                free_energy=pred.energy,
                forces=np.asarray(pred.forces, dtype=float),
                stress=st.stress,
            )
            try:
                st.grad = -st.filt.get_forces().ravel()
            except Exception as exc:
                st.error = _one_line(exc)
                continue
            st.converged = bool(np.linalg.norm(st.grad.reshape(-1, 3), axis=1).max() < fmax)
            try:
                for observer in observers[i] if observers is not None else ():
                    observer(st.atoms, st)
            except RelaxAbort as exc:  # an observer stops this structure only, as in relax_one
                st.error = str(exc)

    def retire(active: list[int]) -> list[int]:
        still = []
        finished = 0
        for i in active:
            st = states[i]
            if st.error is not None or st.converged or st.steps >= steps:
                st.done = True
                finished += 1
            else:
                still.append(i)
        if progress is not None and finished:
            progress(finished)
        return still

    active = [i for i, st in enumerate(states) if not st.done]
    if len(active) < len(states) and progress is not None:
        progress(len(states) - len(active))
    if active:
        evaluate(active)
    active = retire(active)
    while active:
        for i in active:
            st = states[i]
            try:
                fire_step(st, fire)
            except Exception as exc:
                st.error = _one_line(exc)
                continue
            st.steps += 1
            v = st.atoms.get_volume() / len(st.atoms)
            bad = guard.check(st.v0, st.v_prev, v) or guard.out_of_time(st.t0)
            if bad:
                st.error = bad
            st.v_prev = v
        ok = [i for i in active if states[i].error is None]
        if ok:
            evaluate(ok)
        active = retire(active)

    results = []
    for a, st, sid in zip(atoms_list, states, ids):
        results.append(
            finish_result(
                a,
                Atoms(st.atoms.numbers, positions=st.atoms.positions, cell=st.atoms.cell, pbc=True),
                pressure_gpa,
                potential.level_of_theory,
                energy=st.energy,
                stress=st.stress,
                converged=st.converged,
                steps=st.steps,
                error=st.error,
                fmax=fmax,
                max_steps=steps,
                sid=sid,
                t0=st.t0,
                symprec=symprec,
            )
        )
    return results
