"""Unit conversions and checks, in one place.

Pressure is GPa at every interface of gencrystal; ASE calculators and cell filters
work in eV/Å³, VASP in kbar. Convert only through these functions.
"""

from __future__ import annotations

import math

from ase import units as _ase_units

from gencrystal.errors import GencrystalError

#: 1 GPa expressed in eV/Å³ (≈ 0.0062415).
GPA_IN_EV_PER_A3: float = float(_ase_units.GPa)
#: 1 GPa in kbar (VASP's PSTRESS unit).
KBAR_PER_GPA: float = 10.0


def gpa_to_ev_per_a3(pressure_gpa: float) -> float:
    """Convert a pressure from GPa to eV/Å³."""
    return float(pressure_gpa) * GPA_IN_EV_PER_A3


def ev_per_a3_to_gpa(pressure_ev_a3: float) -> float:
    """Convert a pressure (or stress component) from eV/Å³ to GPa."""
    return float(pressure_ev_a3) / GPA_IN_EV_PER_A3


def gpa_to_kbar(pressure_gpa: float) -> float:
    """Convert GPa to kbar (VASP ``PSTRESS = 10 * P[GPa]``)."""
    return float(pressure_gpa) * KBAR_PER_GPA


def check_pressure(pressure_gpa, name: str = "pressure") -> float:
    """Return ``pressure_gpa`` as a float, or raise a one-line error if it is NaN,
    infinite, negative or not a number. Units: GPa."""
    try:
        p = float(pressure_gpa)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name}={pressure_gpa!r} is not a number (GPa expected)") from None
    if math.isnan(p) or math.isinf(p):
        raise GencrystalError(f"{name}={pressure_gpa!r} is not a finite number (GPa expected)")
    if p < 0:
        raise GencrystalError(f"{name}={p:g} GPa is negative; gencrystal handles compression only (P >= 0)")
    return p


def enthalpy(energy_ev: float, volume_a3: float, pressure_gpa: float) -> float:
    """Enthalpy H = E + P·V in eV, with E in eV, V in Å³ and P in GPa."""
    return float(energy_ev) + gpa_to_ev_per_a3(pressure_gpa) * float(volume_a3)
