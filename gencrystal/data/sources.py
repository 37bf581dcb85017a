"""Structures from a named source: a structure file / folder / ASE database, or a dataset config
of ``conf/data`` (positions Å); the input of ``gencrystal db build``."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from gencrystal.errors import GencrystalError


def load_source(source: str, split: str = "train", selection: str | None = None, limit: int | None = None,
                data_root: str | None = None) -> tuple[list[tuple[str, Atoms]], str]:
    """The structures named by ``source`` and a label for the ``source`` key.

    ``source`` is a structure file / folder / ASE db (read by
    :func:`gencrystal.io.read_structures`, with ``selection`` for databases) or the
    name of a dataset config in ``conf/data`` (e.g. ``perov5_dev``, read with
    :func:`gencrystal.data.dataset.load_split` for ``split``). ``limit`` keeps the first N.
    """
    from gencrystal.config import compose, conf_dir
    from gencrystal.io import is_db_url, read_structures

    src = str(source)
    if is_db_url(src) or Path(src).exists():
        pairs = read_structures(src, selection=selection)
        label = Path(src).stem if not src.startswith("postgres") else "db"
    elif (conf_dir() / "data" / f"{src}.yaml").is_file():
        from gencrystal.data.convert import data_to_atoms
        from gencrystal.data.dataset import load_split

        data_cfg = compose(f"data/{src}").data
        ds = load_split(data_cfg, split, data_root=data_root)
        n = len(ds) if limit is None else min(len(ds), int(limit))
        pairs = []
        for i in range(n):
            atoms = data_to_atoms(ds[i])
            sid = str(atoms.info.get("material_id") or f"{src}-{split}-{i}")
            atoms.info = {}
            pairs.append((sid, atoms))
        label = f"{src}:{split}"
    else:
        raise GencrystalError(f"source={src!r} is neither an existing structure file/folder/database nor a dataset in conf/data")
    if limit is not None:
        pairs = pairs[: int(limit)]
    if not pairs:
        raise GencrystalError(f"source={src!r} holds no structures")
    return pairs, label
