"""GPAW plane-wave DFT: variable-cell relaxation at a pressure (GPa).

Uses GPAW's PW mode with PAW datasets from the ``gpaw-data`` wheel (nothing is
downloaded), ASE's ``FrechetCellFilter(scalar_pressure=P·GPa)`` and BFGS (or FIRE).
The k-point grid is fixed from the *input* cell and ``kpt_density`` so it does not jump
during the relaxation; the plane-wave cutoff is fixed too (constant-cutoff Pulay stress
is small at the cutoffs used for production, but visible at test-size cutoffs).

An SCF that does not converge, or any other GPAW failure, is recorded on the returned
:class:`~gencrystal.relax.result.RelaxResult` with the calculator's message.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ase import Atoms

from gencrystal.relax.result import RelaxResult


@dataclass
class GPAWBackend:
    """GPAW PW-mode settings (``conf/dft/gpaw.yaml``).

    Attributes:
        xc: exchange-correlation functional (``PBE``).
        ecut: plane-wave cutoff, eV.
        kpt_density: k-points per Å⁻¹ along each reciprocal vector (ASE's
            ``kptdensity2monkhorstpack``), evaluated once on the input cell; Γ-centred.
        kpts: an explicit k-grid ``[n1, n2, n3]`` (overrides ``kpt_density``).
        smearing: Fermi-Dirac width, eV.
        optimizer: ``BFGS`` or ``FIRE`` (ASE's).
        fmax: convergence on FrechetCellFilter's generalised forces, eV/Å (the stress
            residual is ≈ fmax/(V/N), so 0.01 eV/Å gives < 0.3 GPa for V/N > 6 Å³).
        steps: maximum optimiser steps.
        scf_maxiter: SCF iteration limit (non-convergence is a recorded failure).
        symmetry: ``off`` (like VASP ISYM=0: nothing constrains the relaxation) or ``on``
            (GPAW's symmetry reduction of k-points, faster, keeps the input symmetry).
        txt: GPAW log file (None: silent).
    """

    xc: str = "PBE"
    ecut: float = 400.0
    kpt_density: float = 4.0
    kpts: Sequence[int] | None = None
    smearing: float = 0.1
    optimizer: str = "BFGS"
    fmax: float = 0.01
    steps: int = 100
    scf_maxiter: int = 300
    symmetry: str = "off"
    txt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    name = "gpaw"
    runs_locally = True

    @property
    def level_of_theory(self) -> str:
        """Database label, e.g. ``gpaw-pbe-pw400``."""
        return f"gpaw-{self.xc.lower()}-pw{int(round(self.ecut))}"

    def kgrid(self, atoms: Atoms) -> list[int]:
        """The Γ-centred k-grid used for ``atoms`` (explicit ``kpts`` or from ``kpt_density``)."""
        if self.kpts is not None:
            return [int(k) for k in self.kpts]
        from ase.calculators.calculator import kptdensity2monkhorstpack

        return [int(k) for k in kptdensity2monkhorstpack(atoms, self.kpt_density, False)]

    def calculator(self, atoms: Atoms):
        """A GPAW calculator for ``atoms`` (k-grid from its cell)."""
        from gpaw import GPAW, PW, FermiDirac

        kw: dict[str, Any] = dict(
            mode=PW(self.ecut),
            xc=self.xc,
            kpts={"size": self.kgrid(atoms), "gamma": True},
            occupations=FermiDirac(self.smearing),
            txt=self.txt,
            maxiter=int(self.scf_maxiter),
        )
        if str(self.symmetry).lower() == "off":
            kw["symmetry"] = "off"
        kw.update(dict(self.extra))
        return GPAW(**kw)

    def relax(self, atoms: Atoms, pressure_gpa: float, sid: str = "") -> RelaxResult:
        """Variable-cell relaxation of ``atoms`` at ``pressure_gpa`` (GPa); never raises."""
        from gencrystal.relax.ase_relax import relax_one

        t0 = time.perf_counter()
        atoms = gpaw_orientation(atoms)
        try:
            calc = self.calculator(atoms)
        except Exception as exc:
            return _failed(atoms, pressure_gpa, self.level_of_theory, sid, f"GPAW set-up failed: {_msg(exc)}", t0)
        res = relax_one(
            atoms, calc, pressure_gpa, self.level_of_theory, optimizer=self.optimizer, fmax=self.fmax, steps=self.steps, sid=sid
        )
        if res.error and "ConvergenceError" in res.error:
            res.error = f"SCF not converged within scf_maxiter={self.scf_maxiter} ({res.error})"
            res.atoms.info["error"] = res.error
        res.extra.update({"kpts": "x".join(map(str, self.kgrid(atoms))), "ecut_ev": float(self.ecut)})
        res.atoms.info.update(res.info())
        return res

    def single_point(self, atoms: Atoms) -> tuple[float, float]:
        """Energy (eV) and pressure −tr(σ)/3 (GPa) of ``atoms`` as given."""
        from gencrystal.units import ev_per_a3_to_gpa

        a = gpaw_orientation(atoms)
        a.calc = self.calculator(a)
        return float(a.get_potential_energy()), -ev_per_a3_to_gpa(float(a.get_stress()[:3].mean()))


def gpaw_orientation(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` that GPAW accepts: an orthorhombic cell with a negative diagonal entry
    (a Niggli-reduced cubic cell can come as diag(−a, −a, a)) is rotated to ASE's standard form.

    GPAW's ASCII picture of the atoms in its log sizes its canvas from the cell diagonal and
    raises ``ValueError: negative dimensions are not allowed`` for such a cell (pyrite-type SiO2
    failed so before its first SCF step). The rotation is proper (the handedness is +1 when the
    picture is drawn), so energies, stresses and fractional coordinates are unchanged.
    """
    import numpy as np

    out = atoms.copy()
    cell = out.cell
    if cell.rank == 3 and cell.orthorhombic and (np.diag(cell[:]) < 0).any() and cell.handedness == 1:
        standard, _ = cell.standard_form()
        out.set_cell(standard, scale_atoms=True)
    return out


def _msg(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _failed(atoms: Atoms, pressure_gpa: float, level: str, sid: str, error: str, t0: float) -> RelaxResult:
    a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    res = RelaxResult(
        atoms=a,
        pressure_gpa=pressure_gpa,
        error=error,
        level_of_theory=level,
        id=sid,
        volume_per_atom=a.get_volume() / len(a),
        wall_s=time.perf_counter() - t0,
        energy=math.nan,
    )
    a.info.update(res.info())
    return res
