"""The lattice prior: where lattice diffusion ends, scaled by atom count and pressure.

The lattice field is the symmetric polar factor ``S`` (Å, rows = lattice vectors). Its
variance-preserving diffusion tends to ``N(μ(n, P)·I, v·n^(2/3))`` entry-wise
(symmetric noise), with

* ``μ(n, P) = (n · c(P))^(1/3)`` Å — the edge of a cube holding ``n`` atoms at
  ``c(P)`` Å³/atom;
* ``v`` (Å²) — the per-entry variance per ``n^(2/3)``.

``c(P)`` is the volume per atom as a function of pressure (GPa). Three models, chosen
by config (``model.lattice_prior.volume_model``):

* ``constant``: ``c(P) = c0`` (the anchors' choice; MatterGen's MP-20 value is
  17.33 Å³/atom);
* ``loglinear``: ``ln c(P) = ln c0 − b·P`` with ``b ≥ 0``;
* ``murnaghan``: ``c(P) = c0 · (1 + B'·P/B0)^(−1/B')`` with ``B0 > 0`` GPa, ``B' > 0``
  (Murnaghan's equation of state applied to the data's average volume).

Both pressure models are fitted by weighted least squares (scipy ``curve_fit``, weights =
structure counts) on the per-pressure-bin mean volumes of the training data; when all
training pressures are (nearly) the same — e.g. MP-20, all 0 GPa — they fall back to
``constant``. ``v`` is either given or fitted as the mean squared deviation of the
training polar factors from ``μ(n, P)·I`` per entry, divided by ``n^(2/3)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from gencrystal.errors import GencrystalError

VOLUME_MODELS = ("constant", "loglinear", "murnaghan")


@dataclass
class LatticePriorParams:
    """Fitted constants of the lattice prior (plain floats; stored in checkpoints).

    ``c0`` Å³/atom at P = 0 GPa, ``b`` 1/GPa (loglinear), ``bulk_modulus`` GPa and
    ``bulk_modulus_derivative`` (dimensionless, murnaghan), ``v`` Å² per n^(2/3).
    """

    volume_model: str = "constant"
    c0: float = 17.33
    b: float = 0.0
    bulk_modulus: float = 100.0
    bulk_modulus_derivative: float = 4.0
    v: float = 0.25
    fit_info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatticePriorParams:
        return cls(**d)


def volume_per_atom_np(pressure_gpa: np.ndarray, p: LatticePriorParams) -> np.ndarray:
    """``c(P)`` in Å³/atom for pressures in GPa (NumPy)."""
    pressure = np.asarray(pressure_gpa, dtype=float)
    if p.volume_model == "constant":
        return np.full_like(pressure, p.c0)
    if p.volume_model == "loglinear":
        return p.c0 * np.exp(-p.b * pressure)
    if p.volume_model == "murnaghan":
        return p.c0 * (1.0 + p.bulk_modulus_derivative * pressure / p.bulk_modulus) ** (-1.0 / p.bulk_modulus_derivative)
    raise GencrystalError(f"unknown lattice volume_model {p.volume_model!r}; choose one of {', '.join(VOLUME_MODELS)}")


def _murnaghan(pr, c0, b0, bp):
    return c0 * (1.0 + bp * pr / b0) ** (-1.0 / bp)


def fit_volume_model(
    pressures_gpa: Sequence[float],
    volumes_per_atom: Sequence[float],
    counts: Sequence[float] | None = None,
    model: str = "murnaghan",
    min_pressure_span_gpa: float = 1.0,
) -> LatticePriorParams:
    """Fit ``c(P)`` to per-pressure-bin mean volumes (Å³/atom) at pressures (GPa).

    ``counts`` weights each bin (structures per bin). Falls back to ``constant`` (the
    weighted mean volume) when the pressures span less than ``min_pressure_span_gpa``
    or fewer than two bins are populated. Returns params with ``v`` left at its default.
    """
    if model not in VOLUME_MODELS:
        raise GencrystalError(f"unknown lattice volume_model {model!r}; choose one of {', '.join(VOLUME_MODELS)}")
    pr = np.asarray(pressures_gpa, dtype=float)
    vol = np.asarray(volumes_per_atom, dtype=float)
    w = np.ones_like(pr) if counts is None else np.asarray(counts, dtype=float)
    keep = (w > 0) & np.isfinite(pr) & np.isfinite(vol) & (vol > 0)
    pr, vol, w = pr[keep], vol[keep], w[keep]
    if len(vol) == 0:
        raise GencrystalError("cannot fit the lattice prior: no volume-per-atom data")
    c_mean = float(np.average(vol, weights=w))
    span = float(pr.max() - pr.min())
    if model == "constant" or len(vol) < 2 or span < min_pressure_span_gpa:
        info = {"requested": model, "fallback": model != "constant", "pressure_span_gpa": span, "bins": int(len(vol))}
        return LatticePriorParams(volume_model="constant", c0=c_mean, fit_info=info)
    from scipy.optimize import curve_fit

    sigma = 1.0 / np.sqrt(w)
    if model == "loglinear":
        (a, b), _ = curve_fit(
            lambda x, a, b: a - b * x,
            pr,
            np.log(vol),
            p0=[math.log(c_mean), 0.0],
            sigma=sigma,
            bounds=([-np.inf, 0.0], [np.inf, np.inf]),
        )
        pred = np.exp(a - b * pr)
        out = LatticePriorParams(volume_model="loglinear", c0=float(math.exp(a)), b=float(b))
    else:
        c0_guess = float(vol[np.argmin(pr)])
        (c0, b0, bp), _ = curve_fit(
            _murnaghan,
            pr,
            vol,
            p0=[c0_guess, 100.0, 4.0],
            sigma=sigma,
            bounds=([1e-3, 1e-2, 1e-2], [1e4, 1e4, 20.0]),
            maxfev=20000,
        )
        pred = _murnaghan(pr, c0, b0, bp)
        out = LatticePriorParams(
            volume_model="murnaghan", c0=float(c0), bulk_modulus=float(b0), bulk_modulus_derivative=float(bp)
        )
    rel = float(np.sqrt(np.average(((pred - vol) / vol) ** 2, weights=w)))
    out.fit_info = {
        "requested": model,
        "fallback": False,
        "pressure_span_gpa": span,
        "bins": int(len(vol)),
        "weighted_rel_rmse": rel,
    }
    return out


class LatticePrior(torch.nn.Module):
    """Per-sample limit mean and std of the lattice VP diffusion (torch, differentiable-free).

    ``mean(n, P)`` returns the scalar ``μ(n, P)`` in Å (the prior mean is ``μ·I``);
    ``std(n)`` returns ``sqrt(v)·n^(1/3)`` in Å. ``n`` is the atom count per cell, ``P``
    the pressure in GPa (ignored by the constant model).
    """

    def __init__(self, params: LatticePriorParams | dict):
        super().__init__()
        self.params = params if isinstance(params, LatticePriorParams) else LatticePriorParams.from_dict(dict(params))
        if self.params.volume_model not in VOLUME_MODELS:
            raise GencrystalError(f"unknown lattice volume_model {self.params.volume_model!r}")
        if self.params.v <= 0 or self.params.c0 <= 0:
            raise GencrystalError(f"lattice prior needs c0 > 0 and v > 0, got c0={self.params.c0}, v={self.params.v}")

    def volume_per_atom(self, pressure_gpa: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """``c(P)`` (Å³/atom) as a tensor shaped and typed like ``like``."""
        p = self.params
        if p.volume_model == "constant":
            return torch.full_like(like, p.c0)
        pr = torch.zeros_like(like) if pressure_gpa is None else pressure_gpa.to(like)
        if p.volume_model == "loglinear":
            return p.c0 * torch.exp(-p.b * pr)
        return p.c0 * (1.0 + p.bulk_modulus_derivative * pr / p.bulk_modulus) ** (-1.0 / p.bulk_modulus_derivative)

    def mean(self, num_atoms: torch.Tensor, pressure_gpa: torch.Tensor | None = None, dtype=torch.float32) -> torch.Tensor:
        """``μ(n, P) = (n·c(P))^(1/3)`` in Å, shape [B]."""
        n = num_atoms.to(dtype)
        return (n * self.volume_per_atom(pressure_gpa, n)) ** (1.0 / 3.0)

    def std(self, num_atoms: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """``sqrt(v)·n^(1/3)`` in Å, shape [B]."""
        return math.sqrt(self.params.v) * num_atoms.to(dtype) ** (1.0 / 3.0)

    def mean_matrix(self, num_atoms: torch.Tensor, pressure_gpa: torch.Tensor | None = None, dtype=torch.float32) -> torch.Tensor:
        """The prior mean ``μ(n, P)·I``, shape [B, 3, 3] (Å)."""
        mu = self.mean(num_atoms, pressure_gpa, dtype)
        return mu[:, None, None] * torch.eye(3, dtype=dtype, device=mu.device)


def fit_v(polar_lattices: np.ndarray, num_atoms: np.ndarray, mu: np.ndarray) -> float:
    """Per-entry variance of ``S − μ(n, P)·I`` per ``n^(2/3)`` (Å²), averaged over cells."""
    dev = np.asarray(polar_lattices, dtype=float) - np.asarray(mu, dtype=float)[:, None, None] * np.eye(3)
    per = (dev**2).mean(axis=(1, 2)) / np.asarray(num_atoms, dtype=float) ** (2.0 / 3.0)
    return float(per.mean())


def fit_lattice_prior(
    polar_lattices: np.ndarray | None,
    num_atoms: np.ndarray | None,
    pressures_gpa: np.ndarray | None,
    *,
    volume_model: str = "murnaghan",
    v: float | None = None,
    bin_width_gpa: float = 5.0,
    min_pressure_span_gpa: float = 1.0,
    pressure_bins: Sequence[tuple[float, float, int]] | None = None,
) -> LatticePriorParams:
    """Fit the lattice prior on training cells.

    ``polar_lattices`` [M,3,3] (Å, symmetric polar factors), ``num_atoms`` [M],
    ``pressures_gpa`` [M]. Volumes per atom are binned by pressure (``bin_width_gpa``)
    unless ``pressure_bins`` — (pressure GPa, mean Å³/atom, count) triples, e.g. from
    :class:`gencrystal.data.stats.DatasetStats` — are given. ``v=None`` fits ``v`` from
    the lattices (needs them); a number fixes it.
    """
    if pressure_bins is None:
        if polar_lattices is None:
            raise GencrystalError("cannot fit the lattice prior: neither lattices nor pressure bins given")
        lat = np.asarray(polar_lattices, dtype=float)
        n = np.asarray(num_atoms, dtype=float)
        pr = np.zeros(len(n)) if pressures_gpa is None else np.asarray(pressures_gpa, dtype=float)
        vpa = np.abs(np.linalg.det(lat)) / n
        idx = np.floor(pr / bin_width_gpa).astype(int)
        bins: list[tuple[float, ...]] = []
        for k in np.unique(idx):
            sel = idx == k
            bins.append((float(pr[sel].mean()), float(vpa[sel].mean()), int(sel.sum())))
    else:
        bins = [tuple(b) for b in pressure_bins]
    params = fit_volume_model(
        [b[0] for b in bins],
        [b[1] for b in bins],
        [b[2] for b in bins],
        model=volume_model,
        min_pressure_span_gpa=min_pressure_span_gpa,
    )
    if v is not None:
        params.v = float(v)
    else:
        if polar_lattices is None:
            raise GencrystalError("fitting v needs the training lattices; set model.lattice_prior.v to a number")
        lat = np.asarray(polar_lattices, dtype=float)
        n = np.asarray(num_atoms, dtype=float)
        pr = np.zeros(len(n)) if pressures_gpa is None else np.asarray(pressures_gpa, dtype=float)
        mu = (n * volume_per_atom_np(pr, params)) ** (1.0 / 3.0)
        params.v = fit_v(lat, n, mu)
    params.fit_info["pressure_bins"] = [list(b) for b in bins][:64]
    return params
