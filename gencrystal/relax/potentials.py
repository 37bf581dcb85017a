"""Machine-learning interatomic potentials behind one interface.

A :class:`Potential` gives two things:

- :meth:`Potential.calculator` — an ASE calculator (energy eV, forces eV/Å, stress
  eV/Å³ in ASE's sign convention) for the one-by-one ASE relaxation path;
- :meth:`Potential.predict` — energies, forces and stresses for a *list* of structures
  in as few model calls as the potential allows (CHGNet and SevenNet batch graphs),
  used by the batched FIRE relaxation.

:func:`load_potential` builds one from a name (``chgnet``, ``sevenn``, ...) or from the
path of a fine-tuned CHGNet / SevenNet checkpoint, and caches it per process. A
potential pickles as its *spec* (name, path, device), so Dask workers re-load it once
from their own cache instead of receiving the weights.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError

#: Names accepted by :func:`load_potential` (case-insensitive) and the model each loads.
CHGNET_NAMES = {"chgnet": "0.3.0", "chgnet-0.3.0": "0.3.0", "chgnet-0.2.0": "0.2.0", "chgnet-r2scan": "r2scan"}
SEVENN_NAMES = {
    "sevenn": "7net-0", "sevenn-0": "7net-0", "7net-0": "7net-0", "sevennet-0": "7net-0",
    "sevenn-l3i5": "7net-l3i5", "7net-l3i5": "7net-l3i5",
}
#: shipped committees by name -> their directory (relative to the repository root)
SHIPPED_COMMITTEES = {"hp_committee": "checkpoints/hp_committee", "hp-committee": "checkpoints/hp_committee"}
KNOWN_NAMES = sorted(set(CHGNET_NAMES) | set(SEVENN_NAMES) | set(SHIPPED_COMMITTEES))

_CACHE: dict[tuple, "Potential"] = {}
_LOCK = threading.Lock()


@dataclass
class Prediction:
    """One structure's potential output: energy (eV), forces (N×3, eV/Å), stress
    (Voigt xx yy zz yz xz xy, eV/Å³, ASE sign: positive = tensile)."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray


@dataclass
class Potential:
    """A loaded potential.

    Attributes:
        name: family, ``chgnet`` / ``sevenn`` / anything for a wrapped calculator.
        level_of_theory: the database label, e.g. ``chgnet-0.3.0``, ``sevenn-0``.
        make_calculator: returns a fresh ASE calculator sharing the loaded model.
        predict_batch: optional batched predictor ``list[Atoms] -> list[Prediction]``;
            without one, :meth:`predict` loops over the calculator.
        spec: ``(name, path, device)`` to re-load it in another process (None: not
            picklable by spec, in-process use only).
    """

    name: str
    level_of_theory: str
    make_calculator: Callable[[], Any]
    predict_batch: Callable[[Sequence[Atoms]], list[Prediction]] | None = None
    spec: tuple | None = None
    device: str = "cpu"
    elements: frozenset[int] | None = None  # atomic numbers the model covers (None: unknown)
    #: elements and pressure range (GPa) of the DFT labels a fine-tuned potential was trained on:
    #: ``{"elements": ["Li", ...], "pressure_gpa": [lo, hi]}`` (None: not declared)
    coverage: dict | None = None
    #: the committee behind a committee potential (spreads on demand), else None
    committee: Any = field(default=None, repr=False)
    _calc: Any = field(default=None, repr=False)

    def coverage_warnings(self, atoms_list: Sequence[Atoms], pressure_gpa: float) -> list[str]:
        """One line per way ``atoms_list`` at ``pressure_gpa`` (GPa) leaves :attr:`coverage`:
        the elements outside its labels, named, and a pressure outside its label range."""
        if not self.coverage:
            return []
        out = []
        known = set(self.coverage.get("elements") or [])
        outside = sorted({s for a in atoms_list for s in a.get_chemical_symbols()} - known) if known else []
        if outside:
            out.append(f"{self.level_of_theory}: element {', '.join(outside)} is outside its DFT labels "
                       f"({', '.join(sorted(known))}); its predictions for {', '.join(outside)} are untested against DFT")
        lo_hi = self.coverage.get("pressure_gpa")
        if lo_hi and not float(lo_hi[0]) - 1e-9 <= float(pressure_gpa) <= float(lo_hi[1]) + 1e-9:
            out.append(f"{self.level_of_theory}: pressure {float(pressure_gpa):g} GPa is outside its DFT labels "
                       f"({float(lo_hi[0]):g}-{float(lo_hi[1]):g} GPa)")
        return out

    def unsupported(self, atoms: Atoms) -> str | None:
        """A one-line reason when ``atoms`` holds an element the model does not cover, else None."""
        if self.elements is None:
            return None
        from ase.data import chemical_symbols

        bad = sorted({int(z) for z in atoms.numbers} - self.elements)
        if not bad:
            return None
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in bad)
        return f"element {names} not covered by {self.level_of_theory}"

    def calculator(self):
        """An ASE calculator for this potential (one per call; the model is shared)."""
        return self.make_calculator()

    def predict(self, atoms_list: Sequence[Atoms], batch_size: int = 32) -> list[Prediction]:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³, Voigt) for many structures.

        Uses the potential's batched model call when it has one (``batch_size``
        structures per call), else one calculator call per structure.
        """
        out: list[Prediction] = []
        if self.predict_batch is not None:
            for start in range(0, len(atoms_list), batch_size):
                out.extend(self.predict_batch(list(atoms_list[start:start + batch_size])))
            return out
        if self._calc is None:
            self._calc = self.make_calculator()
        for atoms in atoms_list:
            a = atoms.copy()
            a.calc = self._calc
            self._calc.reset()
            out.append(Prediction(float(a.get_potential_energy()), np.array(a.get_forces()),
                                  np.array(a.get_stress(voigt=True))))
        return out

    def __reduce__(self):
        if self.spec is None:
            raise TypeError(f"potential {self.level_of_theory!r} was built in-process and cannot be sent to a worker")
        return (load_potential, self.spec)


def _resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise GencrystalError(f"device={device!r} requested but no CUDA GPU is available")
    return str(device)


@contextlib.contextmanager
def _quiet():
    """Silence the banners potentials print while loading."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_potential(name: str | os.PathLike = "chgnet", path: str | os.PathLike | None = None,
                   device: str | None = "auto", modal: str | None = None) -> Potential:
    """Load (once per process) a potential by name or by checkpoint path.

    Args:
        name: ``chgnet`` (CHGNet 0.3.0, default), ``chgnet-r2scan``, ``sevenn``
            (SevenNet-0), ``sevenn-l3i5``, ``hp_committee`` (the shipped high-pressure
            committee, ``checkpoints/hp_committee``), the path of a CHGNet / SevenNet checkpoint,
            or a committee directory written by ``gencrystal learn`` (committee mean).
        path: checkpoint of a fine-tuned model of the family ``name`` names
            (``name="chgnet", path="ft.pth.tar"``).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``.
        modal: SevenNet multi-fidelity modal, when the checkpoint has several.

    Raises:
        GencrystalError: unknown name, missing or unreadable checkpoint.
    """
    name = str(name)
    if path is None and name.lower() in SHIPPED_COMMITTEES:  # the shipped shared-trunk committee
        from gencrystal.potentials.shared_trunk import load_shared_trunk_potential

        return load_shared_trunk_potential(SHIPPED_COMMITTEES[name.lower()], device=device)
    committee_dir = Path(str(path if path is not None else name)).expanduser()
    if committee_dir.is_dir():  # a committee of fine-tuned members written by `gencrystal learn`
        from gencrystal.potentials.shared_trunk import is_shared_trunk_dir, load_shared_trunk_potential

        if is_shared_trunk_dir(committee_dir):
            return load_shared_trunk_potential(committee_dir, device=device)
        from gencrystal.learn.committee import load_committee_potential

        return load_committee_potential(committee_dir, device=device)
    if path is None and (os.sep in name or Path(name).suffix in (".pth", ".tar", ".pt", ".ckpt")):
        path, name = name, "auto"
    key_name = name.lower()
    if path is None and key_name not in KNOWN_NAMES:
        raise GencrystalError(f"unknown potential {name!r}; choose one of {', '.join(KNOWN_NAMES)} or a checkpoint path")
    if path is not None:
        path = str(Path(path).expanduser().resolve())
        if not Path(path).is_file():
            raise GencrystalError(f"potential checkpoint {str(path)!r} does not exist")
    dev = _resolve_device(device)
    key = (key_name, path, dev, modal)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        family = key_name.split("-")[0] if key_name != "auto" else _guess_family(path)
        if family in ("chgnet",):
            pot = _load_chgnet(CHGNET_NAMES.get(key_name, "0.3.0"), path, dev)
        elif family in ("sevenn", "7net", "sevennet"):
            pot = _load_sevenn(SEVENN_NAMES.get(key_name, "7net-0"), path, dev, modal)
        else:
            raise GencrystalError(f"unknown potential {name!r}; choose one of {', '.join(KNOWN_NAMES)} or a checkpoint path")
        pot.spec = (name, path, device, modal)
        _CACHE[key] = pot
        return pot


def _guess_family(path: str) -> str:
    """Tell a CHGNet checkpoint from a SevenNet one by its stored keys."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise GencrystalError(f"cannot read potential checkpoint {path!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict) and "model_args" in state["model"]:
        return "chgnet"
    if isinstance(state, dict) and "config" in state and "model_state_dict" in state:
        return "sevenn"
    raise GencrystalError(f"potential checkpoint {path!r} is neither a CHGNet nor a SevenNet checkpoint")


def _load_chgnet(model_name: str, path: str | None, device: str) -> Potential:
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    try:
        with _quiet():
            if path is None:
                model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
            else:
                model = CHGNet.from_file(path).to(device)
    except GencrystalError:
        raise
    except Exception as exc:
        raise GencrystalError(f"cannot load CHGNet {'checkpoint ' + repr(path) if path else model_name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    model.eval()
    model.graph_converter.set_isolated_atom_response("ignore")
    level = f"chgnet-{model.version or model_name}" if path is None else f"chgnet-ft-{Path(path).name.split('.')[0]}"

    def make_calculator():
        with _quiet():
            return CHGNetCalculator(model=model, use_device=device, on_isolated_atoms="ignore")

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        from ase import units

        from gencrystal.structures import to_structure

        graphs = [model.graph_converter(to_structure(a)) for a in atoms_list]
        preds = model.predict_graph([g.to(device) for g in graphs], task="efs", batch_size=max(1, len(graphs)))
        if isinstance(preds, dict):
            preds = [preds]
        out = []
        for a, p in zip(atoms_list, preds):
            e = float(np.asarray(p["e"]).reshape(())) * (len(a) if model.is_intensive else 1)
            s = np.asarray(p["s"], dtype=float) * units.GPa
            out.append(Prediction(e, np.asarray(p["f"], dtype=float), _full_to_voigt(s)))
        return out

    return Potential("chgnet", level, make_calculator, predict_batch, device=device, elements=frozenset(range(1, 95)))


def _full_to_voigt(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    if s.shape == (6,):
        return s
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def _load_sevenn(model_name: str, path: str | None, device: str, modal: str | None) -> Potential:
    import warnings

    import torch
    from sevenn import _keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.calculator import SevenNetCalculator
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from sevenn.util import load_checkpoint
    from torch_geometric.loader.dataloader import Collater

    source = path or model_name
    try:
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cp = load_checkpoint(source)
            single = cp.build_model()
            batched = copy.deepcopy(single)  # a second instance: the calculator switches its copy to single-graph mode
    except Exception as exc:
        raise GencrystalError(f"cannot load SevenNet {source!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    cutoff = float(cp.config[KEY.CUTOFF])
    batched.set_is_batch_data(True)
    batched.eval_type_map = torch.tensor(True)
    batched.to(device).eval()
    level = ("sevenn-" + model_name.replace("7net-", "")) if path is None else f"sevenn-ft-{Path(path).name.split('.')[0]}"

    def make_calculator():
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SevenNetCalculator(model=single, file_type="model_instance", device=device, modal=modal,
                                      sevennet_config=cp.config)

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        data_list = []
        for a in atoms_list:
            d = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, cutoff, with_shift=False))
            if modal:
                d[KEY.DATA_MODALITY] = modal
            data_list.append(d)
        batch = Collater([], follow_batch=None, exclude_keys=None)(data_list).to(device)
        output = batched(batch)
        energies = output[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
        forces = output[KEY.PRED_FORCE].detach().cpu().numpy()
        stress = -output[KEY.PRED_STRESS].detach().cpu().numpy()[:, [0, 1, 2, 4, 5, 3]]
        out, start = [], 0
        for i, a in enumerate(atoms_list):
            n = len(a)
            out.append(Prediction(float(energies[i]), forces[start:start + n].astype(float), stress[i].astype(float)))
            start += n
        return out

    elements = frozenset(int(z) for z in cp.config[KEY.TYPE_MAP])
    return Potential("sevenn", level, make_calculator, predict_batch, device=device, elements=elements)


def calculator_potential(make_calculator: Callable[[], Any], level_of_theory: str, name: str = "calculator") -> Potential:
    """Wrap any ASE calculator factory as a :class:`Potential` (in-process only; no batching).

    Useful for tests (ASE's EMT, a NaN-returning wrapper) and for potentials gencrystal
    does not know by name.
    """
    return Potential(name, level_of_theory, make_calculator, None, spec=None)
