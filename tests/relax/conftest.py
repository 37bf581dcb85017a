"""Fixtures for the relaxation tests: small structures, a cheap EMT potential, CHGNet."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from gencrystal.potentials import Prediction, calculator_potential


class NaNForSome(Calculator):
    """EMT, except it returns NaN energy/forces/stress for structures containing ``poison`` (Z)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, poison: int = 79):
        super().__init__()
        self.inner = EMT()
        self.poison = poison

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.poison in self.atoms.numbers:
            n = len(self.atoms)
            self.results = {"energy": np.nan, "free_energy": np.nan, "forces": np.full((n, 3), np.nan),
                            "stress": np.full(6, np.nan)}
            return
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "free_energy": a.get_potential_energy(),
                        "forces": a.get_forces(), "stress": a.get_stress()}


def looping_potential(calc_cls, name: str):
    """An ASE calculator class wrapped as a Potential, with a looping 'batched' predictor so
    the batched path runs too."""
    pot = calculator_potential(calc_cls, name)

    def predict_batch(atoms_list):
        out = []
        for a in atoms_list:
            b = a.copy()
            b.calc = calc_cls()
            out.append(Prediction(b.get_potential_energy(), b.get_forces(), b.get_stress()))
        return out

    pot.predict_batch = predict_batch
    return pot


@pytest.fixture
def make_looping_potential():
    """:func:`looping_potential` for tests that wrap their own calculator class."""
    return looping_potential


@pytest.fixture
def emt_potential():
    """ASE EMT wrapped as a Potential (one-by-one and batched paths)."""
    return looping_potential(EMT, "emt")


@pytest.fixture
def nan_potential():
    return calculator_potential(NaNForSome, "emt-nan-for-au")


@pytest.fixture(scope="session")
def chgnet():
    pytest.importorskip("chgnet")
    from gencrystal.potentials import load_potential

    return load_potential("chgnet", device="cpu")
