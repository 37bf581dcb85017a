"""CHGNet (weights ship in the ``chgnet`` wheel) as a :class:`~gencrystal.potentials.Potential`.

``conf/potential/chgnet.yaml``; a fine-tuned checkpoint: ``potential.path=ft.pth.tar``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.potentials.base import (
    Potential,
    Prediction,
    first_line,
    potential_factory,
    quiet,
    resolve_device,
)

#: Names :func:`load_chgnet` accepts (case-insensitive) and the shipped model each loads.
NAMES = {"chgnet": "0.3.0", "chgnet-0.3.0": "0.3.0", "chgnet-0.2.0": "0.2.0", "chgnet-r2scan": "r2scan"}
#: Atomic numbers CHGNet covers.
ELEMENTS = frozenset(range(1, 95))


def is_checkpoint(state: object) -> bool:
    """True when a loaded ``torch`` object is a CHGNet checkpoint (``{'model': {'model_args': ...}}``)."""
    return (isinstance(state, dict) and isinstance(state.get("model"), dict)
            and "model_args" in state["model"])


@potential_factory
def load_chgnet(name: str = "chgnet", path: str | None = None, device: str | None = "auto") -> Potential:
    """CHGNet: a shipped model by ``name`` or a fine-tuned checkpoint by ``path``.

    Args:
        name: ``chgnet`` (0.3.0), ``chgnet-0.2.0`` or ``chgnet-r2scan``.
        path: a CHGNet checkpoint (``chgnet.trainer.Trainer.save`` format) instead of a shipped model.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``.

    Raises:
        GencrystalError: unknown name, missing or unreadable checkpoint.
    """
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    from gencrystal.potentials.names import KNOWN_NAMES, check_checkpoint

    model_name = NAMES.get(str(name).lower())
    if model_name is None:
        raise GencrystalError(f"unknown potential {name!r}; choose one of {', '.join(KNOWN_NAMES)} or a checkpoint path")
    if path is not None:
        path = check_checkpoint(path)
    dev = resolve_device(device)
    try:
        with quiet():
            if path is None:
                model = CHGNet.load(model_name=model_name, use_device=dev, verbose=False)
            else:
                model = CHGNet.from_file(path).to(dev)
    except Exception as exc:
        raise GencrystalError(f"cannot load CHGNet {'checkpoint ' + repr(path) if path else model_name}: "
                              f"{first_line(exc)}") from exc
    model.eval()
    model.graph_converter.set_isolated_atom_response("ignore")
    level = f"chgnet-{model.version or model_name}" if path is None else f"chgnet-ft-{Path(path).name.split('.')[0]}"

    def make_calculator():
        with quiet():
            return CHGNetCalculator(model=model, use_device=dev, on_isolated_atoms="ignore")

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        from ase import units
        from ase.stress import full_3x3_to_voigt_6_stress

        from gencrystal.structures import to_structure

        graphs = [model.graph_converter(to_structure(a)) for a in atoms_list]
        preds = model.predict_graph([g.to(dev) for g in graphs], task="efs", batch_size=max(1, len(graphs)))
        if isinstance(preds, dict):
            preds = [preds]
        out = []
        for a, p in zip(atoms_list, preds):
            e = float(np.asarray(p["e"]).reshape(())) * (len(a) if model.is_intensive else 1)
            s = np.asarray(p["s"], dtype=float) * units.GPa  # CHGNet: GPa, ASE sign
            out.append(Prediction(e, np.asarray(p["f"], dtype=float), full_3x3_to_voigt_6_stress(s)))
        return out

    return Potential("chgnet", level, make_calculator, predict_batch, device=dev, elements=ELEMENTS)
