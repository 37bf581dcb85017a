"""The three search methods: AIRSS-like random search, CALYPSO-like PSO, generative model.

A method proposes candidates in *batches* (a chunk of random structures, a PSO
generation, a batch of model samples). Candidate ``i`` of a search is always the same
structure whatever happened before a restart: proposals depend only on the seed, the
batch index and the relaxed candidates of earlier batches (read back from the
database), which is what makes searches resumable without repeats or losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.search.generate import RandomStructureGenerator
from gencrystal.structures import sort_by_species


def rng_for(*keys: int) -> np.random.Generator:
    """A NumPy generator seeded by a tuple of non-negative integers (seed, batch, slot...)."""
    return np.random.default_rng([int(k) for k in keys])


@dataclass
class Proposal:
    """One unrelaxed candidate.

    ``index`` is its position in the search (0-based), ``parent_index`` the candidate
    it was derived from (-1 for none), ``particle`` its PSO lineage, ``origin`` how it
    was made (``random``, ``pso``, ``generative``), ``data`` arrays stored with the row
    (PSO velocities).
    """

    index: int
    atoms: Atoms
    generation: int
    origin: str
    parent_index: int = -1
    particle: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Candidate:
    """One relaxed candidate as stored in the database (enthalpy in eV/atom)."""

    index: int
    row_id: int
    atoms: Atoms
    enthalpy_per_atom: float
    ok: bool
    generation: int
    particle: int
    origin: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchContext:
    """What every method needs: the formula, Z values, pressure (GPa), seed, the random
    structure generator and the fingerprint settings."""

    formula: str
    formula_units: tuple[int, ...]
    pressure_gpa: float
    seed: int
    generator: RandomStructureGenerator
    fingerprint_tol: float = 0.02
    enthalpy_tol: float = 0.005
    _fp_cache: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def elements(self) -> list[str]:
        return [el.symbol for el in self.generator.reduced.elements]

    def fingerprint(self, cand: Candidate) -> np.ndarray:
        """Cached fingerprint of a relaxed candidate."""
        from gencrystal.search.fingerprint import fingerprint

        if cand.index not in self._fp_cache:
            self._fp_cache[cand.index] = fingerprint(cand.atoms, self.elements)
        return self._fp_cache[cand.index]

    def random_proposal(self, index: int, generation: int, rng: np.random.Generator) -> Proposal:
        atoms, meta = self.generator.draw(rng)
        return Proposal(
            index,
            atoms,
            generation,
            "random",
            particle=index,
            meta={"init_space_group": meta["space_group"], "formula_units": meta["formula_units"]},
        )


class SearchMethod:
    """Base class: ``batches(budget)`` and ``propose(batch, start, stop, history, ctx)``."""

    name = "base"

    def batch_size(self) -> int:
        raise NotImplementedError

    def batches(self, budget: int) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` candidate-index ranges of the batches, covering ``budget``."""
        size = max(1, int(self.batch_size()))
        return [(s, min(s + size, budget)) for s in range(0, budget, size)]

    def propose(self, batch: int, start: int, stop: int, history: Sequence[Candidate], ctx: SearchContext) -> list[Proposal]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The method's parameters (part of the search identity)."""
        return {}


@dataclass
class RandomSearch(SearchMethod):
    """AIRSS-like random search: every candidate is an independent symmetric random
    structure (pyxtal), seeded by ``(seed, index)``."""

    chunk: int = 4
    name: str = "random"

    def batch_size(self) -> int:
        return self.chunk

    def propose(self, batch: int, start: int, stop: int, history: Sequence[Candidate], ctx: SearchContext) -> list[Proposal]:
        return [ctx.random_proposal(i, 0, rng_for(ctx.seed, i)) for i in range(start, stop)]


@dataclass
class PSOSearch(SearchMethod):
    """CALYPSO-like particle-swarm optimisation.

    Generation 0 is ``population`` symmetric random structures. Each later generation
    takes the previous generation's relaxed structures, drops failures and duplicates
    (fingerprint distance ≤ ``fingerprint_tol`` and enthalpy within ``enthalpy_tol``
    eV/atom of a better structure), keeps the best ``1 − fresh_fraction`` of the
    population as particles and moves each toward its personal best and the global
    best (same atom count) with :func:`gencrystal.search.pso.pso_update`; the rest of
    the generation is fresh random structures.
    """

    population: int = 8
    fresh_fraction: float = 0.4
    c1: float = 2.0
    c2: float = 2.0
    w_start: float = 0.9
    w_end: float = 0.4
    max_frac_velocity: float = 0.25
    max_lattice_velocity: float = 0.3
    max_tries: int = 5
    n_generations: int | None = None  # for the inertia schedule; None → budget / population
    name: str = "pso"

    def __post_init__(self):
        if self.population < 2:
            raise GencrystalError(f"method.population={self.population} must be >= 2")
        if not 0.0 <= self.fresh_fraction <= 1.0:
            raise GencrystalError(f"method.fresh_fraction={self.fresh_fraction} must be in [0, 1]")
        self._budget = None

    def batch_size(self) -> int:
        return self.population

    def batches(self, budget: int) -> list[tuple[int, int]]:
        self._budget = budget
        return super().batches(budget)

    def settings(self):
        return {
            "population": self.population,
            "fresh_fraction": self.fresh_fraction,
            "c1": self.c1,
            "c2": self.c2,
            "w_start": self.w_start,
            "w_end": self.w_end,
            "max_frac_velocity": self.max_frac_velocity,
            "max_lattice_velocity": self.max_lattice_velocity,
            "n_generations": self.n_generations,
        }

    def propose(self, batch: int, start: int, stop: int, history: Sequence[Candidate], ctx: SearchContext) -> list[Proposal]:
        from gencrystal.search.fingerprint import is_duplicate
        from gencrystal.search.pso import PSOParams, pso_update

        if batch == 0:
            return [ctx.random_proposal(i, 0, rng_for(ctx.seed, 0, i - start)) for i in range(start, stop)]
        params = PSOParams(
            c1=self.c1,
            c2=self.c2,
            w_start=self.w_start,
            w_end=self.w_end,
            max_frac_velocity=self.max_frac_velocity,
            max_lattice_velocity=self.max_lattice_velocity,
        )
        n_gen = self.n_generations or max(1, math.ceil((self._budget or stop) / self.population))
        w = params.inertia(batch, n_gen)
        ok = [c for c in history if c.ok]
        previous = sorted((c for c in ok if c.generation == batch - 1), key=lambda c: (c.enthalpy_per_atom, c.index))
        # unique particles of the last generation, best first; a duplicate of a better
        # structure already seen (this generation or earlier) is dropped
        better_seen = sorted(ok, key=lambda c: (c.enthalpy_per_atom, c.index))
        selected: list[Candidate] = []
        for c in previous:
            refs = [
                (ctx.fingerprint(o), o.enthalpy_per_atom)
                for o in better_seen
                if (o.enthalpy_per_atom, o.index) < (c.enthalpy_per_atom, c.index) and len(o.atoms) == len(c.atoms)
            ]
            if is_duplicate(ctx.fingerprint(c), c.enthalpy_per_atom, refs, ctx.fingerprint_tol, ctx.enthalpy_tol) is None:
                selected.append(c)
        n_pso = int(round((stop - start) * (1.0 - self.fresh_fraction)))
        selected = selected[:n_pso]
        out: list[Proposal] = []
        for slot, i in enumerate(range(start, stop)):
            rng = rng_for(ctx.seed, batch, slot)
            if slot < len(selected):
                prop = self._move(i, batch, selected[slot], ok, rng, w, params, ctx, pso_update)
                if prop is not None:
                    out.append(prop)
                    continue
            out.append(ctx.random_proposal(i, batch, rng))
        return out

    def _move(self, index, batch, particle: Candidate, ok, rng, w, params, ctx, pso_update) -> Proposal | None:
        same = [c for c in ok if len(c.atoms) == len(particle.atoms) and np.array_equal(c.atoms.numbers, particle.atoms.numbers)]
        gbest = min(same, key=lambda c: (c.enthalpy_per_atom, c.index))
        lineage = [c for c in same if c.particle == particle.particle]
        pbest = min(lineage, key=lambda c: (c.enthalpy_per_atom, c.index)) if lineage else particle
        vf = particle.data.get("velocity_frac")
        vl = particle.data.get("velocity_lattice")
        for _ in range(self.max_tries):
            atoms, vf_new, vl_new = pso_update(particle.atoms, vf, vl, pbest.atoms, gbest.atoms, rng, w, params)
            if ctx.generator.checks.ok(atoms):
                return Proposal(
                    index,
                    atoms,
                    batch,
                    "pso",
                    parent_index=particle.index,
                    particle=particle.particle,
                    meta={"pbest": pbest.index, "gbest": gbest.index, "inertia": w},
                    data={"velocity_frac": vf_new, "velocity_lattice": vl_new},
                )
            vf = None if vf is None else 0.5 * np.asarray(vf)
            vl = None if vl is None else 0.5 * np.asarray(vl)
        return None


@dataclass
class GenerativeSearch(SearchMethod):
    """Candidates drawn from a trained model conditioned on composition and pressure
    (:class:`gencrystal.sampling.Generator`), ``batch`` samples per model call with the
    seed of that batch, then relaxed like every other candidate."""

    ckpt: str | None = None
    batch: int = 8
    sampler: str = "fast"
    device: str = "cpu"
    guidance_scale: float = 1.0
    name: str = "generative"

    def __post_init__(self):
        self._generator = None

    def batch_size(self) -> int:
        return self.batch

    def settings(self):
        return {"ckpt": str(self.ckpt), "sampler": self.sampler, "guidance_scale": self.guidance_scale, "batch": self.batch}

    def generator(self):
        if self._generator is None:
            if not self.ckpt:
                raise GencrystalError("method=generative needs a trained checkpoint: method.ckpt=PATH")
            try:
                from gencrystal.sampling import Generator
            except ImportError as exc:  # pragma: no cover - sampling ships with the package
                raise GencrystalError(f"method=generative needs gencrystal.sampling: {exc}") from exc
            self._generator = Generator(
                self.ckpt,
                device=self.device,
                sampler=self.sampler,
                guidance_scale=self.guidance_scale,
                batch_size=max(1, self.batch),
            )
        return self._generator

    def propose(self, batch: int, start: int, stop: int, history: Sequence[Candidate], ctx: SearchContext) -> list[Proposal]:
        gen = self.generator()
        seed = int(np.random.SeedSequence([ctx.seed, batch]).generate_state(1)[0] % (2**31 - 1))
        zs = ctx.formula_units
        frames = gen.sample(
            ctx.generator.reduced.reduced_formula, ctx.pressure_gpa, stop - start, seed=seed, formula_units=list(zs)
        )
        out = []
        for i, atoms in zip(range(start, stop), frames):
            a = sort_by_species(atoms)
            a.info = {}
            a.pbc = True
            out.append(
                Proposal(
                    i,
                    a,
                    batch,
                    "generative",
                    particle=i,
                    meta={"sample_seed": seed, "flagged": bool(atoms.info.get("flagged", False))},
                )
            )
        return out
