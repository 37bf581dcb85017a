"""The crystal data layer: readers, preprocessing, torch-geometric batches, statistics.

Public entry points (contracts other modules code against):

- :func:`gencrystal.data.convert.structure_to_data`, :func:`~gencrystal.data.convert.data_to_atoms`,
  :func:`~gencrystal.data.convert.batch_to_atoms` — one structure ↔ one ``torch_geometric.data.Data``.
- :func:`gencrystal.data.dataset.load_split` — a :class:`~gencrystal.data.dataset.CrystalDataset`
  for one split of a configured dataset (``conf/data/*.yaml``).
- :class:`gencrystal.data.stats.DatasetStats` — JSON-serialisable dataset statistics.
- :class:`gencrystal.data.datamodule.CrystalDataModule` — the Lightning data module.

Units: lengths in Å, volumes in Å³, pressure in GPa.
"""
