"""A CHGNet committee whose members share one trunk: N readout heads on one fine-tuned CHGNet.

A committee of N complete CHGNet models costs N CHGNet evaluations per relaxation step.
Here the members share every layer of one fine-tuned CHGNet up to the atom features (the
*trunk*: embeddings, message passing, readout norm, the per-element reference energies)
and differ only in CHGNet's readout MLP (``model.mlp``: site energy from the atom
features, eV/atom). One forward pass gives every head's energy, so

- the committee mean (energy eV, forces eV/Å, stress) costs one CHGNet pass: the
  forces and stress are the gradients of the mean energy;
- the energy spread (eV/atom, population std over heads) comes free with it;
- force and stress spreads need one pass per head; they are computed only when asked for
  (``spread="full"``, as the active-learning loop does when it selects frames).

Directory (``checkpoints/hp_committee/`` is the shipped one)::

    committee.json   {"format": "shared-trunk", "trunk": "trunk.pth.tar", "heads": "heads.pt",
                      "n_heads": N, "coverage": {"elements": [...], "pressure_gpa": [lo, hi]}, ...}
    trunk.pth.tar    a complete CHGNet checkpoint (the fine-tuned trunk and its own head)
    heads.pt         {"heads": [state_dict of model.mlp, ...]} (torch.save)

``coverage`` names the elements and the pressure range (GPa) of the DFT labels the
committee was trained on; :meth:`gencrystal.relax.Potential.coverage_warnings` turns a
structure outside it into a one-line warning naming the element or the pressure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
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
    resolve_device,
)

COMMITTEE_FILE = "committee.json"
FORMAT = "shared-trunk"
#: the shipped high-pressure committee, relative to the repository root
SHIPPED_DIR = Path("checkpoints") / "hp_committee"

_CACHE: dict[tuple[str, str], SharedTrunkCommittee] = {}
_LOCK = threading.Lock()


def is_shared_trunk_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a ``committee.json`` of the shared-trunk format."""
    f = Path(path) / COMMITTEE_FILE
    if not f.is_file():
        return False
    try:
        return json.loads(f.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def resolve_committee_dir(path: str | os.PathLike | None) -> Path:
    """A committee directory: ``path`` as given (relative to the working directory), else
    relative to the repository root; ``None`` = the shipped :data:`SHIPPED_DIR`."""
    p = Path(str(path)).expanduser() if path not in (None, "") else SHIPPED_DIR
    if p.is_absolute() or p.exists():
        return p.resolve()
    repo = Path(__file__).resolve().parent.parent.parent
    return (repo / p).resolve() if (repo / p).exists() else p


def head_ensemble(heads: Sequence[Any]):
    """A torch module standing in for CHGNet's ``model.mlp``: runs every head on the atom
    features and returns their mean (or only head ``active`` when that is set); the per-head
    site energies of the last mean call are kept, detached, in ``last`` (heads × atoms × 1)."""
    import torch

    class HeadEnsemble(torch.nn.Module):
        def __init__(self, hs: Sequence[torch.nn.Module]) -> None:
            super().__init__()
            self.heads = torch.nn.ModuleList(list(hs))
            self.active: int | None = None
            self.last: Any = None

        def forward(self, x):
            if self.active is not None:
                self.last = None
                return self.heads[self.active](x)
            stacked = torch.stack([h(x) for h in self.heads])
            self.last = stacked.detach()
            return stacked.mean(dim=0)

    return HeadEnsemble(heads)


@dataclass
class SharedTrunkCommittee:
    """A loaded shared-trunk committee.

    Attributes:
        path: the committee directory.
        model: the CHGNet trunk whose ``mlp`` is the head ensemble.
        meta: the parsed ``committee.json``.
        device: ``cpu`` or ``cuda``.
    """

    path: Path
    model: Any
    meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.model.mlp.heads)

    @property
    def coverage(self) -> dict[str, Any]:
        """``{"elements": [...], "pressure_gpa": [lo, hi]}`` of the training labels."""
        return dict(self.meta.get("coverage") or {})

    def _graph(self, atoms: Atoms):
        from gencrystal.structures import to_structure

        return self.model.graph_converter(to_structure(atoms)).to(self.device)

    def _predict(self, atoms: Atoms, head: int | None):
        ens = self.model.mlp
        ens.active = head
        try:
            with _quiet():
                p = self.model.predict_graph(self._graph(atoms), task="efs")
        finally:
            ens.active = None
        e = float(np.asarray(p["e"]).reshape(()))
        f = np.asarray(p["f"], dtype=float).reshape(len(atoms), 3)
        s = np.asarray(p["s"], dtype=float)
        return e, f, np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]), ens.last

    def predict_mean(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """One pass: mean energy per atom (eV/atom), forces of the mean (N×3, eV/Å), stress
        of the mean (Voigt, GPa, ASE sign) and every head's energy per atom (M,)."""
        with self._lock:
            e, f, s, last = self._predict(atoms, None)
        site = np.asarray(last.cpu(), dtype=float).reshape(len(self), len(atoms))
        per_head = site.sum(axis=1) / len(atoms)
        members = e + per_head - per_head.mean()  # the AtomRef part is common to every head
        return e, f, s, members

    def predict_members(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every head's energy per atom (M,), forces (M,N,3) eV/Å and stress (M,6) GPa
        (one pass per head); the interface of :class:`gencrystal.potentials.committee.Committee`."""
        es, fs, ss = [], [], []
        with self._lock:
            for m in range(len(self)):
                e, f, s, _ = self._predict(atoms, m)
                es.append(e)
                fs.append(f)
                ss.append(s)
        return np.array(es), np.array(fs), np.array(ss)

    def spread(self, atoms: Atoms):
        """The committee's :class:`gencrystal.potentials.committee.Spread` on ``atoms`` (all heads)."""
        from gencrystal.potentials.committee import spread_of

        return spread_of(*self.predict_members(atoms))

    def calculator(self, spread: str = "full") -> SharedTrunkCalculator:
        """An ASE calculator of the committee mean; ``spread="full"`` also puts the force and
        stress spreads in ``results`` (one pass per head), ``"energy"`` only the free energy
        spread."""
        return SharedTrunkCalculator(self, spread=spread)


class SharedTrunkCalculator(Calculator):
    """ASE calculator: committee-mean energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign).

    ``results`` also holds ``energy_std`` (eV/atom) and ``member_energies`` (eV/atom);
    with ``spread="full"`` ``forces_std`` (eV/Å, max over atoms) and ``stress_std`` (GPa,
    max over Voigt components) too.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, committee: SharedTrunkCommittee, spread: str = "full", **kwargs):
        super().__init__(**kwargs)
        if spread not in ("full", "energy"):
            raise GencrystalError(f"spread={spread!r} is not 'full' or 'energy'")
        self.committee = committee
        self.spread_mode = spread

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase import units

        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        e, f, s, members = self.committee.predict_mean(self.atoms)
        self.results = {
            "energy": e * n,
            "free_energy": e * n,
            "forces": f,
            "stress": s * units.GPa,
            "energy_std": float(np.std(members)),
            "member_energies": members,
        }
        if self.spread_mode == "full":
            sp = self.committee.spread(self.atoms)
            self.results.update(forces_std=sp.forces_std, stress_std=sp.stress_std)


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def write_shared_trunk(path: str | os.PathLike, trunk_file: str | os.PathLike, head_states: Sequence[dict], **meta) -> Path:
    """Write the head states (``heads.pt``) and ``committee.json`` (last, atomically) next to
    an existing ``trunk.pth.tar`` in ``path``; returns the directory."""
    import torch

    from gencrystal.io import atomic_write, write_json

    root = Path(path)
    trunk = Path(trunk_file)
    if trunk.parent.resolve() != root.resolve():
        raise GencrystalError(f"trunk {str(trunk)!r} must live in the committee directory {str(root)!r}")
    with atomic_write(root / "heads.pt", "wb") as fh:
        torch.save({"heads": [dict(s) for s in head_states]}, fh)
    write_json(
        {"format": FORMAT, "trunk": trunk.name, "heads": "heads.pt", "n_heads": len(head_states), **meta}, root / COMMITTEE_FILE
    )
    return root


def load_shared_trunk(path: str | os.PathLike | None = None, device: str = "cpu") -> SharedTrunkCommittee:
    """Load a shared-trunk committee directory (cached per process and device).

    Raises:
        GencrystalError: no ``committee.json`` of this format, a missing or unreadable file.
    """
    import copy

    import torch
    from chgnet.model import CHGNet

    root = resolve_committee_dir(path)
    key = (str(root), str(device))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        meta_file = root / COMMITTEE_FILE
        if not meta_file.is_file():
            raise GencrystalError(f"potential directory {str(root)!r} has no {COMMITTEE_FILE}")
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError as exc:
            raise GencrystalError(f"cannot read {str(meta_file)!r}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise GencrystalError(f"{str(meta_file)!r} is not a {FORMAT} committee (format={meta.get('format')!r})")
        trunk_file, heads_file = root / str(meta.get("trunk", "")), root / str(meta.get("heads", ""))
        for f in (trunk_file, heads_file):
            if not f.is_file():
                raise GencrystalError(f"committee file {str(f)!r} does not exist")
        try:
            with _quiet():
                model = CHGNet.from_file(str(trunk_file))
            states = torch.load(heads_file, map_location="cpu", weights_only=True)["heads"]
            heads = []
            for st in states:
                h = copy.deepcopy(model.mlp)
                h.load_state_dict(st)
                heads.append(h)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GencrystalError(f"cannot load committee {str(root)!r}: {first}") from exc
        if not heads:
            raise GencrystalError(f"committee {str(root)!r} has no heads")
        model.mlp = head_ensemble(heads)
        model = model.to(device)
        model.eval()
        model.graph_converter.set_isolated_atom_response("ignore")
        committee = SharedTrunkCommittee(root, model, meta, str(device))
        _CACHE[key] = committee
        return committee


@potential_factory
def load_shared_trunk_potential(path: str | None = None, device: str | None = "auto", spread: str = "energy") -> Potential:
    """The committee at ``path`` (default: the shipped ``checkpoints/hp_committee``) as a
    :class:`gencrystal.potentials.Potential`: the committee mean is the calculator (one CHGNet
    pass per step), the energy spread is in ``calc.results['energy_std']`` (eV/atom), the
    committee itself in :attr:`Potential.committee`; ``coverage`` carries the elements and DFT
    pressures of its labels (warned about by ``relax_structures``).

    ``conf/potential/hp_committee.yaml`` names it (``potential=hp_committee``); like every
    potential it pickles as its config, so Dask workers load it themselves.
    """
    dev = resolve_device(device)
    committee = load_shared_trunk(path, dev)

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        from ase import units

        out = []
        for a in atoms_list:
            e, f, s, _ = committee.predict_mean(a)
            out.append(Prediction(e * len(a), f, s * units.GPa))
        return out

    label = str(committee.meta.get("level_of_theory") or f"chgnet-committee-{committee.path.name}")
    return Potential(
        "chgnet-committee",
        label,
        lambda: committee.calculator(spread),
        predict_batch,
        device=dev,
        coverage=committee.coverage,
        committee=committee,
    )
