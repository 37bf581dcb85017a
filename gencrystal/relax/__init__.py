"""Machine-learning pre-relaxation under pressure (GPa everywhere).

Public API::

    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures, RelaxResult
    pot = load_potential("chgnet")          # or "sevenn", or a fine-tuned checkpoint path
    results = relax_structures(atoms_list, pressure_gpa=50.0, potential=pot, optimizer="FIRE",
                               fmax=0.05, steps=300)       # list[RelaxResult], same order
"""

from gencrystal.relax.ase_relax import RelaxGuard, relax_one
from gencrystal.relax.engine import relax_structures
from gencrystal.relax.result import RelaxResult

__all__ = [
    "RelaxGuard",
    "RelaxResult",
    "relax_one",
    "relax_structures",
]
