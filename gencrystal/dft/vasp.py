"""VASP input writing for users with a licence (gencrystal does not run VASP).

pymatgen's ``MPRelaxSet`` with the Cond-CDVAE settings: ``PSTRESS = 10·P`` kbar
(:func:`gencrystal.units.gpa_to_kbar`), ``ISMEAR 0``, ``LREAL False``, ``ISYM 0``
(optimisation steps comparable across structures), PBE_54 POTCARs with ``W_sv``.
Without a configured POTCAR library (``PMG_VASP_PSP_DIR``) a ``POTCAR.spec`` (the
POTCAR symbols) is written instead of ``POTCAR``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.structures import to_structure
from gencrystal.units import check_pressure, gpa_to_kbar

if TYPE_CHECKING:
    from pymatgen.io.vasp.sets import UserPotcarFunctional


@dataclass
class VaspInputWriter:
    """``conf/dft/vasp.yaml``: writes one VASP relaxation folder per structure.

    Attributes:
        nsw: ionic steps (NSW); <= 1 makes a single-point (SCF) run.
        isym: VASP ISYM (0: no symmetry, as Cond-CDVAE recommends for comparable runs).
        ediff / ediffg: electronic / ionic convergence (None: MPRelaxSet's).
        kspacing: VASP KSPACING in Å⁻¹ (None: MPRelaxSet's k-point density).
        potcar_functional: POTCAR set (``PBE_54``).
        user_incar_settings: any further INCAR tags.
    """

    nsw: int = 99
    isym: int = 0
    ediff: float | None = None
    ediffg: float | None = None
    kspacing: float | None = None
    potcar_functional: UserPotcarFunctional = "PBE_54"
    user_incar_settings: dict[str, Any] = field(default_factory=dict)

    name = "vasp"
    runs_locally = False

    @property
    def level_of_theory(self) -> str:
        return "vasp-pbe"

    def incar_settings(self, pressure_gpa: float) -> dict[str, Any]:
        """The INCAR overrides for a relaxation at ``pressure_gpa`` (GPa)."""
        p = check_pressure(pressure_gpa)
        inc: dict[str, Any] = {
            "PSTRESS": gpa_to_kbar(p),
            "ISMEAR": 0,
            "SIGMA": 0.05,
            "LREAL": False,
            "ISYM": int(self.isym),
            "NSW": int(self.nsw),
        }
        if self.nsw <= 1:
            inc.update({"IBRION": -1, "ISIF": 2})
        if self.ediff is not None:
            inc["EDIFF"] = float(self.ediff)
        if self.ediffg is not None:
            inc["EDIFFG"] = float(self.ediffg)
        if self.kspacing is not None:
            inc["KSPACING"] = float(self.kspacing)
        inc.update(dict(self.user_incar_settings))
        return inc

    def write_inputs(self, atoms: Atoms, pressure_gpa: float, folder: str | os.PathLike) -> Path:
        """Write INCAR/POSCAR/KPOINTS/POTCAR(.spec) for ``atoms`` at ``pressure_gpa`` into ``folder``."""
        from pymatgen.core import SETTINGS
        from pymatgen.io.vasp.sets import MPRelaxSet

        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vis = MPRelaxSet(
                to_structure(atoms),
                user_incar_settings=self.incar_settings(pressure_gpa),
                user_potcar_functional=self.potcar_functional,
                user_potcar_settings={"W": "W_sv"},
                user_kpoints_settings={},  # none: the set's own k-points (pymatgen turns None into {} too)
            )
            spec = not SETTINGS.get("PMG_VASP_PSP_DIR")
            try:
                vis.write_input(str(tmp), potcar_spec=spec)
            except Exception as exc:
                raise GencrystalError(f"cannot write VASP inputs for {folder.name}: {exc}") from exc
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder
