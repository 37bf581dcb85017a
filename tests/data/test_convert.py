"""Canonical form and Data conversion: round trips, idempotence, batching (no data files needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation
from torch_geometric.loader import DataLoader

from gencrystal.data.convert import batch_to_atoms, composition_vector, data_to_atoms, structure_to_data
from gencrystal.data.transforms import CrystalTransform, wrap_frac
from gencrystal.errors import GencrystalError
from gencrystal.geometry import polar_symmetric_np


def _random_crystal(seed: int, n: int = 6) -> Structure:
    """A triclinic cell with a skewed, rotated, non-reduced lattice and random sites."""
    rng = np.random.default_rng(seed)
    lat = Lattice.from_parameters(*rng.uniform(3.0, 7.0, 3), *rng.uniform(65.0, 115.0, 3)).matrix
    # make it non-reduced (c -> c + 2a - b) and rotate the Cartesian frame
    lat = np.array([lat[0], lat[1], lat[2] + 2 * lat[0] - lat[1]])
    lat = lat @ Rotation.random(random_state=seed).as_matrix().T
    species = rng.choice(["Li", "O", "Si", "Mg", "Fe"], size=n).tolist()
    return Structure(lat, species, rng.uniform(-0.5, 1.5, size=(n, 3)))


def _metric(lattice: np.ndarray) -> np.ndarray:
    return lattice @ lattice.T


@pytest.mark.parametrize("seed", range(5))
def test_structure_data_structure_round_trip_without_niggli(seed):
    """Only the polar transform: the lattice equals the original up to rotation, positions to 1e-6."""
    s = _random_crystal(seed)
    d = structure_to_data(s, pressure_gpa=12.5, material_id=f"x{seed}", transform=CrystalTransform(niggli=False))
    atoms = data_to_atoms(d)
    L0 = s.lattice.matrix
    L1 = atoms.cell.array
    np.testing.assert_allclose(L1, L1.T, atol=1e-6)  # symmetric polar factor
    np.testing.assert_allclose(_metric(L1), _metric(L0), rtol=1e-6, atol=1e-5)
    # the rotation Q with L0 = S Q maps the original Cartesian positions onto the stored ones
    q = np.linalg.solve(L1, L0)
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-6)
    frac0 = s.frac_coords % 1.0
    np.testing.assert_allclose(np.cos(2 * np.pi * (atoms.get_scaled_positions(wrap=False) - frac0)), 1.0, atol=1e-10)
    cart_rotated_back = atoms.get_positions() @ q
    expected = (np.asarray(d.frac_coords, dtype=np.float64)) @ L0
    np.testing.assert_allclose(cart_rotated_back, expected, atol=1e-5)
    assert atoms.get_chemical_symbols() == [sp.symbol for sp in s.species]
    assert atoms.info["material_id"] == f"x{seed}" and atoms.info["pressure_gpa"] == pytest.approx(12.5)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_through_a_batch_reproduces_the_canonical_crystal(seed):
    """structure -> Data -> Batch -> Atoms: canonical lattice and fractional positions to 1e-6."""
    structures = [_random_crystal(seed + 10 * k, n=3 + k) for k in range(3)]
    transform = CrystalTransform()
    data = [structure_to_data(s, pressure_gpa=float(k), material_id=f"m{k}") for k, s in enumerate(structures)]
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch.lattice.shape == (3, 3, 3) and batch.num_atoms.tolist() == [3, 4, 5]
    assert batch.pressure.shape == (3,) and batch.composition.shape == (3, 100)
    assert batch.batch.tolist() == [0] * 3 + [1] * 4 + [2] * 5
    back = batch_to_atoms(batch)
    for k, (s, atoms) in enumerate(zip(structures, back)):
        lat, frac, numbers = transform.arrays(s)
        np.testing.assert_allclose(atoms.cell.array, lat, atol=1e-6 * np.abs(lat).max())
        diff = atoms.get_scaled_positions(wrap=False) - frac
        np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-6)
        assert atoms.numbers.tolist() == numbers.tolist()
        assert atoms.info == {"material_id": f"m{k}", "pressure_gpa": float(k)}
        # same crystal as the input (Niggli + polar only change the basis and orientation)
        from gencrystal.matching import make_matcher
        from gencrystal.structures import to_structure

        assert make_matcher("strict").fit(s, to_structure(atoms))


def _symmetric_crystals() -> list[Structure]:
    """High-symmetry cells, where Niggli's basis choice is ambiguous (ties in lengths/angles)."""
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    mgo = Structure(Lattice.hexagonal(3.2, 5.1), ["Mg", "O"], [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5]])
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return [si, mgo, nacl, si.get_primitive_structure(), nacl.get_primitive_structure()]


@pytest.mark.parametrize("which", [f"random-{k}" for k in range(6)] + [f"symmetric-{k}" for k in range(5)])
def test_niggli_and_polar_transforms_are_idempotent(which):
    kind, k = which.split("-")
    s = _random_crystal(int(k)) if kind == "random" else _symmetric_crystals()[int(k)]
    transform = CrystalTransform()
    lat1, frac1, z1 = transform.arrays(s)
    again = Structure(lat1, z1.tolist(), frac1)
    lat2, frac2, z2 = transform.arrays(again)
    np.testing.assert_allclose(lat2, lat1, atol=1e-8)
    diff = frac2 - frac1
    np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-8)
    assert z2.tolist() == z1.tolist()
    np.testing.assert_allclose(polar_symmetric_np(lat1), lat1, atol=1e-10)


def test_niggli_reduces_a_skewed_cell_to_the_same_metric_as_its_reduced_form():
    s = _random_crystal(3)
    lat, _, _ = CrystalTransform().arrays(s)
    reduced = s.get_reduced_structure("niggli").lattice
    np.testing.assert_allclose(sorted(np.linalg.norm(lat, axis=1)), sorted(reduced.abc), rtol=1e-8)
    assert abs(np.linalg.det(lat)) == pytest.approx(s.volume, rel=1e-8)


def test_primitive_option_reduces_a_conventional_fcc_cell():
    fcc = Structure(Lattice.cubic(4.05), ["Al"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    assert structure_to_data(fcc).num_atoms.item() == 4
    d = structure_to_data(fcc, transform=CrystalTransform(primitive=True))
    assert d.num_atoms.item() == 1
    assert abs(np.linalg.det(d.lattice[0].double().numpy())) == pytest.approx(4.05**3 / 4, rel=1e-5)


def test_data_layout_and_dtypes():
    atoms = Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * 3.0, pbc=True)
    d = structure_to_data(atoms, pressure_gpa=5.0, material_id="nacl")
    assert d.frac_coords.dtype == torch.float32 and d.frac_coords.shape == (2, 3)
    assert d.atom_types.dtype == torch.long and d.atom_types.tolist() == [11, 17]
    assert d.lattice.shape == (1, 3, 3) and d.lattice.dtype == torch.float32
    assert d.num_atoms.tolist() == [2] and d.num_nodes == 2
    assert d.pressure.tolist() == [5.0] and d.material_id == "nacl"
    assert d.composition.shape == (1, 100)
    assert d.composition[0, 10].item() == pytest.approx(0.5) and d.composition[0, 16].item() == pytest.approx(0.5)
    assert d.composition.sum().item() == pytest.approx(1.0)


def test_frac_coords_are_strictly_below_one_in_float32():
    f = wrap_frac(np.array([[0.99999999, -1e-9, 1.0], [-0.25, 2.5, 0.3]]))
    assert f.dtype == np.float32 and (f >= 0).all() and (f < 1).all()
    np.testing.assert_allclose(f, [[0.0, 0.0, 0.0], [0.75, 0.5, 0.3]], atol=1e-7)


def test_composition_vector_counts_fractions_at_index_z_minus_1():
    v = composition_vector([8, 8, 14])
    assert v[0, 7].item() == pytest.approx(2 / 3) and v[0, 13].item() == pytest.approx(1 / 3)


def test_bad_inputs_raise_one_line_errors():
    s = _random_crystal(0)
    with pytest.raises(GencrystalError, match="negative"):
        structure_to_data(s, pressure_gpa=-1.0)
    with pytest.raises(GencrystalError, match="not a finite"):
        structure_to_data(s, pressure_gpa=float("nan"))
    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    with pytest.raises(GencrystalError, match="disordered"):
        structure_to_data(disordered)


def test_dataset_stats_closed_form_values_and_json_round_trip():
    from gencrystal.data.stats import DatasetStats

    num_atoms = np.array([2, 2, 4, 8])
    volumes = np.array([20.0, 24.0, 40.0, 40.0])  # 10, 12, 10, 5 Å³/atom
    pressures = np.array([0.0, 0.0, 30.0, 600.0])
    types = np.array([3, 3, 8, 8, 14, 14, 14, 8] + [1] * 8)
    st = DatasetStats.compute(num_atoms, volumes, pressures, types, name="t", split="train",
                              pressure_bins=[0.0, 10.0, 100.0])
    assert st.num_atoms_hist == {2: 2, 4: 1, 8: 1} and st.max_atoms == 8 and st.n_atoms_total == 16
    assert st.volume_per_atom_mean == pytest.approx(37.0 / 4) and st.volume_per_atom_std == pytest.approx(np.std([10, 12, 10, 5]))
    bins = st.volume_per_atom_by_pressure
    assert [b["count"] for b in bins] == [2, 1, 1] and bins[2]["hi"] is None
    assert bins[0]["mean"] == pytest.approx(11.0) and bins[1]["mean"] == pytest.approx(10.0) and bins[2]["mean"] == pytest.approx(5.0)
    assert st.volume_per_atom_at(5.0) == pytest.approx(11.0) and st.volume_per_atom_at(1000.0) == pytest.approx(5.0)
    assert st.pressure_min == 0.0 and st.pressure_max == 600.0 and st.pressure_mean == pytest.approx(157.5)
    assert st.element_counts == {1: 8, 3: 2, 8: 3, 14: 3}
    assert st.element_frequencies[1] == pytest.approx(0.5)
    n, p = st.num_atoms_distribution()
    assert n.tolist() == [2, 4, 8] and p.tolist() == pytest.approx([0.5, 0.25, 0.25])
    import json

    assert DatasetStats.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    empty = DatasetStats.compute([], [], [], [], pressure_bins=[0.0, 10.0])
    assert empty.n_structures == 0 and empty.num_atoms_hist == {}
