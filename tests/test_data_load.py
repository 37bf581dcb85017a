"""Loading the benchmark splits from the shared data root (skipped when it is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gencrystal.config import compose
from gencrystal.data.datamodule import CrystalDataModule
from gencrystal.data.dataset import load_split
from gencrystal.data.stats import DatasetStats


def data_cfg(name: str, *overrides: str):
    return compose("data_info", [f"data={name}", "data.progress=false", *overrides]).data


@pytest.fixture(scope="session")
def perov_dev_train(data_root):
    return load_split(data_cfg("perov5_dev"), "train", data_root=data_root)


def test_perov5_dev_train_has_1024_structures_with_the_data_contract(perov_dev_train):
    ds = perov_dev_train
    assert len(ds) == 1024 and len(ds.table) == 1024
    assert ds.name == "perov5_dev" and ds.split == "train" and ds.protocol == "standard"
    d = ds[0]
    assert d.frac_coords.shape == (5, 3) and d.atom_types.shape == (5,) and d.lattice.shape == (1, 3, 3)
    assert d.material_id == ds.table["material_id"][0]
    assert (ds.frac_coords >= 0).all() and (ds.frac_coords < 1).all()
    # every property column of the source is kept, row-aligned
    for col in ("material_id", "formula", "heat_all", "heat_ref", "dir_gap", "ind_gap", "pressure", "cif"):
        assert col in ds.table.columns
    assert (ds.table["pressure"] == 0).all() and (ds.pressure == 0).all()
    # the composition vector matches the table's formula
    from pymatgen.core import Composition

    for i in (0, 511, 1023):
        comp = Composition(ds.table["formula"][i])
        for el, amt in comp.fractional_composition.items():
            assert ds[i].composition[0, el.Z - 1].item() == pytest.approx(amt, abs=1e-6)
    # polar lattices are symmetric
    assert torch.allclose(ds.lattices, ds.lattices.transpose(1, 2), atol=1e-5)


def test_stats_are_consistent_and_json_round_trip(perov_dev_train, tmp_path):
    st = perov_dev_train.stats
    assert st.n_structures == 1024 and st.num_atoms_hist == {5: 1024} and st.max_atoms == 5
    vols = torch.linalg.det(perov_dev_train.lattices.double()).abs().numpy() / 5
    assert st.volume_per_atom_mean == pytest.approx(vols.mean(), rel=1e-5)
    assert st.volume_per_atom_by_pressure[0]["count"] == 1024
    assert sum(st.element_counts.values()) == 5120
    assert sum(st.element_frequencies.values()) == pytest.approx(1.0)
    st.save(tmp_path / "s.json")
    again = DatasetStats.load(tmp_path / "s.json")
    assert again == st
    assert DatasetStats.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    assert st.volume_per_atom_at(0.0) == pytest.approx(st.volume_per_atom_mean)


def test_datamodule_batches_and_training_stats(data_root):
    dm = CrystalDataModule(data_cfg("perov5_dev"), batch_size=16, data_root=data_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_atoms.shape == (16,) and batch.lattice.shape == (16, 3, 3)
    assert batch.pressure.shape == (16,) and batch.composition.shape == (16, 100)
    assert batch.batch.shape == (80,) and int(batch.batch.max()) == 15
    assert len(batch.material_id) == 16
    assert len(dm.datasets["val"]) == 512
    assert dm.stats.n_structures == 1024
    state = dm.state_dict()
    dm2 = CrystalDataModule(data_cfg("perov5_dev"), batch_size=16, data_root=data_root)
    dm2.load_state_dict(state)
    assert dm2.checkpoint_stats == dm.stats
