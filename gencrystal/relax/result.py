"""The outcome of one structure's relaxation (MLP or DFT)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms


@dataclass
class RelaxResult:
    """One relaxed structure. Units: eV, Å, GPa.

    Attributes:
        atoms: the relaxed structure (the last geometry reached when it failed), with
            :meth:`info` copied into ``atoms.info``.
        energy: total energy, eV (NaN when never evaluated).
        energy_per_atom: eV/atom.
        enthalpy_per_atom: (E + P·V)/N at the target pressure, eV/atom.
        volume_per_atom: Å³/atom.
        pressure_gpa: the target pressure, GPa.
        converged: True when the force/stress criterion was met within the step limit.
        steps: optimiser steps taken.
        error: None on success; a one-line reason otherwise (NaN energy, volume guard,
            not converged, calculator exception, SCF failure).
        level_of_theory: e.g. ``chgnet-0.3.0``, ``sevenn-0``, ``gpaw-pbe-pw400``.
        rmsd_from_input: RMS displacement of the atoms from the input, Å (fractional
            displacements, net translation removed, measured in the final cell).
        stress_pressure_gpa: −tr(σ)/3 of the final geometry, GPa (≈ pressure_gpa when
            converged).
        id: the input's identifier.
        space_group: international symbol (spglib, symprec 0.1 Å), '' if unknown.
        wall_s: seconds spent.
    """

    atoms: Atoms
    energy: float = math.nan
    energy_per_atom: float = math.nan
    enthalpy_per_atom: float = math.nan
    volume_per_atom: float = math.nan
    pressure_gpa: float = 0.0
    converged: bool = False
    steps: int = 0
    error: str | None = None
    level_of_theory: str = ""
    rmsd_from_input: float = math.nan
    stress_pressure_gpa: float = math.nan
    id: str = ""
    space_group: str = ""
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the relaxation converged without error."""
        return self.error is None and self.converged

    def info(self) -> dict[str, Any]:
        """The scalar fields as a flat dict (for extxyz info, JSON and ASE-db rows)."""
        d = {
            "id": self.id,
            "energy": self.energy,
            "energy_per_atom": self.energy_per_atom,
            "enthalpy_per_atom": self.enthalpy_per_atom,
            "volume_per_atom": self.volume_per_atom,
            "pressure_gpa": self.pressure_gpa,
            "stress_pressure_gpa": self.stress_pressure_gpa,
            "converged": bool(self.converged),
            "steps": int(self.steps),
            "error": self.error or "",
            "potential": self.level_of_theory,
            "level_of_theory": self.level_of_theory,
            "rmsd_from_input": self.rmsd_from_input,
            "space_group": self.space_group,
            "formula": self.atoms.get_chemical_formula(mode="metal") if len(self.atoms) else "",
            "natoms": len(self.atoms),
            "wall_s": round(float(self.wall_s), 3),
        }
        d.update(self.extra)
        return d
