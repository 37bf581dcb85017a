"""Per-segment (per-sample) reductions with torch's own scatter ops.

A segment is one sample of a batch (one crystal); rows ``i`` of a per-row tensor belong
to segment ``index[i]``. ``index=None`` means one row per segment (row ``b`` is segment
``b``). All functions are batched (no Python loops over segments) and differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def segment_sum(x: Tensor, index: Tensor | None, num_segments: int) -> Tensor:
    """Sum the rows of ``x`` ([N, ...]) per segment -> [num_segments, ...]."""
    if index is None:
        if x.shape[0] != num_segments:
            raise ValueError(f"index=None needs one row per segment: {x.shape[0]} rows, {num_segments} segments")
        return x
    out = torch.zeros((num_segments, *x.shape[1:]), dtype=x.dtype, device=x.device)
    return out.index_add(0, index, x)


def segment_count(index: Tensor | None, num_segments: int, like: Tensor) -> Tensor:
    """Number of rows in each segment as a float tensor [num_segments] (dtype of ``like``)."""
    if index is None:
        return torch.ones(num_segments, dtype=like.dtype, device=like.device)
    ones = torch.ones(index.shape[0], dtype=like.dtype, device=like.device)
    return torch.zeros(num_segments, dtype=like.dtype, device=like.device).index_add(0, index, ones)


def segment_mean(x: Tensor, index: Tensor | None, num_segments: int) -> Tensor:
    """Mean of the rows of ``x`` per segment -> [num_segments, ...] (empty segments give 0)."""
    total = segment_sum(x, index, num_segments)
    count = segment_count(index, num_segments, x).clamp(min=1.0)
    return total / count.reshape(-1, *([1] * (x.dim() - 1)))


def remove_segment_mean(x: Tensor, index: Tensor | None, num_segments: int) -> Tensor:
    """Subtract each segment's mean row from its rows (translation-invariant part).

    For a per-atom displacement or score ``x`` [N, d] this projects out the common
    translation of a crystal, so that shifting all atoms by one vector changes nothing.
    """
    if index is None:
        return torch.zeros_like(x)
    return x - segment_mean(x, index, num_segments)[index]


def segment_sq_norm(x: Tensor, index: Tensor | None, num_segments: int) -> Tensor:
    """Squared Euclidean norm of all entries of each segment -> [num_segments]."""
    return segment_sum(_flat(x).pow(2).sum(-1), index, num_segments)


def rows_of(values: Tensor, index: Tensor | None) -> Tensor:
    """Broadcast per-segment ``values`` [B, ...] to rows: ``values[index]`` (or as is)."""
    return values if index is None else values[index]


def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """Append singleton dims to ``v`` ([n] or [n, ...]) so it broadcasts against ``x`` [n, ...]."""
    return v.reshape(*v.shape, *([1] * (x.dim() - v.dim())))
