"""Lattice geometry shared by data, model and sampling code (NumPy and torch).

Convention everywhere: a lattice ``L`` is a 3×3 matrix whose **rows** are the lattice
vectors in Å (ASE ``cell`` convention); Cartesian positions are ``x = f @ L`` for
fractional coordinates ``f`` (row vectors). A rotation ``R`` of the Cartesian frame
maps ``L -> L @ R.T``. The metric ``G = L @ L.T`` is rotation invariant, and so is the
symmetric polar factor ``S = G^(1/2)`` that MatterGen diffuses: ``L = S @ Q`` with
``Q`` orthogonal, so replacing ``L`` by ``S`` only rotates the crystal.
"""

from __future__ import annotations

import numpy as np
import torch


def polar_symmetric_np(lattice: np.ndarray) -> np.ndarray:
    """Symmetric polar factor ``S = (L Lᵀ)^(1/2)`` of one (3, 3) or a batch (..., 3, 3)."""
    u, s, _vt = np.linalg.svd(lattice)
    return (u * s[..., None, :]) @ np.swapaxes(u, -1, -2)


def polar_symmetric(lattice: torch.Tensor) -> torch.Tensor:
    """Torch version of :func:`polar_symmetric_np`, batched over leading dimensions."""
    u, s, _vh = torch.linalg.svd(lattice)
    return (u * s.unsqueeze(-2)) @ u.transpose(-1, -2)


def symmetrize(matrix: torch.Tensor) -> torch.Tensor:
    """``(M + Mᵀ) / 2`` over the last two dimensions."""
    return 0.5 * (matrix + matrix.transpose(-1, -2))


def polar_decomposition(lattice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left polar decomposition ``L = S @ Q`` (batched): ``S = (L Lᵀ)^(1/2)`` symmetric
    (Å) and ``Q`` orthogonal. Rotating the frame, ``L -> L @ R.T``, leaves ``S`` unchanged
    and maps ``Q -> Q @ R.T``; for a symmetric positive-definite ``L``, ``Q = I``."""
    u, s, vh = torch.linalg.svd(lattice)
    return (u * s.unsqueeze(-2)) @ u.transpose(-1, -2), u @ vh
