"""One crystal ↔ one ``torch_geometric.data.Data``; a ``Batch`` → a list of ASE ``Atoms``.

The per-structure layout (a contract the model, sampling and evaluation code rely on):

=================  ============  ====================================================
attribute          shape/dtype   meaning
=================  ============  ====================================================
``frac_coords``    [n, 3] f32    fractional coordinates in [0, 1)
``atom_types``     [n] long      atomic numbers Z
``lattice``        [1, 3, 3] f32 lattice, rows = lattice vectors, Å (symmetric polar
                                 factor after the default transform)
``num_atoms``      [1] long      n
``num_nodes``      int           n (so PyG batches nodes correctly)
``pressure``       [1] f32       pressure, GPa
``composition``    [1, 100] f32  element fractions, index Z-1 (sums to 1)
``material_id``    str           identifier (a list of str in a batch)
=================  ============  ====================================================

``torch_geometric.loader.DataLoader`` batches these into ``batch.batch`` (node → graph
index), ``lattice`` [B, 3, 3], ``num_atoms`` [B], ``pressure`` [B] and
``composition`` [B, 100]; nothing needs torch-scatter or torch-cluster.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms
from pymatgen.core import Structure
from torch_geometric.data import Batch, Data

from gencrystal.data.transforms import CrystalTransform, wrap_frac
from gencrystal.elements import MAX_Z
from gencrystal.errors import GencrystalError
from gencrystal.units import check_pressure

_DEFAULT_TRANSFORM = CrystalTransform()


def composition_vector(atom_types: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """Element fractions as a [1, 100] float32 tensor (index Z-1) for atomic numbers ``atom_types``."""
    z = torch.as_tensor(np.asarray(atom_types), dtype=torch.long).reshape(-1)
    if z.numel() == 0:
        raise GencrystalError("cannot build a composition vector for zero atoms")
    if int(z.min()) < 1 or int(z.max()) > MAX_Z:
        raise GencrystalError(f"atomic number outside 1..{MAX_Z}: {z.tolist()}")
    counts = torch.bincount(z - 1, minlength=MAX_Z).to(torch.float32)
    return (counts / counts.sum()).unsqueeze(0)


def arrays_to_data(
    lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray, pressure_gpa: float = 0.0, material_id: str = ""
) -> Data:
    """A :class:`Data` from already-canonical arrays (lattice Å [3,3], frac [n,3], Z [n], GPa)."""
    n = int(len(numbers))
    return Data(
        frac_coords=torch.from_numpy(wrap_frac(frac)),
        atom_types=torch.as_tensor(np.asarray(numbers), dtype=torch.long),
        lattice=torch.as_tensor(np.asarray(lattice), dtype=torch.float32).reshape(1, 3, 3),
        num_atoms=torch.tensor([n], dtype=torch.long),
        num_nodes=n,
        pressure=torch.tensor([float(pressure_gpa)], dtype=torch.float32),
        composition=composition_vector(numbers),
        material_id=str(material_id),
    )


def structure_to_data(
    structure_or_atoms: Structure | Atoms,
    pressure_gpa: float = 0.0,
    material_id: str = "",
    transform: CrystalTransform | None = None,
) -> Data:
    """Canonicalise one crystal (default: Niggli + polar lattice) and return its :class:`Data`.

    Args:
        structure_or_atoms: a pymatgen Structure or a periodic ASE Atoms.
        pressure_gpa: the pressure label in GPa (finite, >= 0).
        material_id: identifier kept on the Data.
        transform: preprocessing; ``CrystalTransform()`` (Niggli, no primitive, polar) by default.
    """
    pressure_gpa = check_pressure(pressure_gpa)
    lattice, frac, numbers = (transform or _DEFAULT_TRANSFORM).arrays(structure_or_atoms)
    return arrays_to_data(lattice, frac, numbers, pressure_gpa, material_id)


def _atoms(frac: torch.Tensor, types: torch.Tensor, lattice: torch.Tensor, info: dict) -> Atoms:
    cell = lattice.detach().cpu().to(torch.float64).reshape(3, 3).numpy()
    f = frac.detach().cpu().to(torch.float64).numpy()
    atoms = Atoms(numbers=types.detach().cpu().numpy().astype(int), scaled_positions=f, cell=cell, pbc=True)
    atoms.info.update(info)
    return atoms


def data_to_atoms(data: Data) -> Atoms:
    """The ASE Atoms of one :class:`Data` (cell = stored lattice, positions = f @ L in float64).

    ``atoms.info`` carries ``material_id`` and ``pressure_gpa``.
    """
    info: dict[str, Any] = {"material_id": str(getattr(data, "material_id", "") or "")}
    if getattr(data, "pressure", None) is not None:
        info["pressure_gpa"] = float(data.pressure.reshape(-1)[0])
    return _atoms(data.frac_coords, data.atom_types, data.lattice, info)


def batch_to_atoms(batch: Batch | Data) -> list[Atoms]:
    """Split a batch (``num_atoms`` [B], ``lattice`` [B,3,3], node-level ``frac_coords``/``atom_types``) into Atoms.

    Works for batches built by the DataLoader and for model outputs that set the same
    attributes; ``material_id`` (list) and ``pressure`` [B] go into ``atoms.info`` when present.
    """
    num_atoms = batch.num_atoms.reshape(-1).detach().cpu().tolist()
    lattices = batch.lattice.reshape(-1, 3, 3)
    if len(num_atoms) != lattices.shape[0]:
        raise GencrystalError(f"batch has {len(num_atoms)} num_atoms but {lattices.shape[0]} lattices")
    if sum(num_atoms) != batch.frac_coords.shape[0]:
        raise GencrystalError(f"batch num_atoms sum to {sum(num_atoms)} but frac_coords has {batch.frac_coords.shape[0]} rows")
    ids = getattr(batch, "material_id", None)
    if isinstance(ids, str):
        ids = [ids]
    pressure = getattr(batch, "pressure", None)
    pressure = pressure.reshape(-1).detach().cpu().tolist() if pressure is not None else None
    out: list[Atoms] = []
    start = 0
    for i, n in enumerate(num_atoms):
        info: dict[str, Any] = {}
        if ids is not None:
            info["material_id"] = str(ids[i])
        if pressure is not None:
            info["pressure_gpa"] = float(pressure[i])
        out.append(_atoms(batch.frac_coords[start : start + n], batch.atom_types[start : start + n], lattices[i], info))
        start += n
    return out
