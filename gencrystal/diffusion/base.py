"""Small shared pieces: the corrupted-batch record and seeded random draws."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Corrupted:
    """One field of a noised batch, as returned by ``process.corrupt``.

    Attributes:
        x_t: the noised field (same shape as ``x0``).
        target: what the network regresses (continuous fields); ``x0`` for D3PM.
        t: the per-sample times, Tensor[B].
        index: row -> sample ids (LongTensor[N]) or ``None`` for one row per sample.
        num_segments: the batch size B.
        aux: process-specific tensors the loss needs (noise level, discrete step, ...).
    """

    x_t: Tensor
    target: Tensor
    t: Tensor
    index: Tensor | None
    num_segments: int
    aux: dict[str, Tensor] = field(default_factory=dict)


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise with the shape, dtype and device of ``x`` (seeded by ``generator``)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def rand_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform [0, 1) noise with the shape, dtype and device of ``x`` (seeded by ``generator``)."""
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def check_times(t: Tensor, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``t`` is a 1-D tensor of finite times in (0, 1] (or [0, 1])."""
    if t.dim() != 1:
        raise ValueError(f"t must be one time per sample (1-D), got shape {tuple(t.shape)}")
    lo_ok = (t >= 0) if allow_zero else (t > 0)
    if not bool(torch.all(lo_ok & (t <= 1) & torch.isfinite(t))):
        bad = t[~(lo_ok & (t <= 1) & torch.isfinite(t))][0].item()
        raise ValueError(f"time must lie in {'[0' if allow_zero else '(0'}, 1], got {bad}")
