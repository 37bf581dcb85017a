"""One-by-one variable-cell relaxation under pressure with ASE.

Minimises the enthalpy H = E + P·V with ``FrechetCellFilter(atoms,
scalar_pressure=P·GPa)`` and ASE's FIRE or BFGS. A :class:`RelaxGuard` aborts a
structure whose volume per atom leaves a sane range or jumps in one step, or that runs
past its wall-clock limit; an input with atoms closer than ``min_distance`` is rejected
before the potential sees it (degenerate generated cells can make a graph potential
build enormous neighbour lists); non-finite energies, forces or stresses abort it too. Every failure is recorded on the returned
:class:`~gencrystal.relax.result.RelaxResult`, never raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from gencrystal.checks import DEFAULTS, StructureChecks
from gencrystal.errors import GencrystalError
from gencrystal.relax.analysis import rmsd_same_order, space_group
from gencrystal.relax.result import RelaxResult
from gencrystal.units import enthalpy, ev_per_a3_to_gpa, gpa_to_ev_per_a3

OPTIMIZERS = ("FIRE", "BFGS")


class RelaxAbort(Exception):
    """Raised inside a relaxation loop to stop one structure (guard tripped, NaN)."""


@dataclass
class RelaxGuard:
    """Sanity limits for a relaxation; a structure outside them is stopped and recorded as failed.

    The input is checked with :class:`gencrystal.checks.StructureChecks` (same limits and
    defaults as everywhere else); during the run the volume per atom must stay in the same
    range and may not jump.

    Attributes:
        min_volume_per_atom: Å³/atom below which the cell is considered collapsed.
        max_volume_per_atom: Å³/atom above which the cell is considered exploded.
        max_volume_ratio: largest allowed V/V₀ (and V₀/V) relative to the input.
        max_step_volume_change: largest relative volume change in one optimiser step.
        min_distance: Å; an input with two atoms (or an atom and a periodic image of itself)
            closer than this is rejected before any potential call.
        max_neighbors: an input with an atom that has more than this many neighbours within
            ``neighbor_cutoff`` Å is rejected (None: no check). Graph potentials build bond and
            angle lists within a few Å; a collapsed sample with 60+ atoms inside 3 Å of one
            atom held CHGNet for 15 min and 4 GB. For scale: 32 neighbours within 3 Å means
            3.5 Å³/atom, CHGNet's bcc Li at 100 GPa.
        neighbor_cutoff: Å, the radius of the ``max_neighbors`` count.
        max_seconds: wall-clock seconds one structure may take (None: no limit; with
            batched FIRE the clock starts with the batch).
    """

    min_volume_per_atom: float = DEFAULTS.min_volume_per_atom
    max_volume_per_atom: float = DEFAULTS.max_volume_per_atom
    max_volume_ratio: float = 8.0
    max_step_volume_change: float = 0.5
    min_distance: float = DEFAULTS.min_distance
    max_neighbors: int | None = DEFAULTS.max_neighbors
    neighbor_cutoff: float = DEFAULTS.neighbor_cutoff
    max_seconds: float | None = None

    def input_checks(self) -> StructureChecks:
        """The guard's limits as the one structure sanity check (:mod:`gencrystal.checks`)."""
        return StructureChecks(min_distance=self.min_distance, min_volume_per_atom=self.min_volume_per_atom,
                               max_volume_per_atom=self.max_volume_per_atom, max_neighbors=self.max_neighbors,
                               neighbor_cutoff=self.neighbor_cutoff)

    def check_input(self, atoms: Atoms) -> str | None:
        """A one-line reason when the input structure is unusable before relaxing, else None."""
        why = self.input_checks().reason(atoms)
        return None if why is None else f"input guard: {why}"

    def out_of_time(self, t0: float) -> str | None:
        """A one-line reason when a structure started at ``t0`` (perf_counter) ran too long."""
        if self.max_seconds is not None and time.perf_counter() - t0 > self.max_seconds:
            return f"time guard: over {self.max_seconds:g} s for this structure"
        return None

    def check(self, v0: float, v_prev: float, v: float) -> str | None:
        """A one-line reason when the volume per atom ``v`` (Å³) breaks a limit, else None."""
        if not math.isfinite(v):
            return "volume became non-finite"
        if v < self.min_volume_per_atom or v > self.max_volume_per_atom:
            return (f"volume guard: {v:.3g} Å³/atom left [{self.min_volume_per_atom:g}, "
                    f"{self.max_volume_per_atom:g}]")
        if v / v0 > self.max_volume_ratio or v0 / v > self.max_volume_ratio:
            return f"volume guard: V/V0 = {v / v0:.3g} beyond a factor {self.max_volume_ratio:g}"
        if abs(v - v_prev) / v_prev > self.max_step_volume_change:
            return (f"volume guard: volume jumped {100 * (v - v_prev) / v_prev:+.0f}% in one step "
                    f"(limit {100 * self.max_step_volume_change:.0f}%)")
        return None


def check_finite(energy: float, forces: np.ndarray, stress: np.ndarray) -> str | None:
    """A one-line reason when the potential returned NaN/inf, else None."""
    if not np.isfinite(energy):
        return f"potential returned a non-finite energy ({energy})"
    if not np.all(np.isfinite(forces)):
        return "potential returned non-finite forces"
    if not np.all(np.isfinite(stress)):
        return "potential returned a non-finite stress"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def finish_result(initial: Atoms, atoms: Atoms, pressure_gpa: float, level: str, *, energy: float,
                  stress: np.ndarray | None, converged: bool, steps: int, error: str | None,
                  fmax: float, max_steps: int, sid: str, t0: float, symprec: float = 0.1) -> RelaxResult:
    """Assemble a :class:`RelaxResult` from a finished (or stopped) relaxation."""
    n = len(atoms)
    vol = atoms.get_volume()
    if error is None and not converged:
        error = f"not converged in {max_steps} steps (fmax {fmax:g} eV/Å)"
    e = float(energy) if energy is not None else math.nan
    p_stress = math.nan
    if stress is not None and np.all(np.isfinite(stress)):
        p_stress = -ev_per_a3_to_gpa(float(np.mean(np.asarray(stress)[:3])))
    res = RelaxResult(
        atoms=atoms,
        energy=e,
        energy_per_atom=e / n,
        enthalpy_per_atom=enthalpy(e, vol, pressure_gpa) / n,
        volume_per_atom=vol / n,
        pressure_gpa=float(pressure_gpa),
        converged=bool(converged and error is None),
        steps=int(steps),
        error=error,
        level_of_theory=level,
        rmsd_from_input=rmsd_same_order(initial, atoms),
        stress_pressure_gpa=p_stress,
        id=sid,
        space_group=space_group(atoms, symprec) if math.isfinite(vol) and error is None else "",
        wall_s=time.perf_counter() - t0,
    )
    atoms.calc = None
    atoms.info.update(res.info())
    return res


class GuardObserver:
    """ASE observer (``opt.attach(observer)``) that stops a relaxation at the first
    non-finite energy/force/stress or guard violation (raises :class:`RelaxAbort`) and
    remembers the last energy (eV) and stress (Voigt, eV/Å³)."""

    def __init__(self, atoms: Atoms, guard: RelaxGuard, t0: float):
        self.atoms, self.guard, self.t0 = atoms, guard, t0
        self.v0 = self.v_prev = atoms.get_volume() / len(atoms)
        self.energy: float = math.nan
        self.stress: np.ndarray | None = None

    def __call__(self) -> None:
        energy = float(self.atoms.get_potential_energy())
        stress = np.array(self.atoms.get_stress(voigt=True))
        self.energy, self.stress = energy, stress
        bad = check_finite(energy, self.atoms.get_forces(), stress)
        if bad:
            raise RelaxAbort(bad)
        v = self.atoms.get_volume() / len(self.atoms)
        bad = self.guard.check(self.v0, self.v_prev, v) or self.guard.out_of_time(self.t0)
        if bad:
            raise RelaxAbort(bad)
        self.v_prev = v


class FrameRecorder:
    """Observer for :func:`relax_one` keeping every ``every``-th frame of a relaxation
    (step 0 included); called as ``recorder(atoms, optimizer)``.

    Each frame is a calculator-free copy whose ``info`` holds the input's scalar info
    plus ``pressure_gpa`` (target, GPa), ``step``, ``volume_per_atom`` (Å³/atom),
    ``stress_pressure_gpa`` (−tr σ/3, GPa) and, when the calculator reports them,
    ``energy_std`` (eV/atom), ``forces_std`` (eV/Å), ``stress_std`` (GPa) — the
    committee spread. Attach it after the :class:`GuardObserver` so that a step the
    guard rejects is not kept; :meth:`finish` adds the last frame and marks it.
    """

    SPREAD_KEYS = ("energy_std", "forces_std", "stress_std")

    def __init__(self, pressure_gpa: float, every: int = 1, info: dict | None = None):
        self.atoms: Atoms | None = None
        self.opt: Any = None
        self.pressure_gpa = float(pressure_gpa)
        self.every = max(1, int(every))
        self.info = {k: v for k, v in (info or {}).items() if isinstance(v, (int, float, str, bool))}
        self.frames: list[Atoms] = []

    def snapshot(self) -> Atoms:
        work = self.atoms
        assert work is not None
        a = Atoms(work.numbers, positions=work.positions, cell=work.cell, pbc=True)
        a.info.update(self.info)
        stress = work.get_stress(voigt=True)
        a.info.update({"pressure_gpa": self.pressure_gpa, "step": int(self.opt.nsteps),
                       "volume_per_atom": work.get_volume() / len(work),
                       "stress_pressure_gpa": -ev_per_a3_to_gpa(float(np.mean(stress[:3])))})
        results = getattr(work.calc, "results", {})
        for key in self.SPREAD_KEYS:
            if key in results:
                a.info[key] = float(results[key])
        return a

    def __call__(self, atoms: Atoms, optimizer: Any) -> None:
        self.atoms, self.opt = atoms, optimizer
        if self.opt.nsteps % self.every == 0:
            self.frames.append(self.snapshot())

    def finish(self, result: RelaxResult) -> list[Atoms]:
        """The kept frames; the last one is added when the run ended between two kept
        steps (not after a failure), and carries ``final`` (and ``error`` when it failed)."""
        failed = result.error is not None and not result.error.startswith("not converged")
        if self.atoms is not None and not failed and (not self.frames or self.frames[-1].info["step"] != result.steps):
            try:
                self.frames.append(self.snapshot())
            except Exception:  # the calculator is gone or fails: keep what was recorded
                pass
        if self.frames:
            self.frames[-1].info["final"] = True
            if failed:
                self.frames[-1].info["error"] = result.error
        return self.frames


def relax_one(atoms: Atoms, calc, pressure_gpa: float, level_of_theory: str, *, optimizer: str = "FIRE",
              fmax: float = 0.05, steps: int = 300, guard: RelaxGuard | None = None, sid: str = "",
              exp_cell_factor: float | None = None, symprec: float = 0.1,
              observers: Sequence[Callable[[Atoms, Any], Any]] = ()) -> RelaxResult:
    """Relax one structure at ``pressure_gpa`` (GPa) with an ASE calculator; never raises
    (except :class:`GencrystalError` for an unknown optimizer).

    The one relaxation loop of the project: ASE's optimizer runs on a
    ``FrechetCellFilter``; the guard (:class:`GuardObserver`) and any further
    ``observers`` are attached with ASE's ``opt.attach`` and called at step 0 and after
    every step.

    Args:
        atoms: the input structure (not modified).
        calc: an ASE calculator (energy eV, forces eV/Å, stress eV/Å³).
        pressure_gpa: target hydrostatic pressure, GPa.
        level_of_theory: label recorded on the result.
        optimizer: ``FIRE`` or ``BFGS`` (ASE's).
        fmax: convergence threshold on the FrechetCellFilter generalised forces, eV/Å
            (the cell part is virial/N, so the stress residual is ≈ fmax/(V/N)).
        steps: maximum optimiser steps.
        guard: volume limits (default :class:`RelaxGuard`).
        exp_cell_factor: FrechetCellFilter's cell scaling (default: number of atoms).
        observers: callables ``observer(atoms, optimizer)`` (the atoms being relaxed, the
            ASE optimizer), attached with ``opt.attach`` after the guard (e.g.
            :class:`FrameRecorder`). One that raises :class:`RelaxAbort` stops the structure
            with its message.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    opt_cls = {"FIRE": FIRE, "BFGS": BFGS}.get(str(optimizer).upper())
    if opt_cls is None:
        raise GencrystalError(f"optimizer={optimizer!r} is unknown; choose {' or '.join(OPTIMIZERS)}")
    t0 = time.perf_counter()
    guard = guard or RelaxGuard()
    initial = atoms.copy()
    work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    watch = GuardObserver(work, guard, t0)
    error, converged, opt = None, False, None
    try:
        bad = guard.check_input(work)
        if bad:
            raise RelaxAbort(bad)
        work.calc = calc  # some calculators validate the atoms here (e.g. SevenNet: unknown element)
        filt = FrechetCellFilter(work, scalar_pressure=gpa_to_ev_per_a3(pressure_gpa), exp_cell_factor=exp_cell_factor)
        opt = opt_cls(filt, logfile=None)
        opt.attach(watch)
        for observer in observers:
            opt.attach(observer, 1, work, opt)
        converged = bool(opt.run(fmax=fmax, steps=steps))
    except RelaxAbort as exc:
        error, converged = str(exc), False
    except Exception as exc:  # any calculator / filter failure stays on this structure
        error, converged = _one_line(exc), False
    return finish_result(initial, _detached(work), pressure_gpa, level_of_theory, energy=watch.energy,
                         stress=watch.stress, converged=converged, steps=opt.nsteps if opt is not None else 0,
                         error=error, fmax=fmax, max_steps=steps, sid=sid, t0=t0, symprec=symprec)


def _detached(atoms: Atoms) -> Atoms:
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    return out
