"""The `Add a dataset` recipe of docs/architecture.md, done exactly: one module (a split reader),
one YAML in a `data/` folder, then `gencrystal data info data=NAME` and training batches from it."""

from __future__ import annotations

import json
import sys
import textwrap

from ase.build import bulk
from ase.io import write

MODULE = '''
"""Structures from one extended-XYZ file per split (`<path>/<split>.extxyz`; info key pressure_gpa, GPa)."""
from pathlib import Path

import pandas as pd
from ase.io import read

from gencrystal.data.dataset import CrystalDataset
from gencrystal.data.readers import assemble_parsed
from gencrystal.errors import GencrystalError


def load_extxyz_split(cfg, split, transform, *, data_root=None, pressure_bins=()):
    path = Path(str(cfg["path"])) / f"{cfg['splits'][split]}.extxyz"
    if not path.is_file():
        raise GencrystalError(f"{cfg['name']} {split} split: no file {str(path)!r}")
    rows, lattices, fracs, types, pressures = [], [], [], [], []
    for i, atoms in enumerate(read(path, index=":")):
        lattice, frac, numbers = transform.arrays(atoms)
        rows.append({"material_id": f"{path.stem}-{i}", "formula": atoms.get_chemical_formula(empirical=True)})
        lattices.append(lattice)
        fracs.append(frac)
        types.append(numbers)
        pressures.append(float(atoms.info.get("pressure_gpa", 0.0)))
    parsed = assemble_parsed(pd.DataFrame(rows), lattices, fracs, types, pressures, [], n_rows=len(rows),
                             source=str(path))
    return CrystalDataset(parsed, None, name=cfg["name"], split=split, protocol="standard",
                          pressure_bins=pressure_bins)
'''

YAML = '''
defaults:
  - base
  - _self_

name: my_xyz
folder: ""
path: ???            # folder holding train.extxyz, val.extxyz, test.extxyz
reader:
  _target_: my_dataset.load_extxyz_split
  _partial_: true
'''


def _write_splits(folder):
    folder.mkdir()
    for split, ps in (("train", [0.0, 10.0, 20.0]), ("val", [5.0]), ("test", [15.0])):
        frames = []
        for p in ps:
            for kind, a in (("fcc", 3.6), ("bcc", 2.9)):
                atoms = bulk("Cu", kind, a=a * (1 + p / 100) ** (-1 / 3), cubic=True)
                atoms.info["pressure_gpa"] = p
                frames.append(atoms)
        write(folder / f"{split}.extxyz", frames)


def test_add_a_dataset_with_one_module_and_one_yaml(tmp_path, monkeypatch, capsys):
    from gencrystal.cli import main
    from gencrystal.config import compose
    from gencrystal.data.datamodule import CrystalDataModule

    (tmp_path / "my_dataset.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_dataset", None)
    (tmp_path / "myconf" / "data").mkdir(parents=True)
    (tmp_path / "myconf" / "data" / "my_xyz.yaml").write_text(textwrap.dedent(YAML))
    _write_splits(tmp_path / "xyz")

    search = f"hydra.searchpath=[file://{tmp_path / 'myconf'}]"
    out = tmp_path / "info"
    assert main(["data", "info", "data=my_xyz", f"data.path={tmp_path / 'xyz'}", "split=train", f"out={out}",
                 search, "plot=false"]) == 0
    info = json.loads((out / "summary.json").read_text())
    assert info["dataset"] == "my_xyz" and info["n_structures"] == 6 and info["n_skipped"] == 0
    assert info["stats"]["pressure_min"] == 0.0 and info["stats"]["pressure_max"] == 20.0
    assert info["stats"]["max_atoms"] == 4  # conventional fcc cell (bcc: 2)

    cfg = compose("train", ["data=my_xyz", f"data.path={tmp_path / 'xyz'}", search])
    dm = CrystalDataModule(cfg.data, batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == 4 and set(batch.atom_types.tolist()) == {29}
    assert len(dm.dataset("val")) == 2 and len(dm.dataset("test")) == 2
    assert main(["data", "info", "data=my_xyz", f"data.path={tmp_path / 'none'}", f"out={out}", search]) == 2
    assert "no file" in capsys.readouterr().err
