"""SevenNet (weights ship in the ``sevenn`` wheel) as a :class:`~gencrystal.potentials.Potential`.

``conf/potential/sevenn.yaml``; a fine-tuned checkpoint: ``potential.path=checkpoint.pth``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

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

#: Names :func:`load_sevenn` accepts (case-insensitive) and the shipped model each loads.
NAMES = {
    "sevenn": "7net-0", "sevenn-0": "7net-0", "7net-0": "7net-0", "sevennet-0": "7net-0",
    "sevenn-l3i5": "7net-l3i5", "7net-l3i5": "7net-l3i5",
}


def is_checkpoint(state: object) -> bool:
    """True when a loaded ``torch`` object is a SevenNet checkpoint (``config`` + ``model_state_dict``)."""
    return isinstance(state, dict) and "config" in state and "model_state_dict" in state


@potential_factory
def load_sevenn(name: str = "sevenn", path: str | None = None, device: str | None = "auto",
                modal: str | None = None) -> Potential:
    """SevenNet: a shipped model by ``name`` or a fine-tuned checkpoint by ``path``.

    Args:
        name: ``sevenn`` (SevenNet-0) or ``sevenn-l3i5``.
        path: a SevenNet checkpoint instead of a shipped model.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``.
        modal: the modal of a multi-fidelity checkpoint.

    Raises:
        GencrystalError: unknown name, missing or unreadable checkpoint.
    """
    import warnings

    import torch
    from sevenn import _keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.calculator import SevenNetCalculator
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from sevenn.util import load_checkpoint
    from torch_geometric.loader.dataloader import Collater

    from gencrystal.potentials.names import KNOWN_NAMES, check_checkpoint

    model_name = NAMES.get(str(name).lower())
    if model_name is None:
        raise GencrystalError(f"unknown potential {name!r}; choose one of {', '.join(KNOWN_NAMES)} or a checkpoint path")
    if path is not None:
        path = check_checkpoint(path)
    dev = resolve_device(device)
    source = path or model_name
    try:
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cp = load_checkpoint(source)
            single = cp.build_model()
            batched = copy.deepcopy(single)  # a second instance: the calculator switches its copy to single-graph mode
    except Exception as exc:
        raise GencrystalError(f"cannot load SevenNet {source!r}: {first_line(exc)}") from exc
    cutoff = float(cp.config[KEY.CUTOFF])
    batched.set_is_batch_data(True)
    batched.eval_type_map = torch.tensor(True)
    batched.to(dev).eval()
    level = ("sevenn-" + model_name.replace("7net-", "")) if path is None else f"sevenn-ft-{Path(path).name.split('.')[0]}"

    def make_calculator():
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SevenNetCalculator(model=single, file_type="model_instance", device=dev, modal=modal,
                                      sevennet_config=cp.config)

    def predict_batch(atoms_list: Sequence[Atoms]) -> list[Prediction]:
        data_list = []
        for a in atoms_list:
            d = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, cutoff, with_shift=False))
            if modal:
                d[KEY.DATA_MODALITY] = modal
            data_list.append(d)
        batch = Collater([], follow_batch=None, exclude_keys=None)(data_list).to(dev)
        output = batched(batch)
        energies = output[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
        forces = output[KEY.PRED_FORCE].detach().cpu().numpy()
        # SevenNet: (xx yy zz xy yz zx), positive = compressive -> ASE Voigt (xx yy zz yz xz xy), positive = tensile
        stress = -output[KEY.PRED_STRESS].detach().cpu().numpy()[:, [0, 1, 2, 4, 5, 3]]
        out, start = [], 0
        for i, a in enumerate(atoms_list):
            n = len(a)
            out.append(Prediction(float(energies[i]), forces[start:start + n].astype(float), stress[i].astype(float)))
            start += n
        return out

    elements = frozenset(int(z) for z in cp.config[KEY.TYPE_MAP])
    return Potential("sevenn", level, make_calculator, predict_batch, device=dev, elements=elements)
