"""Choosing which frames to label: uncertainty threshold, then diversity.

Fingerprint: per species pair, a Gaussian-smoothed histogram of interatomic distances
(Å, absolute — unlike the search's shape-only fingerprint, density matters here because
a compressed copy of a known structure is exactly what the potential gets wrong),
normalised per atom. Neighbours come from ASE's ``neighbor_list``.

Selection (Hessmann et al.-style clustering against near-duplicates): frames whose
committee spread passes the :class:`UncertaintyPolicy` are clustered with k-means
(scikit-learn) on their fingerprints into as many clusters as labels are wanted, and
the most uncertain frame of each cluster is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms


@dataclass
class UncertaintyPolicy:
    """When a frame counts as uncertain (``conf/learn.yaml: uncertainty``).

    Attributes:
        force_threshold: committee force spread (max over atoms), eV/Å, above which a
            frame is uncertain.
        stress_threshold: committee stress spread (max Voigt component), GPa, above which
            a frame is uncertain (forces vanish by symmetry in small cells; the stress
            spread is what tells an extrapolated equation of state).
        force_ceiling: frames above this force spread (eV/Å) are discarded as unphysical
            (DP-GEN's upper trust level); None keeps them.
        stop_fraction: the loop stops once the uncertain fraction of relaxation frames
            falls below this.
    """

    force_threshold: float = 0.05
    stress_threshold: float = 1.0
    force_ceiling: float | None = None
    stop_fraction: float = 0.05

    def uncertain(self, forces_std: float, stress_std: float) -> bool:
        """True when either spread is above its threshold (and under the ceiling)."""
        if self.force_ceiling is not None and forces_std > self.force_ceiling:
            return False
        return bool(forces_std > self.force_threshold or stress_std > self.stress_threshold)

    def score(self, forces_std: float, stress_std: float) -> float:
        """Uncertainty in units of the thresholds (max of the two ratios)."""
        return float(max(forces_std / self.force_threshold, stress_std / self.stress_threshold))


def distance_fingerprint(
    atoms: Atoms, elements: Sequence[str], cutoff: float = 6.0, bin_size: float = 0.1, sigma: float = 0.1
) -> np.ndarray:
    """Smoothed pair-distance histograms, one block per species pair (1-D array).

    Args:
        atoms: the structure.
        elements: fixes the species-pair blocks (all frames of one loop use the same).
        cutoff: largest distance, Å.
        bin_size: histogram bin, Å.
        sigma: Gaussian smoothing width, Å.
    """
    from ase.neighborlist import neighbor_list
    from scipy.ndimage import gaussian_filter1d

    elements = sorted(set(elements))
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    nbins = int(np.ceil(cutoff / bin_size))
    out = np.zeros((len(pairs), nbins))
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    index = {p: k for k, p in enumerate(pairs)}
    for si, sj, dist in zip(sym[i], sym[j], d):
        k = index[tuple(sorted((si, sj)))]
        out[k, min(int(dist / bin_size), nbins - 1)] += 1.0
    out /= max(len(atoms), 1)
    out = gaussian_filter1d(out, sigma / bin_size, axis=1, mode="constant")
    return out.ravel()


def select_frames(
    frames: Sequence[Atoms],
    scores: Sequence[float],
    n_select: int,
    elements: Sequence[str],
    seed: int = 0,
    exclude: set[int] | None = None,
) -> list[int]:
    """Indices of up to ``n_select`` diverse, uncertain frames.

    Args:
        frames: candidate frames (already filtered to the uncertain ones by the caller).
        scores: their uncertainty scores (higher = more uncertain).
        n_select: how many to return.
        elements: species for the fingerprint blocks.
        seed: k-means seed.
        exclude: indices never to return (e.g. already labelled).

    Returns:
        Indices into ``frames``, most uncertain first; one per k-means cluster.
    """
    exclude = exclude or set()
    pool = [k for k in range(len(frames)) if k not in exclude]
    if not pool or n_select <= 0:
        return []
    if len(pool) <= n_select:
        return sorted(pool, key=lambda k: -scores[k])
    from sklearn.cluster import KMeans

    fps = np.array([distance_fingerprint(frames[k], elements) for k in pool])
    labels = KMeans(n_clusters=n_select, n_init=4, random_state=seed).fit_predict(fps)
    chosen = []
    for c in range(n_select):
        members = [pool[m] for m in np.flatnonzero(labels == c)]
        if members:
            chosen.append(max(members, key=lambda k: scores[k]))
    return sorted(chosen, key=lambda k: -scores[k])
