"""VASP runs: one run folder, a single output file, or a tree of run folders.

Each run folder is one source file: its ``vasprun.xml`` (or ``vasprun.xml.gz``/``.bz2``),
read with pymatgen's :class:`~pymatgen.io.vasp.outputs.Vasprun`; when a folder has no
vasprun.xml, its ``OUTCAR`` is read with ASE (``vasp-out``) and its ``INCAR`` with
pymatgen's :class:`~pymatgen.io.vasp.inputs.Incar`. Per run one record:

- the final structure and the final energy E (vasprun: ``final_energy``, the σ→0 energy;
  OUTCAR: ASE's potential energy), eV;
- pressure from ``PSTRESS`` (kbar, VASP's unit) converted to GPa (``PSTRESS/10``;
  absent = 0 GPa), enthalpy per atom (E + P·V)/N;
- ``converged``: vasprun's electronic and ionic convergence; for OUTCAR, whether VASP
  wrote "reached required accuracy" (relaxations) or the run finished (single points);
- ``relaxed``: an ionic relaxation (``IBRION`` 1/2/3 and ``NSW`` > 1) that converged;
- level of theory: pymatgen's ``run_type`` in lower case (``pbe``, ``pbe+u``, ``r2scan``,
  ``pbesol``...; an unset ``GGA`` with PBE POTCARs is ``pbe``), or from the INCAR tags.

Unconverged runs are imported with ``converged=false`` unless ``require_converged``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

from gencrystal.db.importing import BadRow, ImportRecord, SourceReader, level_from_incar
from gencrystal.errors import GencrystalError

VASPRUN_NAMES = ("vasprun.xml", "vasprun.xml.gz", "vasprun.xml.bz2")
OUTCAR_NAMES = ("OUTCAR", "OUTCAR.gz", "OUTCAR.bz2")


class VaspRuns(SourceReader):
    """VASP run folders under ``path`` (a run folder, a tree of them, or one vasprun.xml/OUTCAR)."""

    kind = "vasp"

    def __init__(
        self,
        path: str,
        level_of_theory: str | None = None,
        pressure_gpa: float | None = None,
        label: str | None = None,
        require_converged: bool = False,
    ):
        super().__init__(path, level_of_theory, pressure_gpa, label)
        self.require_converged = bool(require_converged)

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        out = []
        for folder in sorted({self.path, *(p for p in self.path.rglob("*") if p.is_dir())}):
            found = next((folder / n for n in VASPRUN_NAMES if (folder / n).is_file()), None)
            if found is None:
                found = next((folder / n for n in OUTCAR_NAMES if (folder / n).is_file()), None)
            if found is not None:
                out.append(found)
        return out

    def file_key(self, file: Path) -> str:
        return self.rel_key(file.parent)

    def _ident(self, file: Path) -> str:
        return self.file_key(file).split(":", 1)[1]

    def read(self, file: Path) -> Iterator[ImportRecord | BadRow]:
        try:
            rec = self._read_vasprun(file) if file.name.startswith("vasprun") else self._read_outcar(file)
        except ValueError as exc:
            yield BadRow(0, str(exc))
            return
        if self.require_converged and rec.converged is False:
            yield BadRow(0, "run did not converge (require_converged=true)")
            return
        yield rec

    def _read_vasprun(self, file: Path) -> ImportRecord:
        from pymatgen.io.vasp.outputs import Vasprun

        from gencrystal.structures import to_atoms

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vr = Vasprun(str(file), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
        except Exception as exc:  # pymatgen raises many types for truncated/corrupt XML
            raise GencrystalError(
                f"cannot read {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        params = {**dict(vr.parameters or {}), **dict(vr.incar or {})}
        energy = float(vr.final_energy)
        if not math.isfinite(energy):
            raise ValueError("vasprun.xml has no final energy")
        atoms = to_atoms(vr.final_structure)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                run_type = str(vr.run_type)
            except Exception:
                run_type = ""
        level = _level_from_run_type(run_type, list(vr.potcar_symbols or []), params)
        converged = bool(vr.converged)
        return ImportRecord(
            atoms=atoms,
            ident=self._ident(file),
            pressure_gpa=_pstress_gpa(params),
            energy_per_atom=energy / len(atoms),
            level_of_theory=level,
            relaxed=_is_relaxation(params) and converged,
            converged=converged,
            extra={"vasp_run_type": run_type or "unknown", "ionic_steps": len(vr.ionic_steps)},
        )

    def _read_outcar(self, file: Path) -> ImportRecord:
        from ase import Atoms
        from ase.io import read
        from pymatgen.io.vasp.inputs import Incar

        incar_path = file.parent / "INCAR"
        if not incar_path.is_file():
            raise ValueError(f"no vasprun.xml and no INCAR beside {file.name} (PSTRESS unknown)")
        try:
            incar = dict(Incar.from_file(str(incar_path)))
        except Exception as exc:
            raise ValueError(f"cannot read INCAR: {exc}") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms = read(str(file), format="vasp-out", index=-1)
            if not isinstance(atoms, Atoms):  # index=-1: the last ionic step
                raise ValueError("no ionic step")
            energy = float(atoms.get_potential_energy())
        except Exception as exc:
            raise GencrystalError(
                f"cannot read {str(file)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        text = _tail_text(file)
        relaxation = _is_relaxation(incar)
        converged = ("reached required accuracy" in text) if relaxation else ("General timing and accounting" in text)
        atoms = atoms.copy()
        atoms.calc = None
        atoms.info = {}
        return ImportRecord(
            atoms=atoms,
            ident=self._ident(file),
            pressure_gpa=_pstress_gpa(incar),
            energy_per_atom=energy / len(atoms),
            level_of_theory=level_from_incar(incar),
            relaxed=relaxation and converged,
            converged=converged,
        )


def _tail_text(file: Path, n_bytes: int = 200_000) -> str:
    from monty.io import zopen

    with zopen(str(file), "rt") as fh:
        text = fh.read()
    return text[-n_bytes:]


def _pstress_gpa(params: dict) -> float:
    """PSTRESS (kbar) as GPa; an absent PSTRESS is 0 GPa (VASP's default)."""
    from gencrystal.units import KBAR_PER_GPA

    try:
        return float(params.get("PSTRESS", 0.0) or 0.0) / KBAR_PER_GPA
    except (TypeError, ValueError):
        raise ValueError(f"PSTRESS={params.get('PSTRESS')!r} is not a number (kbar expected)") from None


def _is_relaxation(params: dict) -> bool:
    try:
        return int(params.get("IBRION", -1)) in (1, 2, 3) and int(params.get("NSW", 0)) > 1
    except (TypeError, ValueError):
        return False


def _level_from_run_type(run_type: str, potcar_symbols: list[str], params: dict) -> str:
    """pymatgen's run type as a label; "GGA" (GGA tag unset: the POTCARs decide) is pbe
    with PBE POTCARs, and the INCAR decides when pymatgen cannot tell."""
    rt = run_type.strip()
    if not rt or rt.lower().startswith("unknown"):
        return level_from_incar(params, potcar_symbols)
    if rt.upper().startswith("GGA"):
        base = "pbe" if (not potcar_symbols or any("PBE" in s for s in potcar_symbols)) else "gga"
        rt = base + rt[3:]
    return rt.lower()
