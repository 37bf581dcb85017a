"""A committee (ensemble) of fine-tuned CHGNet models: mean prediction plus spread.

A committee lives in a directory::

    committee/
      committee.json        # {"members": ["member0.pth.tar", ...], "energy_offsets": {...}, ...}
      member0.pth.tar       # CHGNet checkpoints written by chgnet.trainer.Trainer.save
      member1.pth.tar

Every member is a complete CHGNet checkpoint that :func:`gencrystal.potentials.load_potential`
loads on its own (``potential.path=committee/member0.pth.tar``); the directory as a whole
is loaded by :func:`load_committee_potential` (``conf/potential/committee.yaml``: mean
prediction, spread in ``calc.results``).

Spread definitions (all over the committee members, population standard deviation):

- ``energy_std``: of the energy per atom, eV/atom;
- ``forces_std``: max over atoms of sqrt(Σ_xyz var(F_i)), eV/Å (DP-GEN's max force
  deviation);
- ``stress_std``: max over the six Voigt components of std(σ), GPa.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from gencrystal.errors import GencrystalError
from gencrystal.potentials.base import (
    Potential,
    Prediction,
    potential_factory,
    quiet,
    resolve_device,
)

COMMITTEE_FILE = "committee.json"


@dataclass
class Spread:
    """Committee disagreement on one structure (see the module docstring for definitions).

    Attributes:
        energy_std: eV/atom.
        forces_std: eV/Å (max over atoms).
        stress_std: GPa (max over Voigt components).
    """

    energy_std: float
    forces_std: float
    stress_std: float

    def as_dict(self) -> dict[str, float]:
        return {"energy_std": self.energy_std, "forces_std": self.forces_std, "stress_std": self.stress_std}


def spread_of(energies_per_atom: np.ndarray, forces: np.ndarray, stresses_gpa: np.ndarray) -> Spread:
    """Spread of member predictions.

    Args:
        energies_per_atom: (M,) eV/atom.
        forces: (M, N, 3) eV/Å.
        stresses_gpa: (M, 6) Voigt, GPa.
    """
    e = float(np.std(energies_per_atom))
    f_var = np.var(forces, axis=0).sum(axis=-1)  # (N,)
    f = float(np.sqrt(f_var.max())) if f_var.size else 0.0
    s = float(np.std(stresses_gpa, axis=0).max())
    return Spread(e, f, s)


@dataclass
class Committee:
    """Loaded committee members (CHGNet models) and the metadata of ``committee.json``.

    Attributes:
        path: the committee directory.
        models: CHGNet models, in member order.
        meta: the parsed ``committee.json`` (``energy_offsets`` eV/atom per element that
            were *added to the DFT energies* before fine-tuning, ``n_labels``, ...).
    """

    path: Path
    models: list[Any]
    meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def __len__(self) -> int:
        return len(self.models)

    def predict_members(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every member's energy per atom (M,), forces (M,N,3) eV/Å and stress (M,6) in
        GPa (Voigt xx yy zz yz xz xy, ASE sign: positive = tensile)."""
        from gencrystal.structures import to_structure

        graph = self.models[0].graph_converter(to_structure(atoms)).to(self.device)
        es, fs, ss = [], [], []
        from ase.stress import full_3x3_to_voigt_6_stress

        for model in self.models:
            p = model.predict_graph(graph, task="efs")
            es.append(float(np.asarray(p["e"]).reshape(())))
            fs.append(np.asarray(p["f"], dtype=float))
            ss.append(full_3x3_to_voigt_6_stress(np.asarray(p["s"], dtype=float)))
        return np.array(es), np.array(fs).reshape(len(self.models), len(atoms), 3), np.array(ss)

    def spread(self, atoms: Atoms) -> Spread:
        """The committee's :class:`Spread` on ``atoms``."""
        return spread_of(*self.predict_members(atoms))

    def calculator(self) -> CommitteeCalculator:
        """An ASE calculator giving the committee mean and, in ``results``, the spread."""
        return CommitteeCalculator(self)


class CommitteeCalculator(Calculator):
    """ASE calculator: committee-mean energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign).

    ``calc.results`` also holds ``energy_std`` (eV/atom), ``forces_std`` (eV/Å),
    ``stress_std`` (GPa), and ``member_energies`` (eV/atom, one per member).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, committee: Committee, **kwargs):
        super().__init__(**kwargs)
        self.committee = committee

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase import units

        super().calculate(atoms, properties, system_changes)
        e, f, s = self.committee.predict_members(self.atoms)
        n = len(self.atoms)
        sp = spread_of(e, f, s)
        self.results = {
            "energy": float(e.mean() * n),
            "free_energy": float(e.mean() * n),
            "forces": f.mean(axis=0),
            "stress": s.mean(axis=0) * units.GPa,
            "energy_std": sp.energy_std,
            "forces_std": sp.forces_std,
            "stress_std": sp.stress_std,
            "member_energies": e,
        }


def is_committee_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding a ``committee.json``."""
    return (Path(path) / COMMITTEE_FILE).is_file()


def write_committee_meta(path: str | os.PathLike, members: Sequence[str], **meta) -> Path:
    """Write ``committee.json`` atomically (the last step of building a committee)."""
    from gencrystal.io import write_json

    target = Path(path) / COMMITTEE_FILE
    write_json({"members": list(members), **meta}, target)
    return target


def load_committee(path: str | os.PathLike, device: str = "cpu") -> Committee:
    """Load a committee directory (see the module docstring).

    Raises:
        GencrystalError: no ``committee.json``, a missing member, or an unreadable checkpoint.
    """
    from chgnet.model import CHGNet

    root = Path(path).expanduser().resolve()
    meta_file = root / COMMITTEE_FILE
    if not meta_file.is_file():
        raise GencrystalError(f"committee directory {str(path)!r} has no {COMMITTEE_FILE}")
    try:
        meta = json.loads(meta_file.read_text())
        members = list(meta["members"])
    except Exception as exc:
        raise GencrystalError(f"cannot read {str(meta_file)!r}: {exc}") from exc
    if not members:
        raise GencrystalError(f"committee {str(path)!r} lists no members")
    models = []
    for name in members:
        f = root / name
        if not f.is_file():
            raise GencrystalError(f"committee member {str(f)!r} does not exist")
        try:
            with quiet():
                model = CHGNet.from_file(str(f)).to(device)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GencrystalError(f"cannot load committee member {str(f)!r}: {first}") from exc
        model.eval()
        model.graph_converter.set_isolated_atom_response("ignore")
        models.append(model)
    return Committee(root, models, meta, device)


@potential_factory
def load_committee_potential(path: str, device: str | None = "auto") -> Potential:
    """The committee at ``path`` as a :class:`~gencrystal.potentials.Potential` (committee mean;
    ``level_of_theory`` from ``committee.json`` or ``chgnet-committee-<dir name>``), usable by
    ``relax_structures``, searches and database builds (``conf/potential/committee.yaml``:
    ``potential=committee potential.path=DIR``).

    Like every potential it pickles as its config (path, device), so Dask workers load it themselves.
    """
    committee = load_committee(path, resolve_device(device))

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        from ase import units

        out = []
        for a in atoms_list:
            e, f, s = committee.predict_members(a)
            out.append(Prediction(float(e.mean() * len(a)), f.mean(axis=0), s.mean(axis=0) * units.GPa))
        return out

    label = committee.meta.get("level_of_theory") or f"chgnet-committee-{committee.path.name}"
    return Potential("chgnet-committee", label, committee.calculator, predict_batch, device=committee.device)
