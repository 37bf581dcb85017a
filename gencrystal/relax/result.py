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
        # extxyz cannot hold empty strings (``key=`` swallows the next key): omit them.
        return {k: v for k, v in d.items() if not (isinstance(v, str) and v == "")}


def result_from_atoms(atoms: Atoms) -> RelaxResult:
    """Rebuild a :class:`RelaxResult` from an ``Atoms`` whose info holds :meth:`RelaxResult.info`
    (a frame of ``relaxed.extxyz`` or of a resume checkpoint)."""
    info = dict(atoms.info)
    if "energy" not in info and atoms.calc is not None and "energy" in atoms.calc.results:
        info["energy"] = float(atoms.calc.results["energy"])  # ASE's extxyz reader moves it there
    known = {
        "id",
        "energy",
        "energy_per_atom",
        "enthalpy_per_atom",
        "volume_per_atom",
        "pressure_gpa",
        "stress_pressure_gpa",
        "converged",
        "steps",
        "error",
        "potential",
        "level_of_theory",
        "rmsd_from_input",
        "space_group",
        "formula",
        "natoms",
        "wall_s",
    }

    def f(key: str) -> float:
        try:
            return float(info.get(key, math.nan))
        except (TypeError, ValueError):
            return math.nan

    clean = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    res = RelaxResult(
        atoms=clean,
        energy=f("energy"),
        energy_per_atom=f("energy_per_atom"),
        enthalpy_per_atom=f("enthalpy_per_atom"),
        volume_per_atom=f("volume_per_atom"),
        pressure_gpa=f("pressure_gpa"),
        converged=bool(info.get("converged", False)),
        steps=int(info.get("steps", 0)),
        error=(str(info["error"]) or None) if info.get("error") else None,
        level_of_theory=str(info.get("level_of_theory", info.get("potential", ""))),
        rmsd_from_input=f("rmsd_from_input"),
        stress_pressure_gpa=f("stress_pressure_gpa"),
        id=str(info.get("id", "")),
        space_group=str(info.get("space_group", "")),
        wall_s=f("wall_s"),
        extra={k: v for k, v in info.items() if k not in known},
    )
    clean.info.update(res.info())
    return res
