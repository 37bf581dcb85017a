"""Datasets of canonical crystals and the split loader (``load_split``).

A data config (``conf/data/<name>.yaml``) names a folder under the data root, the
file stem of each split (``splits``), the columns, the transform and the protocol:

- ``standard``: train/val/test files as named in ``splits``;
- ``offline``: no train file on this machine — train on a seeded ``1 - holdout_fraction``
  of the val file, validate on the held-out rest, test on test;
- ``auto`` (default): ``standard`` when the train file exists, else ``offline`` (logged).

``split_scheme`` (default ``standard``) other than ``standard`` reads the group-disjoint
train/val/test files that ``gencrystal data split`` wrote (:mod:`gencrystal.data.splits`:
``polymorph`` = grouped by composition, ``unique`` = duplicates removed and grouped).

Data root: the ``data_root`` argument > ``data.root`` in the config > ``$GENCRYSTAL_DATA``
> ``data/`` (relative paths from the current directory).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from gencrystal.data.paths import resolve_data_root
from gencrystal.data.readers import ParsedSource, default_cache_dir, load_table_source
from gencrystal.data.stats import DEFAULT_PRESSURE_BINS, DatasetStats
from gencrystal.data.transforms import CrystalTransform, wrap_frac
from gencrystal.elements import MAX_Z
from gencrystal.errors import GencrystalError

log = logging.getLogger("gencrystal.data")

SPLITS = ("train", "val", "test")


def _plain(cfg: Any) -> dict:
    """A plain dict from a DictConfig or mapping (interpolations resolved)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def complete_data_config(data_cfg: Any) -> dict:
    """A ``conf/data`` node (DictConfig or mapping) as a plain dict holding every key of
    ``conf/data/base.yaml``, the one place those keys' defaults are written.

    A composed ``data=NAME`` already has them all (every dataset config lists ``- base``); a
    node written by hand (a notebook, a test, a re-split's variant) gets the missing ones here,
    merged as Hydra merges a dataset config over ``base``. Raises :class:`GencrystalError` when
    a required key (``name``, ``folder``) is still unset.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    from gencrystal.config import conf_dir

    base = OmegaConf.load(conf_dir() / "data" / "base.yaml")
    merged = OmegaConf.merge(base, OmegaConf.create(_plain(data_cfg)))
    try:
        out = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        raise GencrystalError(f"data config: {exc.full_key} is not set (see conf/data/base.yaml)") from None
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]


def make_transform(cfg: Mapping | None) -> CrystalTransform:
    """The transform of a data config's ``transform`` node (Hydra ``_target_`` or plain keys)."""
    cfg = dict(cfg or {})
    if "_target_" in cfg:
        from hydra.utils import instantiate

        obj = instantiate(cfg)
        if not isinstance(obj, CrystalTransform):
            raise GencrystalError(f"data.transform._target_ {cfg['_target_']!r} is not a CrystalTransform")
        return obj
    return CrystalTransform(**cfg)


class CrystalDataset(Dataset):
    """A torch Dataset of canonical crystals, one :class:`torch_geometric.data.Data` per item.

    Attributes:
        table: row-aligned pandas table (``material_id``, ``formula``, ``composition``,
            ``pressure`` in GPa, ``num_atoms`` and every property column of the source).
        stats: :class:`DatasetStats` of this split.
        name, split: dataset name and split; protocol: ``standard``/``offline``/``""``.
        skipped: ``[(id, reason)]`` of source rows that could not be read.
    """

    def __init__(
        self,
        parsed: ParsedSource,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        name: str = "",
        split: str = "",
        protocol: str = "",
        pressure_bins: Sequence[float] = DEFAULT_PRESSURE_BINS,
    ) -> None:
        n_all = len(parsed.num_atoms)
        idx = np.arange(n_all) if indices is None else np.asarray(indices, dtype=np.int64)
        offsets = parsed.offsets
        atom_idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]) if len(idx) else np.zeros(0, np.int64)
        num_atoms = parsed.num_atoms[idx]
        self.name, self.split, self.protocol = name, split, protocol
        self.skipped = list(parsed.skipped)
        self.source = parsed.source
        self.table: pd.DataFrame = parsed.table.iloc[idx].reset_index(drop=True)
        self.frac_coords = torch.from_numpy(wrap_frac(parsed.frac[atom_idx]))
        self.atom_types = torch.from_numpy(parsed.atom_types[atom_idx].astype(np.int64))
        self.lattices = torch.from_numpy(parsed.lattices[idx].astype(np.float32))
        self.num_atoms = torch.from_numpy(num_atoms.astype(np.int64))
        self.pressure = torch.from_numpy(parsed.pressure[idx].astype(np.float32))
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(num_atoms)]).astype(np.int64))
        graph = torch.repeat_interleave(torch.arange(len(idx)), self.num_atoms)
        comp = torch.zeros(len(idx), MAX_Z, dtype=torch.float32)
        comp.index_put_((graph, self.atom_types - 1), torch.ones(len(graph)), accumulate=True)
        self.compositions = comp / self.num_atoms.clamp(min=1).unsqueeze(1).to(torch.float32)
        self.material_ids = self.table["material_id"].astype(str).tolist() if "material_id" in self.table else []
        volumes = np.abs(np.linalg.det(parsed.lattices[idx])) if len(idx) else np.zeros(0)
        self.stats = DatasetStats.compute(
            num_atoms,
            volumes,
            parsed.pressure[idx],
            parsed.atom_types[atom_idx],
            name=name,
            split=split,
            pressure_bins=pressure_bins,
        )

    def __len__(self) -> int:
        return int(self.num_atoms.shape[0])

    def __getitem__(self, i: int) -> Data:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} structures")
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        n = b - a
        return Data(
            frac_coords=self.frac_coords[a:b],
            atom_types=self.atom_types[a:b],
            lattice=self.lattices[i].unsqueeze(0),
            num_atoms=self.num_atoms[i : i + 1],
            num_nodes=n,
            pressure=self.pressure[i : i + 1],
            composition=self.compositions[i : i + 1],
            material_id=self.material_ids[i],
        )

    def to_atoms(self, i: int):
        """Structure ``i`` as ASE Atoms (``info``: material_id, pressure_gpa)."""
        from gencrystal.data.convert import data_to_atoms

        return data_to_atoms(self[i])

    def __repr__(self) -> str:
        return f"CrystalDataset(name={self.name!r}, split={self.split!r}, protocol={self.protocol!r}, n={len(self)})"

    @classmethod
    def from_structures(
        cls,
        structures: Sequence,
        pressures_gpa: Sequence[float] | float = 0.0,
        ids: Sequence[str] | None = None,
        transform: CrystalTransform | None = None,
        *,
        name: str = "custom",
        split: str = "",
        properties: Mapping[str, Sequence] | None = None,
    ) -> CrystalDataset:
        """A dataset from in-memory structures (pymatgen Structure or ASE Atoms), pressures in GPa."""
        from gencrystal.units import check_pressure

        if len(structures) == 0:
            raise GencrystalError(f"dataset {name!r} is empty: no structures given")
        transform = transform or CrystalTransform()
        if np.ndim(pressures_gpa) == 0:
            pressures_gpa = [float(pressures_gpa)] * len(structures)  # type: ignore[arg-type]
        ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(structures))]
        if not (len(ids) == len(pressures_gpa) == len(structures)):  # type: ignore[arg-type]
            raise GencrystalError("structures, pressures and ids differ in length")
        arrays = [transform.arrays(s) for s in structures]
        from gencrystal.structures import to_structure

        table = pd.DataFrame({"material_id": ids})
        table["composition"] = [to_structure(s).composition.formula for s in structures]
        table["formula"] = [to_structure(s).composition.reduced_formula for s in structures]
        table["pressure"] = [check_pressure(p) for p in pressures_gpa]  # type: ignore[union-attr]
        table["num_atoms"] = [len(a[2]) for a in arrays]
        for key, values in (properties or {}).items():
            table[key] = list(values)
        parsed = ParsedSource(
            lattices=np.stack([a[0] for a in arrays]),
            frac=np.concatenate([a[1] for a in arrays]),
            atom_types=np.concatenate([a[2] for a in arrays]),
            num_atoms=table["num_atoms"].to_numpy(np.int64),
            pressure=table["pressure"].to_numpy(np.float64),
            table=table,
            n_rows=len(structures),
            source=name,
        )
        return cls(parsed, name=name, split=split)


def resolve_protocol(cfg: Mapping, folder: Path) -> str:
    """``standard`` or ``offline`` for a config whose ``protocol`` may be ``auto``."""
    protocol = str(cfg["protocol"])
    if protocol not in ("auto", "standard", "offline"):
        raise GencrystalError(f"data.protocol={protocol!r}: use auto, standard or offline")
    if protocol != "auto":
        return protocol
    train_stem = cfg["splits"]["train"]
    if _find_file(folder, train_stem, cfg["format"]) is not None:
        return "standard"
    log.warning(
        "%s: no %s split in %s — using the offline protocol (train on a seeded %.0f %% of %s, "
        "validate on the rest, test on %s); set data.protocol=standard once the train split is there",
        cfg["name"],
        train_stem,
        folder,
        100 * (1 - float(cfg["offline"]["holdout_fraction"])),
        cfg["splits"]["val"],
        cfg["splits"]["test"],
    )
    return "offline"


def _find_file(folder: Path, stem: str, fmt: str) -> Path | None:
    suffixes = {"auto": (".feather", ".csv"), "feather": (".feather",), "csv": (".csv",)}.get(str(fmt))
    if suffixes is None:
        raise GencrystalError(f"data.format={fmt!r}: use auto, csv or feather (another reader: data.reader._target_)")
    for suf in suffixes:
        p = folder / f"{stem}{suf}"
        if p.is_file():
            return p
    return None


def offline_indices(n: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, holdout)`` index split of ``n`` rows (each sorted)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise GencrystalError(f"data.offline.holdout_fraction={holdout_fraction} must lie in (0, 1)")
    perm = np.random.default_rng(int(seed)).permutation(n)
    n_hold = max(1, int(round(holdout_fraction * n)))
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def cache_dir_for(cfg: Mapping, root: Path) -> Path | None:
    """``data.cache_dir`` (``false`` disables the cache) or the default beside the data root."""
    value = cfg["cache_dir"]
    if value is False or str(value).lower() == "false":
        return None
    if value in (None, "", "null"):
        return default_cache_dir(root)
    return Path(str(value)).expanduser().resolve()


def load_table_for(path: Path, transform: CrystalTransform, cfg: Mapping, root: Path) -> tuple[ParsedSource, str]:
    """:func:`load_table_source` of one CDVAE-style table with the column names, parse workers
    and cache folder of a ``conf/data/*.yaml`` node ``cfg`` (``root``: the data folder);
    returns ``(parsed, cache key)``."""
    return load_table_source(
        path,
        transform,
        cache_dir_for(cfg, root),
        id_column=str(cfg["id_column"]),
        cif_column=str(cfg["cif_column"]),
        pressure_column=str(cfg["pressure_column"]),
        workers=int(cfg["parse_workers"]),
        progress=bool(cfg["progress"]),
    )


def load_split(data_cfg: Any, split: str, data_root: str | os.PathLike | None = None) -> CrystalDataset:
    """Load one split (``train``/``val``/``test``) of the dataset described by ``data_cfg``.

    ``data_cfg`` is the composed ``data`` node (DictConfig or dict); its ``reader`` node
    (``_target_`` with ``_partial_: true``, default :func:`load_table_split`) is called as
    ``reader(cfg, split, transform, data_root=..., pressure_bins=...)`` and returns the
    :class:`CrystalDataset`; ``conf/data/asedb.yaml`` names
    :func:`gencrystal.data.asedb.load_db_split`, and a new dataset format is one such
    function and one YAML. Raises
    :class:`GencrystalError` (one line) for a missing data root or split file (naming
    the path and the download command), an unknown split or an empty result.
    """
    from gencrystal.config import instantiate

    cfg = complete_data_config(data_cfg)
    name = str(cfg["name"])
    if split not in SPLITS:
        raise GencrystalError(f"unknown split {split!r} for {name}: use train, val or test")
    transform = make_transform(cfg["transform"])
    bins = cfg["pressure_bins"]
    reader = instantiate(cfg["reader"], "data.reader")
    return reader(cfg, split, transform, data_root=data_root, pressure_bins=bins)


def load_table_split(
    cfg: Mapping,
    split: str,
    transform: CrystalTransform,
    *,
    data_root: str | os.PathLike | None = None,
    pressure_bins: Sequence[float] = DEFAULT_PRESSURE_BINS,
) -> CrystalDataset:
    """One split of a CDVAE-style table dataset (``<root>/<folder>/<split>.feather|.csv``, one CIF
    per row; pressure column in GPa): the default ``data.reader`` (see :func:`load_split`);
    ``cfg`` as :func:`complete_data_config` returns it."""
    name = str(cfg["name"])
    fmt = str(cfg["format"])
    bins = pressure_bins
    root = resolve_data_root(data_root, cfg)
    folder = root / str(cfg["folder"])
    download = f"gencrystal data download {cfg['download_name']} data_root={root}"
    if not root.is_dir():
        raise GencrystalError(f"data root {str(root)!r} does not exist; set data_root= or GENCRYSTAL_DATA, or run `{download}`")
    if not folder.is_dir():
        raise GencrystalError(f"dataset folder {str(folder)!r} does not exist; run `{download}`")
    scheme = str(cfg["split_scheme"])
    if scheme != "standard":  # a group-disjoint re-split written by `gencrystal data split` (gencrystal.data.splits)
        from gencrystal.data.splits import SCHEMES, split_dir

        if scheme not in SCHEMES.values():
            raise GencrystalError(f"data.split_scheme={scheme!r}: use standard, {', '.join(SCHEMES.values())}")
        folder = split_dir(cfg, root, scheme)
        by = next(k for k, v in SCHEMES.items() if v == scheme)
        if not (folder / "split.json").is_file():
            raise GencrystalError(
                f"no {scheme} split of {name} in {str(folder)!r}; run `gencrystal data split "
                f"data={cfg['download_name']} by={by}` first"
            )
        cfg = {**cfg, "protocol": "standard", "splits": {s: s for s in SPLITS}, "format": "csv"}
    protocol = resolve_protocol(cfg, folder)
    stems = cfg["splits"]
    indices = None
    file_split = split
    if protocol == "offline" and split in ("train", "val"):
        file_split = "val"
    stem = stems.get(file_split, file_split)
    path = _find_file(folder, stem, fmt)
    if path is None:
        raise GencrystalError(
            f"{name} {split} split not found: no {stem}.csv/.feather in {str(folder)!r}; run `{download}`"
            + (" or use data.protocol=offline" if split == "train" else "")
        )
    parsed, key = load_table_for(path, transform, cfg, root)
    if protocol == "offline" and split in ("train", "val"):
        off = cfg["offline"]
        train_idx, hold_idx = offline_indices(len(parsed.num_atoms), float(off["holdout_fraction"]), int(off["seed"]))
        indices = train_idx if split == "train" else hold_idx
    ds = CrystalDataset(
        parsed, indices, name=name, split=split, protocol=protocol if scheme == "standard" else scheme, pressure_bins=bins
    )
    if len(ds) == 0:
        raise GencrystalError(
            f"dataset {name} split {split} ({str(path)!r}) is empty: {parsed.n_rows} rows, {len(parsed.skipped)} unreadable"
        )
    cdir = cache_dir_for(cfg, root)
    if cdir is not None:
        try:
            ds.stats.save(cdir / path.parent.name / f"{name}-{split}-{protocol}-{key}.stats.json")
        except OSError as exc:
            log.warning("could not save statistics beside the cache: %s", exc)
    log.info("%s %s (%s protocol): %d structures from %s", name, split, protocol, len(ds), path)
    return ds
