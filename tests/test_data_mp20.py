"""MP-20 from the shared data root: exact split sizes, the offline protocol, real-structure round trips.

The first run parses ~18k CIFs (about a minute per split on 2 cores) and caches them
in data/cache/ (the shared root is read-only); later runs read the cache in seconds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pymatgen.core import Composition, Structure
from torch_geometric.loader import DataLoader

from gencrystal.config import compose
from gencrystal.data.convert import batch_to_atoms, structure_to_data
from gencrystal.data.dataset import load_split
from gencrystal.data.transforms import CrystalTransform

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="session")
def mp20_cfg():
    """The standard protocol: val and test are the files themselves (no train needed for them)."""
    return compose("data_info", ["data=mp20", "data.progress=false", "data.protocol=standard"]).data


@pytest.fixture(scope="session")
def mp20_val(mp20_cfg, data_root):
    return load_split(mp20_cfg, "val", data_root=data_root)


@pytest.fixture(scope="session")
def mp20_test(mp20_cfg, data_root):
    return load_split(mp20_cfg, "test", data_root=data_root)


def test_mp20_val_and_test_have_the_standard_sizes(mp20_val, mp20_test):
    assert len(mp20_val) == 9047 and len(mp20_val.table) == 9047 and not mp20_val.skipped
    assert len(mp20_test) == 9046 and len(mp20_test.table) == 9046 and not mp20_test.skipped
    assert not set(mp20_val.table["material_id"]) & set(mp20_test.table["material_id"])
    for ds in (mp20_val, mp20_test):
        assert ds.stats.max_atoms <= 20 and ds.stats.n_structures == len(ds)
        assert (ds.pressure == 0).all()
        for col in ("material_id", "formation_energy_per_atom", "band_gap", "e_above_hull", "spacegroup.number", "formula"):
            assert col in ds.table.columns
        assert (ds.frac_coords >= 0).all() and (ds.frac_coords < 1).all()
        assert torch.allclose(ds.lattices, ds.lattices.transpose(1, 2), atol=1e-4)


def test_mp20_compositions_match_the_formula_column(mp20_test):
    ds = mp20_test
    for i in range(0, len(ds), 997):
        expected = Composition(ds.table["formula"][i]).fractional_composition
        vec = ds[i].composition[0]
        assert {el.Z - 1 for el in expected} == set(torch.nonzero(vec).flatten().tolist())
        for el, amt in expected.items():
            assert vec[el.Z - 1].item() == pytest.approx(amt, abs=1e-6)


def test_mp20_offline_protocol_is_the_default_without_train(mp20_val, data_root, caplog):
    caplog.set_level(logging.WARNING, logger="gencrystal")
    if (data_root / "mp_20" / "train.csv").exists() or (data_root / "mp_20" / "train.feather").exists():
        pytest.skip("an MP-20 train split exists here: the standard protocol applies")
    auto = compose("data_info", ["data=mp20", "data.progress=false"]).data
    train = load_split(auto, "train", data_root=data_root)
    val = load_split(auto, "val", data_root=data_root)
    assert "offline protocol" in caplog.text
    assert train.protocol == val.protocol == "offline"
    assert len(train) == 8142 and len(val) == 905
    ids_tr, ids_va = set(train.table["material_id"]), set(val.table["material_id"])
    assert not ids_tr & ids_va and ids_tr | ids_va == set(mp20_val.table["material_id"])
    assert train.stats.n_structures == 8142


def test_real_structures_round_trip_through_a_batch(mp20_test):
    """CIF -> canonical Data -> Batch -> Atoms reproduces the canonical lattice and positions to 1e-6
    and is the same crystal as the CIF (StructureMatcher)."""
    from gencrystal.matching import make_matcher
    from gencrystal.structures import to_structure

    ds = mp20_test
    idx = list(range(0, len(ds), 301))[:30]
    structures = [Structure.from_str(ds.table["cif"][i], fmt="cif") for i in idx]
    data = [structure_to_data(s, material_id=ds.table["material_id"][i]) for s, i in zip(structures, idx)]
    # the Data built here equal the dataset's items
    for d, i in zip(data, idx):
        assert torch.equal(d.atom_types, ds[i].atom_types)
        assert torch.allclose(d.lattice, ds[i].lattice) and torch.allclose(d.frac_coords, ds[i].frac_coords)
    atoms = batch_to_atoms(next(iter(DataLoader(data, batch_size=len(data)))))
    transform = CrystalTransform()
    matcher = make_matcher("strict")
    for s, a in zip(structures, atoms):
        lat, frac, _ = transform.arrays(s)
        np.testing.assert_allclose(a.cell.array, lat, atol=1e-6 * np.abs(lat).max())
        diff = a.get_scaled_positions(wrap=False) - frac
        np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-6)
        assert abs(np.linalg.det(lat)) == pytest.approx(s.volume, rel=1e-6)
        assert matcher.fit(s, to_structure(a))
        # idempotent on real data
        lat2, frac2, _ = transform.arrays(to_structure(a))
        np.testing.assert_allclose(lat2, a.cell.array, atol=1e-5)
        d2 = frac2 - a.get_scaled_positions()
        np.testing.assert_allclose(d2 - np.round(d2), 0.0, atol=1e-5)
