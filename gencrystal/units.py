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

#: The largest pressure any gencrystal command accepts, in GPa (10 TPa). For scale: the
#: centre of the Earth is at ~364 GPa, static diamond-anvil experiments reach ~0.5-1 TPa and
#: laser ramp compression of diamond ~5 TPa. Beyond ~10 TPa the PAW/pseudopotential cores
#: of neighbouring atoms overlap and no ML potential or training set says anything, so a
#: larger value is a typo (or MPa/bar given as GPa), not a study. Inside this limit but
#: outside a model's trained pressures stays a warning (``gencrystal sample``).
MAX_PRESSURE_GPA: float = 10_000.0


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
    infinite, negative, above :data:`MAX_PRESSURE_GPA` or not a number. Units: GPa."""
    try:
        p = float(pressure_gpa)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name}={pressure_gpa!r} is not a number (GPa expected)") from None
    if math.isnan(p) or math.isinf(p):
        raise GencrystalError(f"{name}={pressure_gpa!r} is not a finite number (GPa expected)")
    if p < 0:
        raise GencrystalError(f"{name}={p:g} GPa is negative; gencrystal handles compression only (P >= 0)")
    if p > MAX_PRESSURE_GPA:
        raise GencrystalError(
            f"{name}={p:g} GPa is beyond the physical limit of {MAX_PRESSURE_GPA:g} GPa "
            "(gencrystal.units.MAX_PRESSURE_GPA; pressures are in GPa, not MPa or bar)"
        )
    return p


def enthalpy(energy_ev: float, volume_a3: float, pressure_gpa: float) -> float:
    """Enthalpy H = E + P·V in eV, with E in eV, V in Å³ and P in GPa."""
    return float(energy_ev) + gpa_to_ev_per_a3(pressure_gpa) * float(volume_a3)
