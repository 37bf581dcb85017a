"""Candidate structures for one active-learning iteration, and their relaxation frames.

Candidates per pressure (GPa) are:

- rattled and strained copies of *known* structures of the composition (the ``seeds``
  of ``conf/learn.yaml``: Hydra-instantiated ASE ``Atoms`` such as ``ase.build.bulk``,
  and/or a structure file), isotropically rescaled by a random volume factor;
- symmetric random structures (pyxtal, via :class:`gencrystal.search.generate.RandomStructureGenerator`);
- samples of the generative model when a checkpoint is given (:class:`gencrystal.sampling.Generator`).

Each candidate is relaxed at its pressure with the current potential (the committee
mean once one exists), keeping every ``frame_every``-th frame of the trajectory; those
frames, with their committee spread, are what the selection chooses from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms


@dataclass
class CandidateSettings:
    """How candidates are drawn (``conf/learn.yaml: candidates``).

    Attributes:
        perturbations: rattled/strained copies of each seed per pressure.
        rattle: Gaussian displacement of every atom, Å.
        strain: standard deviation of the random symmetric strain components (dimensionless).
        volume_scale: range [lo, hi] of the random isotropic volume factor applied to a seed.
        n_random: pyxtal random structures per pressure.
        formula_units: Z values for the random structures (multiples of the reduced formula).
        generator_checkpoint: a gencrystal diffusion checkpoint to sample from (None: unused).
        n_generated: generator samples per pressure.
    """

    perturbations: int = 2
    rattle: float = 0.05
    strain: float = 0.03
    volume_scale: Sequence[float] = (0.8, 1.1)
    n_random: int = 0
    formula_units: Sequence[int] = (1,)
    generator_checkpoint: str | None = None
    n_generated: int = 0


def perturb(atoms: Atoms, rng: np.random.Generator, rattle: float, strain: float,
            volume_scale: Sequence[float]) -> Atoms:
    """A copy of ``atoms`` with a random volume factor, symmetric strain and rattle (Å)."""
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    lo, hi = float(volume_scale[0]), float(volume_scale[1])
    vfac = rng.uniform(lo, hi)
    eps = rng.normal(0.0, strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    deform = (np.eye(3) + eps) * vfac ** (1.0 / 3.0)
    out.set_cell(out.cell.array @ deform, scale_atoms=True)
    out.positions += rng.normal(0.0, rattle, size=out.positions.shape)
    out.wrap()
    return out


def same_formula(atoms: Atoms, composition: str) -> bool:
    """True when ``atoms`` has the reduced formula of ``composition``."""
    from pymatgen.core import Composition

    from gencrystal.composition import parse_composition

    return Composition(atoms.get_chemical_formula()).reduced_formula == parse_composition(composition).reduced_formula


def draw_candidates(composition: str, pressure_gpa: float, seeds: Sequence[Atoms], settings: CandidateSettings,
                    rng: np.random.Generator) -> list[Atoms]:
    """Candidates at one pressure (GPa); ``info['origin']`` says where each came from."""
    out: list[Atoms] = []
    for k, seed in enumerate(seeds):
        for j in range(int(settings.perturbations)):
            a = perturb(seed, rng, settings.rattle, settings.strain, settings.volume_scale)
            a.info["origin"] = f"seed{k}:perturbed{j}"
            out.append(a)
    if int(settings.n_random) > 0:
        from gencrystal.composition import parse_composition
        from gencrystal.search.generate import RandomStructureGenerator

        gen = RandomStructureGenerator(parse_composition(composition).reduced_formula,
                                       formula_units=tuple(settings.formula_units), pressure_gpa=float(pressure_gpa))
        for j in range(int(settings.n_random)):
            a, prov = gen.draw(rng)
            a.info["origin"] = f"pyxtal:sg{prov['space_group']}"
            out.append(a)
    if settings.generator_checkpoint and int(settings.n_generated) > 0:
        from gencrystal.sampling import Generator

        gen = Generator(str(settings.generator_checkpoint), device="cpu")
        for j, a in enumerate(gen.sample(composition, pressure=float(pressure_gpa), n=int(settings.n_generated),
                                         seed=int(rng.integers(2**31 - 1)))):
            a = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
            a.info["origin"] = f"generator:{j}"
            out.append(a)
    for a in out:
        a.info["pressure_gpa"] = float(pressure_gpa)
    return out


@dataclass
class FrameRelaxSettings:
    """Relaxation of candidates (``conf/learn.yaml: relax``).

    Attributes:
        optimizer: ``FIRE`` or ``BFGS``.
        fmax: FrechetCellFilter generalised-force threshold, eV/Å.
        steps: maximum optimiser steps.
        frame_every: keep every n-th frame (the first and the last are always kept).
    """

    optimizer: str = "FIRE"
    fmax: float = 0.05
    steps: int = 60
    frame_every: int = 5


def relax_with_frames(atoms: Atoms, calc, pressure_gpa: float, settings: FrameRelaxSettings,
                      guard: Any = None) -> list[Atoms]:
    """Relax ``atoms`` at ``pressure_gpa`` (GPa) with the one relaxation loop
    (:func:`gencrystal.relax.relax_one`) and return the frames a
    :class:`~gencrystal.relax.ase_relax.FrameRecorder` observer kept (every
    ``settings.frame_every``-th and the last; ``info`` as documented there). A relaxation
    stopped by the guard or a non-finite prediction keeps the frames up to there, with
    ``info['error']`` on the last.
    """
    from gencrystal.relax.ase_relax import FrameRecorder, relax_one

    recorder = FrameRecorder(pressure_gpa, settings.frame_every, atoms.info)
    result = relax_one(atoms, calc, pressure_gpa, "", optimizer=settings.optimizer, fmax=settings.fmax,
                       steps=settings.steps, guard=guard, observers=[recorder])
    return recorder.finish(result)
