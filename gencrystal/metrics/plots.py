"""Plots of the metrics (matplotlib, Agg backend; PNG written atomically)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def _save(fig, path: str | os.PathLike) -> None:
    from gencrystal.io import atomic_write

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rmse_histogram(rmse_filtered: Sequence[float], rmse_all: Sequence[float], path: str | os.PathLike, title: str = "") -> None:
    """Histogram of per-reference RMSE (dimensionless) of matched references."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    bins = np.linspace(0.0, 0.5, 26)
    rmse_all = np.clip(np.asarray(list(rmse_all), dtype=float), 0.0, 0.5)  # matches stay below stol = 0.5
    rmse_filtered = np.clip(np.asarray(list(rmse_filtered), dtype=float), 0.0, 0.5)
    ax.hist(list(rmse_all), bins=bins, alpha=0.5, label=f"without validity filter (n={len(rmse_all)})")
    ax.hist(list(rmse_filtered), bins=bins, histtype="step", lw=2, label=f"with validity filter (n={len(rmse_filtered)})")
    ax.set_xlabel("RMSE (normalised by (V/N)$^{1/3}$)")
    ax.set_ylabel("matched references")
    ax.set_title(title or "RMSE of matched references")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def match_rate_by_atoms(
    by_atoms_filtered: dict[int, tuple[int, int]],
    by_atoms_all: dict[int, tuple[int, int]],
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """Bar chart of match rate per atom count of the reference cell (with counts on a twin axis)."""
    plt = _plt()
    ns = sorted(by_atoms_all)
    x = np.arange(len(ns))
    rate_f = [by_atoms_filtered.get(n, (0, 1))[0] / max(1, by_atoms_filtered.get(n, (0, 1))[1]) for n in ns]
    rate_a = [by_atoms_all[n][0] / max(1, by_atoms_all[n][1]) for n in ns]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.35 * len(ns) + 2), 3.8))
    ax.bar(x - 0.2, rate_a, width=0.4, label="without validity filter")
    ax.bar(x + 0.2, rate_f, width=0.4, label="with validity filter")
    ax.set_xticks(x, [str(n) for n in ns], fontsize=7)
    ax.set_xlabel("atoms in reference cell")
    ax.set_ylabel("match rate")
    ax.set_ylim(0, 1.05)
    ax2 = ax.twinx()
    ax2.plot(x, [by_atoms_all[n][1] for n in ns], "k.", ms=5, label="references (right axis)")
    ax2.set_ylabel("references", fontsize=8)
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.set_title(title or "match rate by atom count")
    _save(fig, path)
    plt.close(fig)


def distribution_comparison(
    pred: Sequence[float], ref: Sequence[float], path: str | os.PathLike, xlabel: str, discrete: bool = False
) -> None:
    """Overlaid normalised histograms of a per-crystal quantity, samples against references."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    allv = np.asarray(list(pred) + list(ref), dtype=float)
    allv = allv[np.isfinite(allv)]
    bins: np.ndarray | int
    if discrete and allv.size:
        bins = np.arange(allv.min() - 0.5, allv.max() + 1.5, 1.0)
    else:
        bins = np.linspace(allv.min(), allv.max(), 40) if allv.size else 10
    ax.hist(list(ref), bins=bins, density=True, alpha=0.5, label=f"reference (n={len(ref)})")
    ax.hist(list(pred), bins=bins, density=True, histtype="step", lw=2, label=f"samples (n={len(pred)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
