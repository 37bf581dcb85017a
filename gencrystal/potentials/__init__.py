"""Machine-learning interatomic potentials behind one interface (units: eV, Å, eV/Å³; GPa at interfaces).

Public API::

    from gencrystal.potentials import build_potential, load_potential
    pot = build_potential({"_target_": "gencrystal.potentials.chgnet.load_chgnet", "device": "cpu"})
    pot = load_potential("sevenn")                 # the same by name; or a checkpoint path
    pot.predict(atoms_list)                         # list[Prediction]: eV, eV/Å, eV/Å³ (Voigt, ASE sign)
    atoms.calc = pot.calculator()                   # an ASE calculator

Built-ins (``conf/potential/*.yaml``): ``chgnet`` (:mod:`gencrystal.potentials.chgnet`),
``sevenn`` (:mod:`gencrystal.potentials.sevenn`), ``committee`` (a fine-tuned CHGNet
committee, :mod:`gencrystal.potentials.committee`). A new potential is one module with a
factory returning a :class:`Potential` and one YAML naming it (``docs/potentials.md``).
"""

from gencrystal.potentials.base import (
    Potential,
    Prediction,
    build_potential,
    calculator_potential,
    potential_factory,
)
from gencrystal.potentials.names import KNOWN_NAMES, as_potential, load_potential

__all__ = [
    "KNOWN_NAMES",
    "Potential",
    "Prediction",
    "as_potential",
    "build_potential",
    "calculator_potential",
    "load_potential",
    "potential_factory",
]
