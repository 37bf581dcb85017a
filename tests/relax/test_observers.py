"""One relaxation loop (relax_one) with ASE observers: the guard, and frames for active learning."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from gencrystal.learn.candidates import FrameRelaxSettings, relax_with_frames
from gencrystal.relax import RelaxGuard, relax_one
from gencrystal.relax.ase_relax import FrameRecorder, RelaxAbort


def _cu():
    a = bulk("Cu", "fcc", a=3.75, cubic=True)
    a.rattle(0.05, seed=1)
    a.info["origin"] = "seed0"
    return a


def test_frames_are_every_nth_step_plus_the_last_with_info():
    frames = relax_with_frames(_cu(), EMT(), 2.0, FrameRelaxSettings(optimizer="FIRE", fmax=0.02, steps=80,
                                                                     frame_every=3))
    steps = [f.info["step"] for f in frames]
    assert steps[0] == 0 and all(s % 3 == 0 for s in steps[:-1]) and steps == sorted(set(steps))
    last = frames[-1]
    assert last.info["final"] and "error" not in last.info and last.info["origin"] == "seed0"
    assert last.info["pressure_gpa"] == 2.0 and last.info["stress_pressure_gpa"] == pytest.approx(2.0, abs=0.3)
    assert all(f.calc is None for f in frames)


def test_guard_stops_and_the_last_frame_carries_the_error():
    guard = RelaxGuard(max_step_volume_change=1e-4)  # the first cell step trips it
    frames = relax_with_frames(_cu(), EMT(), 20.0, FrameRelaxSettings(fmax=0.01, steps=50, frame_every=1),
                               guard=guard)
    assert frames and "volume guard" in frames[-1].info["error"] and frames[-1].info["final"]
    assert frames[-1].info["step"] == 0  # the step that broke the guard is not kept


def test_an_observer_can_stop_a_relaxation_and_observers_see_every_step():
    seen = []

    def stop_at_three(atoms, opt):
        seen.append(opt.nsteps)
        if opt.nsteps == 3:
            raise RelaxAbort("stopped by observer at step 3")

    res = relax_one(_cu(), EMT(), 0.0, "emt", fmax=1e-6, steps=20, observers=[stop_at_three])
    assert seen == [0, 1, 2, 3] and res.error == "stopped by observer at step 3" and not res.converged
    rec = FrameRecorder(0.0, every=1)
    res = relax_one(_cu(), EMT(), 0.0, "emt", fmax=0.05, steps=100, observers=[rec])
    assert res.ok and [f.info["step"] for f in rec.finish(res)] == list(range(res.steps + 1))


def test_batched_fire_calls_each_structures_observers_like_relax_one():
    from gencrystal.potentials import calculator_potential
    from gencrystal.relax.batched import relax_batched

    potential = calculator_potential(EMT, "emt")
    stopped, seen = [], []

    def stop_at_two(atoms, state):
        stopped.append(state.nsteps)
        if state.nsteps == 2:
            raise RelaxAbort("stopped by observer at step 2")

    rec = FrameRecorder(1.0, every=2, info={"origin": "seed0"})
    structures = [_cu(), _cu()]
    res = relax_batched(structures, potential, 1.0, fmax=0.05, steps=100,
                        observers=[[rec, lambda atoms, state: seen.append(state.nsteps)], [stop_at_two]])
    assert res[0].ok and seen == list(range(res[0].steps + 1))
    frames = rec.finish(res[0])
    assert [f.info["step"] for f in frames[:-1]] == list(range(0, res[0].steps + 1, 2))[: len(frames) - 1]
    assert frames[-1].info["final"] and frames[-1].info["step"] == res[0].steps
    assert frames[-1].get_volume() == pytest.approx(res[0].atoms.get_volume())
    assert stopped == [0, 1, 2] and res[1].error == "stopped by observer at step 2" and not res[1].converged
    with pytest.raises(ValueError, match="1 sequences for 2 structures"):
        relax_batched(structures, potential, 1.0, observers=[[rec]])
