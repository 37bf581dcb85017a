"""Group-disjoint splits of a dataset: every composition (or every duplicate group) whole in one split.

The standard random splits of perov-5 and MP-20 put polymorphs of one composition in
train and test (perov-5: 735 of 3,785 test crystals share their reduced formula with a
val crystal), so a CSP model can be scored on compositions it was trained on.
:func:`write_grouped_split` pools a dataset's split files and re-splits them:

- ``by="composition"`` (scheme ``polymorph``): every reduced formula goes whole to one split;
- ``by="structure"`` (scheme ``unique``): every group of StructureMatcher duplicates goes
  whole to one split — for a dataset of one composition (carbon-24) — and with
  ``dedupe=True`` only the first structure of each group is kept.

Pooling follows the data protocol (``docs/data.md``): with a train file, train + val +
test are pooled and re-split to their original sizes; offline (no train file), val + test
are pooled and re-split into train and val (the val file's share, divided by
``offline.holdout_fraction``) and test (the test file's size). Groups are shuffled with a
seed and each goes to the split furthest below its target, so sizes come within a group or
two of the targets. The files (``train.csv``, ``val.csv``, ``test.csv`` with the source
columns, and ``split.json``) are written under :func:`split_dir`; ``data.split_scheme=<scheme>``
trains on them.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gencrystal.db.export import assign_splits  # one grouped assignment for database exports and dataset splits
from gencrystal.errors import GencrystalError

__all__ = ["SCHEMES", "SPLITS", "assign_splits", "split_dir", "write_grouped_split"]

log = logging.getLogger("gencrystal.data")

SPLITS = ("train", "val", "test")
#: split scheme written by each grouping
SCHEMES = {"composition": "polymorph", "structure": "unique"}


def split_dir(data_cfg: Mapping, root: Path, scheme: str) -> Path:
    """Folder of a dataset's ``scheme`` split: ``data.split_dir`` when set, else
    ``<data root>/<folder>/splits/<scheme>``, or the repository's git-ignored
    ``data/splits/<folder>/<scheme>`` when the data root is read-only."""
    from gencrystal.data.readers import REPO_DATA, writable_dir

    value = data_cfg.get("split_dir")
    if value not in (None, "", "null"):
        return Path(str(value)).expanduser().resolve()
    folder = str(data_cfg["folder"])
    base = root / folder
    if writable_dir(base) or (not base.exists() and writable_dir(root)):
        return base / "splits" / scheme
    return REPO_DATA / "splits" / folder / scheme


def _source_files(cfg: Mapping, folder: Path, protocol: str) -> dict[str, Path]:
    from gencrystal.data.dataset import _find_file

    stems = cfg["splits"]
    names = SPLITS if protocol == "standard" else ("val", "test")
    out = {}
    for s in names:
        p = _find_file(folder, str(stems.get(s, s)), str(cfg["format"]))
        if p is None:
            raise GencrystalError(f"{cfg['name']}: no {stems.get(s, s)}.csv/.feather in {str(folder)!r} to re-split")
        out[s] = p
    return out


def _read_columns(path: Path) -> list[str]:
    import pandas as pd

    if path.suffix == ".feather":
        return [str(c) for c in pd.read_feather(path).columns]
    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


def write_grouped_split(
    data_cfg: Any,
    by: str = "composition",
    seed: int = 0,
    dedupe: bool = False,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    matcher: str = "novelty",
    force: bool = False,
) -> dict[str, Any]:
    """Write a group-disjoint split of the dataset ``data_cfg`` (module doc); returns the manifest.

    Raises :class:`GencrystalError` for an unknown ``by``, a dataset with a single
    composition under ``by="composition"``, or an existing split folder (unless ``force``).
    Every file is written atomically and ``split.json`` last, so a killed run leaves no
    split that looks complete.
    """
    import pandas as pd

    from gencrystal.data.dataset import complete_data_config, load_table_for, make_transform, resolve_protocol
    from gencrystal.data.paths import resolve_data_root
    from gencrystal.data.readers import file_sha256
    from gencrystal.io import atomic_write, write_json

    if by not in SCHEMES:
        raise GencrystalError(f"unknown by={by!r}; choose from {', '.join(SCHEMES)}")
    cfg = complete_data_config(data_cfg)
    if str(cfg["format"]) == "asedb":
        raise GencrystalError("data split re-splits CSV/feather datasets; for an ASE database use `gencrystal db export`")
    scheme = SCHEMES[by]
    name = str(cfg["name"])
    root = resolve_data_root(data_root, cfg)
    folder = root / str(cfg["folder"])
    if not folder.is_dir():
        raise GencrystalError(f"dataset folder {str(folder)!r} does not exist; run `gencrystal data download {name}`")
    target = (
        Path(out).expanduser().resolve() if out else split_dir({k: v for k, v in cfg.items() if k != "split_dir"}, root, scheme)
    )
    if (target / "split.json").is_file() and not force:
        raise GencrystalError(f"a split already exists in {str(target)!r}; pass force=true to overwrite it")
    protocol = resolve_protocol({**cfg, "protocol": "auto"}, folder)
    sources = _source_files(cfg, folder, protocol)
    transform = make_transform(cfg["transform"])
    tables, original = [], {}
    for split, path in sources.items():
        parsed, _ = load_table_for(path, transform, cfg, root)
        cols = [c for c in _read_columns(path) if c in parsed.table.columns]
        t = parsed.table[cols].copy()
        t["_composition"] = [_reduced(c) for c in parsed.table["composition"]]
        t["_source"] = split
        tables.append((t, parsed))
        original[split] = int(parsed.n_rows)
    pool = pd.concat([t for t, _ in tables], ignore_index=True)
    if protocol == "standard":
        targets = [original["train"], original["val"], original["test"]]
    else:
        hold = float(cfg["offline"]["holdout_fraction"])
        n_val = int(round(hold * original["val"]))
        targets = [original["val"] - n_val, n_val, original["test"]]
    n_comp = pool["_composition"].nunique()
    if by == "composition" and n_comp < 3:
        raise GencrystalError(
            f"{name} holds {n_comp} composition(s): a composition-grouped split is impossible; use by=structure dedupe=true"
        )
    n_pooled = len(pool)
    groups = pool["_composition"].tolist()
    n_dup_removed = 0
    if by == "structure" or dedupe:
        from gencrystal.structures import to_structure

        structs = [to_structure(_atoms(p, i)) for _, p in tables for i in range(len(p.num_atoms))]
        labels = duplicate_labels(structs, pool["_composition"].tolist(), matcher)
        if dedupe:
            seen: set[int] = set()
            keep = []
            for lab in labels:
                keep.append(lab not in seen)
                seen.add(lab)
            n_dup_removed = int(len(keep) - sum(keep))
            pool = pool[np.asarray(keep)].reset_index(drop=True)
            labels = [lab for lab, k in zip(labels, keep) if k]
        groups = [str(lab) for lab in labels] if by == "structure" else pool["_composition"].tolist()
    sizes: dict[str, int] = defaultdict(int)
    for g in groups:
        sizes[g] += 1
    assignment = assign_splits(dict(sizes), targets, seed=seed)
    pool["_split"] = [assignment[g] for g in groups]
    counts = {s: int((pool["_split"] == s).sum()) for s in SPLITS}
    shared = {
        f"{a}-{b}": len(set(pool.loc[pool._split == a, "_composition"]) & set(pool.loc[pool._split == b, "_composition"]))
        for a, b in (("train", "val"), ("train", "test"), ("val", "test"))
    }
    target.mkdir(parents=True, exist_ok=True)
    (target / "split.json").unlink(missing_ok=True)
    for s in SPLITS:
        part = pool[pool["_split"] == s].drop(columns=["_composition", "_source", "_split"])
        with atomic_write(target / f"{s}.csv") as fh:
            part.to_csv(fh, index=False)
    manifest = {
        "dataset": name,
        "scheme": scheme,
        "by": by,
        "dedupe": bool(dedupe),
        "seed": int(seed),
        "matcher": matcher if (by == "structure" or dedupe) else None,
        "source_protocol": protocol,
        "pooled": {s: {"file": p.name, "rows": original[s], "sha256": file_sha256(p)} for s, p in sources.items()},
        "n_pooled_readable": n_pooled,
        "n_duplicates_removed": n_dup_removed,
        "target_sizes": dict(zip(SPLITS, targets)),
        "sizes": counts,
        "n_groups": len(sizes),
        "n_compositions": int(n_comp),
        "compositions_shared_between_splits": shared,
        "origin_of_test_rows": {s: int(((pool._split == "test") & (pool._source == s)).sum()) for s in sources},
    }
    write_json(manifest, target / "split.json")
    log.info("%s %s split (%s, seed %d): %s -> %s", name, scheme, by, seed, counts, target)
    manifest["folder"] = str(target)
    return manifest


def duplicate_labels(structures: Sequence, compositions: Sequence[str], matcher: str = "novelty") -> list[int]:
    """A group label per structure: equal labels = StructureMatcher duplicates (pymatgen
    ``group_structures`` within each reduced composition; settings of :func:`gencrystal.matching.make_matcher`)."""
    import warnings

    from gencrystal.matching import make_matcher

    sm = make_matcher(matcher)
    by_comp: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(compositions):
        by_comp[c].append(i)
    labels = [-1] * len(structures)
    pos = {id(structures[i]): i for i in range(len(structures))}
    next_label = 0
    for c in sorted(by_comp):
        idx = by_comp[c]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = sm.group_structures([structures[i] for i in idx])
        for g in sorted(groups, key=lambda g: min(pos[id(x)] for x in g)):
            for x in g:
                labels[pos[id(x)]] = next_label
            next_label += 1
    return labels


def _reduced(formula: str) -> str:
    from pymatgen.core import Composition

    return Composition(str(formula)).reduced_formula


def _atoms(parsed, i: int):
    """Structure ``i`` of a ParsedSource as ASE Atoms (Å)."""
    from ase import Atoms

    a, b = parsed.offsets[i], parsed.offsets[i + 1]
    return Atoms(numbers=parsed.atom_types[a:b], scaled_positions=parsed.frac[a:b], cell=parsed.lattices[i], pbc=True)
