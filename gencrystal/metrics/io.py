"""Reading predictions and references for the metrics, and pairing them.

Predictions and references are read through :func:`gencrystal.io.read_structures`
(CIF file or folder, extxyz/traj, ASE db). References may also be a CDVAE-format CSV
(columns ``material_id`` and ``cif``, as in MP-20 / perov_5 / carbon_24): these are
parsed here with pymatgen by a small reader (the data package has no split reader yet).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pymatgen.core import Structure

from gencrystal.checks import require_finite
from gencrystal.errors import GencrystalError
from gencrystal.io import read_structures
from gencrystal.structures import to_structure

PAIR_ID_KEYS = ("ref_id", "material_id", "id")


@dataclass
class Entry:
    """One crystal for the metrics: its id, pymatgen structure (None if unusable) and info."""

    id: str
    structure: Structure | None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.structure) if self.structure is not None else int(self.info.get("n_atoms", 0))


def read_cdvae_csv(
    path: str | os.PathLike, id_column: str = "material_id", cif_column: str = "cif", limit: int | None = None
) -> list[Entry]:
    """Read a CDVAE-style CSV (one CIF per row; or the same table as ``.feather``) into entries;
    other columns go to ``info``.

    Raises :class:`GencrystalError` for a missing file or column, a CIF pymatgen cannot
    parse, or a structure with a NaN/Inf cell or coordinate (file and row named).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise GencrystalError(f"reference CSV {str(p)!r} does not exist")
    try:
        if p.suffix == ".feather":  # the same table in Arrow form (MP-20's original files)
            df = pd.read_feather(p)
            df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:") or str(c) == "index"])
            df = df.head(limit) if limit is not None else df
        else:
            df = pd.read_csv(p, nrows=limit)
    except Exception as exc:
        raise GencrystalError(
            f"cannot read CSV {str(p)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    for col in (id_column, cif_column):
        if col not in df.columns:
            raise GencrystalError(f"CSV {str(p)!r} has no {col!r} column (columns: {', '.join(map(str, df.columns[:12]))})")
    if len(df) == 0:
        raise GencrystalError(f"CSV {str(p)!r} holds no rows")
    out: list[Entry] = []
    extra = [c for c in df.columns if c not in (cif_column,)]
    for i, row in enumerate(df.itertuples(index=False)):
        rec = dict(zip(df.columns, row))
        sid = str(rec[id_column])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = Structure.from_str(str(rec[cif_column]), fmt="cif")
        except Exception as exc:
            raise GencrystalError(
                f"{str(p)!r} row {sid!r}: malformed CIF ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from exc
        require_finite(s.lattice.matrix, s.frac_coords, str(p), f"row {i} ({sid})")
        out.append(Entry(sid, s, {k: rec[k] for k in extra}))
    return out


def read_entries(
    path: str | os.PathLike, selection: str | None = None, limit: int | None = None, id_column: str = "material_id"
) -> list[Entry]:
    """Read crystals from a CDVAE CSV, CIF file/folder, extxyz/traj file or ASE db.

    A structure that pymatgen cannot build (e.g. a degenerate generated cell) becomes an
    entry with ``structure=None`` and its ``error`` set, so that a model's bad samples are
    scored as invalid rather than aborting the evaluation.
    """
    p = str(path)
    if p.lower().endswith(".csv"):
        return read_cdvae_csv(p, id_column=id_column, limit=limit)
    pairs = read_structures(p, selection=selection)
    if limit is not None:
        pairs = pairs[: int(limit)]
    out = []
    for sid, atoms in pairs:
        info = dict(atoms.info)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = to_structure(atoms)
            out.append(Entry(sid, s, info))
        except Exception as exc:
            out.append(Entry(sid, None, {**info, "n_atoms": len(atoms)}, error=type(exc).__name__))
    return out


def pair_key(entry: Entry, id_keys: Sequence[str] = PAIR_ID_KEYS) -> str:
    """The reference id a prediction claims: the first of ``id_keys`` in its info, else its id."""
    for k in id_keys:
        v = entry.info.get(k)
        if v is not None and str(v) != "":
            return str(v)
    return entry.id


def pair_predictions(
    refs: Sequence[Entry], preds: Sequence[Entry], mode: str = "id", id_keys: Sequence[str] = PAIR_ID_KEYS
) -> tuple[list[list[int]], list[int]]:
    """Assign predictions to references.

    - ``mode="id"``: a prediction belongs to the reference whose id equals its
      ``ref_id``/``material_id``/``id`` info key (or, lacking those, its file id); a
      reference may get any number of candidates (k-sample).
    - ``mode="order"``: prediction ``j`` belongs to reference ``j % n_ref`` (rounds of
      one sample per reference); ``len(preds)`` must be a multiple of ``len(refs)``.

    Returns ``(candidates, unpaired)``: candidate prediction indices per reference, and
    the indices of predictions that name no reference.
    """
    n = len(refs)
    if mode == "order":
        if len(preds) == 0 or len(preds) % n:
            raise GencrystalError(
                f"pair=order needs a multiple of {n} predictions (one per reference per round), got {len(preds)}"
            )
        cands: list[list[int]] = [[] for _ in range(n)]
        for j in range(len(preds)):
            cands[j % n].append(j)
        return cands, []
    if mode != "id":
        raise GencrystalError(f"unknown pairing {mode!r}; use pair=id or pair=order")
    index: dict[str, int] = {}
    for i, r in enumerate(refs):
        if r.id in index:
            raise GencrystalError(f"reference id {r.id!r} occurs twice; ids must be unique for pair=id (or use pair=order)")
        index[r.id] = i
    cands = [[] for _ in range(n)]
    unpaired: list = []
    for j, p in enumerate(preds):
        hit = index.get(pair_key(p, id_keys))
        if hit is None:
            unpaired.append(j)
        else:
            cands[hit].append(j)
    if len(unpaired) == len(preds):
        raise GencrystalError(
            f"no prediction id matches a reference id (first prediction id {pair_key(preds[0], id_keys)!r}, "
            f"first reference id {refs[0].id!r}); set info 'ref_id' on the predictions or use pair=order"
        )
    return cands, unpaired
