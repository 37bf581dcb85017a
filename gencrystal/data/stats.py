"""Dataset statistics, JSON-serialisable, stored beside the cache and in model checkpoints.

Later code reads them for priors and conditioning: the atom-count histogram (how many
atoms to sample), volume per atom overall and binned by pressure (lattice prior scale,
Å³/atom), the pressure range (GPa) and element frequencies.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gencrystal.elements import MAX_Z

#: Default pressure-bin edges in GPa (the last bin is open: ``[500, inf)``).
DEFAULT_PRESSURE_BINS: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0)


@dataclass
class DatasetStats:
    """Statistics of one dataset split.

    Attributes:
        name, split: the dataset and split they describe.
        n_structures: number of structures; n_atoms_total: number of atoms.
        num_atoms_hist: ``{n_atoms: count}``; max_atoms: largest cell.
        volume_per_atom_mean/std: Å³/atom over all structures.
        pressure_bins: bin edges in GPa (left-closed; the last bin is open-ended).
        volume_per_atom_by_pressure: one dict per bin ``{lo, hi, count, mean, std}`` (Å³/atom;
            ``hi`` is ``None`` for the open last bin, mean/std ``None`` when empty).
        pressure_mean/std/min/max: GPa.
        element_counts: ``{Z: number of atoms}``; element_frequencies: ``{Z: fraction of all atoms}``.
    """

    name: str = ""
    split: str = ""
    n_structures: int = 0
    n_atoms_total: int = 0
    num_atoms_hist: dict[int, int] = field(default_factory=dict)
    max_atoms: int = 0
    volume_per_atom_mean: float = 0.0
    volume_per_atom_std: float = 0.0
    pressure_bins: list[float] = field(default_factory=lambda: list(DEFAULT_PRESSURE_BINS))
    volume_per_atom_by_pressure: list[dict[str, Any]] = field(default_factory=list)
    pressure_mean: float = 0.0
    pressure_std: float = 0.0
    pressure_min: float = 0.0
    pressure_max: float = 0.0
    element_counts: dict[int, int] = field(default_factory=dict)
    element_frequencies: dict[int, float] = field(default_factory=dict)

    @classmethod
    def compute(
        cls,
        num_atoms: np.ndarray,
        volumes: np.ndarray,
        pressures: np.ndarray,
        atom_types: np.ndarray,
        *,
        name: str = "",
        split: str = "",
        pressure_bins: Sequence[float] = DEFAULT_PRESSURE_BINS,
    ) -> "DatasetStats":
        """Statistics from per-structure atom counts, cell volumes (Å³), pressures (GPa)
        and the concatenated atomic numbers of all structures."""
        num_atoms = np.asarray(num_atoms, dtype=np.int64)
        volumes = np.asarray(volumes, dtype=np.float64)
        pressures = np.asarray(pressures, dtype=np.float64)
        atom_types = np.asarray(atom_types, dtype=np.int64)
        bins = [float(b) for b in pressure_bins]
        if any(b2 <= b1 for b1, b2 in zip(bins, bins[1:])):
            raise ValueError(f"pressure_bins must increase: {bins}")
        n = len(num_atoms)
        if n == 0:
            return cls(name=name, split=split, pressure_bins=bins)
        vpa = volumes / num_atoms
        values, counts = np.unique(num_atoms, return_counts=True)
        by_p = []
        for i, lo in enumerate(bins):
            hi = bins[i + 1] if i + 1 < len(bins) else None
            mask = (pressures >= lo) & ((pressures < hi) if hi is not None else True)
            if i == 0:
                mask |= pressures < lo  # below the first edge counts in the first bin
            sel = vpa[mask]
            by_p.append({
                "lo": lo, "hi": hi, "count": int(sel.size),
                "mean": float(sel.mean()) if sel.size else None,
                "std": float(sel.std()) if sel.size else None,
            })
        zc = np.bincount(atom_types, minlength=MAX_Z + 1)
        nz = np.nonzero(zc)[0]
        total = int(zc.sum())
        return cls(
            name=name,
            split=split,
            n_structures=n,
            n_atoms_total=int(num_atoms.sum()),
            num_atoms_hist={int(v): int(c) for v, c in zip(values, counts)},
            max_atoms=int(num_atoms.max()),
            volume_per_atom_mean=float(vpa.mean()),
            volume_per_atom_std=float(vpa.std()),
            pressure_bins=bins,
            volume_per_atom_by_pressure=by_p,
            pressure_mean=float(pressures.mean()),
            pressure_std=float(pressures.std()),
            pressure_min=float(pressures.min()),
            pressure_max=float(pressures.max()),
            element_counts={int(z): int(zc[z]) for z in nz},
            element_frequencies={int(z): float(zc[z] / total) for z in nz},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (integer keys become strings, as JSON requires)."""
        d = asdict(self)
        for key in ("num_atoms_hist", "element_counts", "element_frequencies"):
            d[key] = {str(k): v for k, v in d[key].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetStats":
        """Inverse of :meth:`to_dict` (accepts int or str keys)."""
        d = dict(d)
        d["num_atoms_hist"] = {int(k): int(v) for k, v in d.get("num_atoms_hist", {}).items()}
        d["element_counts"] = {int(k): int(v) for k, v in d.get("element_counts", {}).items()}
        d["element_frequencies"] = {int(k): float(v) for k, v in d.get("element_frequencies", {}).items()}
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | Path) -> None:
        """Write as JSON atomically."""
        from gencrystal.io import write_json

        write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> "DatasetStats":
        """Read a JSON file written by :meth:`save`."""
        with open(path) as fh:
            return cls.from_dict(json.load(fh))

    def num_atoms_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """``(atom counts, probabilities)`` for sampling the number of atoms."""
        keys = np.array(sorted(self.num_atoms_hist), dtype=np.int64)
        p = np.array([self.num_atoms_hist[int(k)] for k in keys], dtype=np.float64)
        return keys, p / p.sum() if p.sum() > 0 else p

    def volume_per_atom_at(self, pressure_gpa: float) -> float:
        """Mean volume per atom (Å³) of the pressure bin holding ``pressure_gpa``; the
        overall mean when that bin is empty."""
        for b in self.volume_per_atom_by_pressure:
            if pressure_gpa >= b["lo"] and (b["hi"] is None or pressure_gpa < b["hi"]):
                if b["count"] and b["mean"] is not None and math.isfinite(b["mean"]):
                    return float(b["mean"])
        return float(self.volume_per_atom_mean)
