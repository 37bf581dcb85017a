"""Particle-swarm moves on crystal structures, as CALYPSO does them (Wang et al., PRB 82,
094116, 2010).

A particle's position is a relaxed structure: its lattice, represented by the
rotation-free symmetric polar factor ``S`` of the Niggli-reduced cell (Å, see
:mod:`gencrystal.geometry`), and its fractional coordinates ``F``. The update is

    v ← w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x),        x ← x + v

where ``pbest − x`` and ``gbest − x`` are *periodic* displacements: atoms are put in
correspondence species by species (Hungarian assignment on minimum-image Cartesian
distances), after trying the origin shifts that superpose one atom of the rarest
species, and fractional differences are wrapped into [-½, ½).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms


@dataclass
class Move:
    """Displacement from one structure to another (same species order)."""

    frac: np.ndarray  # (N, 3) fractional displacement, wrapped to [-0.5, 0.5)
    lattice: np.ndarray  # (3, 3) change of the symmetric lattice factor, Å
    cost: float  # RMS Cartesian displacement of the matched atoms, Å


def canonical(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numbers, S, F) of a Niggli-reduced, rotation-free copy of ``atoms``.

    ``S`` is the symmetric polar factor of the reduced cell (rows = lattice vectors, Å)
    and ``F`` the fractional coordinates wrapped into [0, 1); the atom order is kept.
    """
    from ase.build.tools import niggli_reduce_cell

    from gencrystal.geometry import polar_symmetric_np

    cell = atoms.cell.array
    _, op = niggli_reduce_cell(cell)
    # op is the integer basis change: the reduced cell in the original frame is opᵀ @ cell
    # (ASE maps scaled positions f -> f @ op⁻ᵀ), so Cartesian positions are unchanged;
    # niggli_reduce_cell's own returned cell is a rotated copy
    reduced = np.asarray(op, dtype=float).T @ cell
    frac = atoms.get_positions() @ np.linalg.inv(reduced)
    frac = frac % 1.0
    return atoms.numbers.copy(), polar_symmetric_np(reduced), frac


def _wrap(d: np.ndarray) -> np.ndarray:
    return d - np.round(d)


def periodic_displacement(numbers: np.ndarray, s_x: np.ndarray, f_x: np.ndarray, s_y: np.ndarray, f_y: np.ndarray) -> Move:
    """The displacement that takes structure x toward structure y (both canonical).

    Atoms are matched per species; the origin shift is chosen among the shifts that put
    an atom of the rarest species of x onto each atom of that species in y (translation
    is a symmetry, so only relative positions matter). Returns the per-atom fractional
    displacement (in x's atom order) and the lattice change ``S_y − S_x``.
    """
    from scipy.optimize import linear_sum_assignment

    species, counts = np.unique(numbers, return_counts=True)
    rare = species[np.argmin(counts)]
    rare_idx = np.flatnonzero(numbers == rare)
    metric_lattice = 0.5 * (s_x + s_y)
    shifts = [np.zeros(3)] + [f_y[j] - f_x[rare_idx[0]] for j in rare_idx]
    best: Move | None = None
    for t in shifts:
        shifted_y = f_y - t
        disp = np.zeros_like(f_x)
        total = 0.0
        for sp in species:
            ix = np.flatnonzero(numbers == sp)
            d = _wrap(shifted_y[ix][None, :, :] - f_x[ix][:, None, :])  # (n, n, 3)
            cart = d @ metric_lattice
            cost = np.einsum("ijk,ijk->ij", cart, cart)
            rows, cols = linear_sum_assignment(cost)
            disp[ix[rows]] = d[rows, cols]
            total += float(cost[rows, cols].sum())
        rms = float(np.sqrt(total / len(numbers)))
        if best is None or rms < best.cost:
            best = Move(frac=disp, lattice=s_y - s_x, cost=rms)
    assert best is not None
    return best


@dataclass
class PSOParams:
    """PSO coefficients (CALYPSO defaults: c1 = c2 = 2, w from 0.9 down to 0.4)."""

    c1: float = 2.0
    c2: float = 2.0
    w_start: float = 0.9
    w_end: float = 0.4
    max_frac_velocity: float = 0.25  # per coordinate, fractional units
    max_lattice_velocity: float = 0.3  # relative to (V/N)^(1/3)·N^(1/3), i.e. the cell size
    kick: float = 0.05  # random fractional velocity when a particle is its own best and at rest

    def inertia(self, generation: int, n_generations: int) -> float:
        """Inertia weight ``w`` decreasing linearly over the generations."""
        if n_generations <= 1:
            return self.w_start
        frac = min(1.0, max(0.0, (generation - 1) / (n_generations - 1)))
        return self.w_start + (self.w_end - self.w_start) * frac


def pso_update(
    particle: Atoms,
    velocity_frac: np.ndarray | None,
    velocity_lattice: np.ndarray | None,
    pbest: Atoms,
    gbest: Atoms,
    rng: np.random.Generator,
    w: float,
    params: PSOParams,
) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """One velocity/position update of ``particle`` toward its personal and the global best.

    All three structures must have the same species order. Returns the new (unrelaxed)
    structure and its velocities (fractional (N, 3), lattice (3, 3) in Å).
    """
    numbers, s_x, f_x = canonical(particle)
    _, s_p, f_p = canonical(pbest)
    _, s_g, f_g = canonical(gbest)
    if not (np.array_equal(numbers, pbest.numbers) and np.array_equal(numbers, gbest.numbers)):
        raise ValueError("PSO update needs structures with the same species order")
    to_p = periodic_displacement(numbers, s_x, f_x, s_p, f_p)
    to_g = periodic_displacement(numbers, s_x, f_x, s_g, f_g)
    vf = np.zeros_like(f_x) if velocity_frac is None or np.shape(velocity_frac) != f_x.shape else np.asarray(velocity_frac, float)
    vl = (
        np.zeros((3, 3))
        if velocity_lattice is None or np.shape(velocity_lattice) != (3, 3)
        else np.asarray(velocity_lattice, float)
    )
    r1, r2 = rng.random(2)
    vf = w * vf + params.c1 * r1 * to_p.frac + params.c2 * r2 * to_g.frac
    vl = w * vl + params.c1 * r1 * to_p.lattice + params.c2 * r2 * to_g.lattice
    if np.abs(vf).max(initial=0.0) < 1e-3:
        vf = vf + rng.normal(0.0, params.kick, size=vf.shape)
    vf = np.clip(vf, -params.max_frac_velocity, params.max_frac_velocity)
    size = abs(np.linalg.det(s_x)) ** (1.0 / 3.0)
    vl = 0.5 * (vl + vl.T)
    norm = np.linalg.norm(vl)
    if norm > params.max_lattice_velocity * size:
        vl = vl * (params.max_lattice_velocity * size / norm)
    new_s = s_x + vl
    new_f = (f_x + vf) % 1.0
    new = Atoms(numbers=numbers, cell=new_s, scaled_positions=new_f, pbc=True)
    return new, vf, vl
