"""DFT labels: single points, a hash per structure, and the label store.

A label is an ASE ``Atoms`` whose calculator is a ``SinglePointCalculator`` holding the
DFT ``energy`` (eV), ``forces`` (eV/Å) and ``stress`` (Voigt, eV/Å³, ASE sign), with
``info`` keys ``label_hash``, ``level_of_theory``, ``pressure_gpa`` (the pressure of the
relaxation the frame came from, GPa) and ``iteration``. The store is one extxyz file
(readable by any ASE-based trainer, SevenNet's included), rewritten atomically after
every new label, so a killed loop loses at most the calculation in flight.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from gencrystal.errors import GencrystalError


def structure_hash(atoms: Atoms, level_of_theory: str = "", decimals: int = 4) -> str:
    """A stable hex key of a structure (species, cell and wrapped fractional coordinates
    rounded to ``decimals``) and the level of theory it is labelled at."""
    cell = np.round(np.asarray(atoms.cell.array, dtype=float), decimals) + 0.0
    frac = np.asarray(atoms.get_scaled_positions(wrap=True), dtype=float)
    frac = np.round(np.mod(np.round(frac, decimals), 1.0), decimals) + 0.0
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(cell.tobytes())
    h.update(frac.tobytes())
    h.update(str(level_of_theory).encode())
    return h.hexdigest()[:20]


def dft_single_point(backend, atoms: Atoms) -> Atoms:
    """Energy, forces and stress of ``atoms`` from a DFT backend's ASE calculator.

    ``backend`` is e.g. :class:`gencrystal.dft.GPAWBackend` (anything with
    ``calculator(atoms)`` and ``level_of_theory``). Returns a copy carrying a
    ``SinglePointCalculator``.

    Raises:
        GencrystalError: the calculation failed (SCF not converged, ...), naming the structure.
    """
    work = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    t0 = time.perf_counter()
    try:
        work.calc = backend.calculator(work)
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces(), dtype=float)
        stress = np.array(work.get_stress(voigt=True), dtype=float)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GencrystalError(
            f"DFT single point failed for {atoms.get_chemical_formula()} "
            f"(V = {atoms.get_volume() / len(atoms):.3f} Å³/atom): {type(exc).__name__} {first}"
        ) from exc
    if not (math.isfinite(energy) and np.all(np.isfinite(forces)) and np.all(np.isfinite(stress))):
        raise GencrystalError(f"DFT single point for {atoms.get_chemical_formula()} returned non-finite values")
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str, bool))})
    out.info["dft_wall_s"] = round(time.perf_counter() - t0, 3)
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces, stress=stress)
    return out


class LabelStore:
    """The labelled frames of one loop, in ``path`` (extxyz), keyed by ``label_hash``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.labels: list[Atoms] = []
        if self.path.is_file():
            from ase.io import read

            try:
                self.labels = list(read(self.path, index=":", format="extxyz"))
            except Exception as exc:
                raise GencrystalError(f"cannot read label store {str(self.path)!r}: {exc}") from exc
        self._keys = {str(a.info.get("label_hash")) for a in self.labels}

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, label: Atoms) -> None:
        """Append one label (needs ``info['label_hash']``) and rewrite the file atomically."""
        from gencrystal.io import write_extxyz

        key = str(label.info["label_hash"])
        if key in self._keys:
            return
        self.labels.append(label)
        self._keys.add(key)
        write_extxyz(self.labels, self.path)

    def by_iteration(self) -> dict[int, int]:
        """Number of labels added in each iteration."""
        out: dict[int, int] = {}
        for a in self.labels:
            it = int(a.info.get("iteration", -1))
            out[it] = out.get(it, 0) + 1
        return out


def add_label_to_db(db, label: Atoms, source: str) -> int:
    """Write a label as a structure-database row (schema keys, plus ``label_hash`` and
    ``stress_pressure_gpa``; forces and stress in the row's ``data``). Skips (returns the
    existing row id) when a row with the same ``label_hash`` exists."""
    from gencrystal.db.schema import add_structure
    from gencrystal.units import enthalpy, ev_per_a3_to_gpa

    key = str(label.info["label_hash"])
    for row in db.select(label_hash=key):
        return int(row.id)
    e = float(label.calc.results["energy"])
    stress = np.asarray(label.calc.results["stress"], dtype=float)
    p = float(label.info.get("pressure_gpa", 0.0))
    n = len(label)
    kv: dict[str, Any] = {
        "energy_per_atom": e / n,
        "enthalpy_per_atom": enthalpy(e, label.get_volume(), p) / n,
        "label_hash": key,
        "stress_pressure_gpa": -ev_per_a3_to_gpa(float(stress[:3].mean())),
        "volume_per_atom": label.get_volume() / n,
    }
    # the DFT settings of the label (dft_code, dft_xc, dft_ecut_ev, dft_kpts, ...; see learn.loop.dft_settings)
    kv.update({k: v for k, v in label.info.items() if k.startswith("dft_") and isinstance(v, (str, int, float, bool))})
    data = {"forces": np.asarray(label.calc.results["forces"], dtype=float), "stress": stress}
    return add_structure(
        db, label, pressure_gpa=p, level_of_theory=str(label.info["level_of_theory"]), source=source, data=data, **kv
    )


def labels_from_db(db, keys: Iterable[str]) -> dict[str, Atoms]:
    """Labels already in the database, by ``label_hash`` (used when resuming a loop that was
    killed after the database write but before the store was rewritten)."""
    out: dict[str, Atoms] = {}
    for key in keys:
        for row in db.select(label_hash=key):
            a = row.toatoms()
            e = float(row.energy_per_atom) * len(a)
            a.calc = SinglePointCalculator(
                a, energy=e, forces=np.asarray(row.data["forces"]), stress=np.asarray(row.data["stress"])
            )
            a.info.update(
                {
                    "label_hash": key,
                    "level_of_theory": row.level_of_theory,
                    "pressure_gpa": float(row.pressure_gpa),
                    **{k: v for k, v in row.key_value_pairs.items() if k.startswith("dft_")},
                }
            )
            src = str(row.get("source", ""))
            if src.startswith("learn:"):
                a.info["iteration"] = int(src.split(":")[1])
            out[key] = a
            break
    return out


def read_label_db(db, selection: str | None = None) -> list[Atoms]:
    """Every label row of a label database (rows written by :func:`add_label_to_db`, with
    forces and stress in ``data``) as labelled frames: ``SinglePointCalculator`` with the
    DFT energy (eV), forces (eV/Å) and stress (Voigt eV/Å³); ``info`` keeps the row's
    ``label_hash``, ``level_of_theory``, ``pressure_gpa``, ``source`` and ``dft_*`` settings."""
    out = []
    for row in db.select(selection):
        if "forces" not in row.data or "stress" not in row.data:
            continue
        a = row.toatoms()
        a.calc = SinglePointCalculator(
            a,
            energy=float(row.energy_per_atom) * len(a),
            forces=np.asarray(row.data["forces"], dtype=float),
            stress=np.asarray(row.data["stress"], dtype=float),
        )
        a.info.update(
            {
                k: v
                for k, v in row.key_value_pairs.items()
                if k in ("label_hash", "level_of_theory", "pressure_gpa", "source") or k.startswith("dft_")
            }
        )
        out.append(a)
    return out
