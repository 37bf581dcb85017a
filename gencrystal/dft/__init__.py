"""DFT validation of ML-relaxed structures (GPa everywhere).

Backends (``conf/dft/*.yaml``, Hydra ``_target_``):

- :class:`~gencrystal.dft.gpaw_backend.GPAWBackend` — GPAW plane-wave PBE, runs here;
- :class:`~gencrystal.dft.vasp.VaspInputWriter` — writes VASP inputs (PSTRESS = 10·P kbar).

Quantum ESPRESSO is not offered: Debian's pw.x runs, but no PBE pseudopotential library
can be installed offline (see docs/dft.md).
"""

from gencrystal.dft.gpaw_backend import GPAWBackend
from gencrystal.dft.vasp import VaspInputWriter

__all__ = ["GPAWBackend", "VaspInputWriter"]
