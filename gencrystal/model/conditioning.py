"""Conditioning embeddings: composition, scalar conditions (pressure, ...), null tokens.

Every condition reads one column of the batch (``batch[column]``) and maps it to a
vector; a learned *null* embedding replaces it when the condition is absent or dropped
(probability ``p_uncond`` in training), so that classifier-free guidance works at
sampling time. Conditions are config entries (``conf/model/conditions/*.yaml``) built
by Hydra ``_target_``; adding a new scalar condition (e.g. temperature) is a YAML entry
with ``_target_: gencrystal.model.conditioning.ScalarCondition`` and its column name.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from gencrystal.elements import MAX_Z
from gencrystal.errors import GencrystalError


class GaussianExpansion(nn.Module):
    """Gaussian radial-basis expansion of a scalar (Cond-CDVAE / cG-SchNet style).

    Centres ``linspace(start, stop, n_basis)``; width = centre spacing. Input [B] ->
    output [B, n_basis] with ``exp(-½((x − μ_k)/w)²)``.
    """

    centers: torch.Tensor  # buffer

    def __init__(self, start: float = -2.0, stop: float = 5.0, n_basis: int = 80):
        super().__init__()
        if n_basis < 2 or stop <= start:
            raise GencrystalError(f"GaussianExpansion needs n_basis >= 2 and stop > start, got {n_basis}, [{start}, {stop}]")
        self.register_buffer("centers", torch.linspace(start, stop, n_basis), persistent=False)
        self.width = (stop - start) / (n_basis - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((x[..., None] - self.centers.to(x)) / self.width) ** 2)


class Condition(nn.Module):
    """Base class: ``embed(values) -> [B, out_dim]`` plus a learned null embedding."""

    column: str

    def __init__(self, column: str, out_dim: int):
        super().__init__()
        self.column = column
        self.out_dim = out_dim
        self.null = nn.Parameter(torch.randn(out_dim) * 0.02)

    def embed(self, values: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, values: torch.Tensor | None, drop: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Embedding [B, out_dim]; rows with ``drop`` (bool [B]) or ``values=None`` get the null."""
        null = self.null.unsqueeze(0).expand(batch_size, -1)
        if values is None:
            return null
        emb = self.embed(values)
        return torch.where(drop[:, None], null.to(emb.dtype), emb)


class ScalarCondition(Condition):
    """A scalar per structure (pressure in GPa, ...): z-score, Gaussian expansion, linear.

    ``mean``/``std`` (units of the column) z-score the value; left ``None`` in config they
    are set from the training data by :meth:`set_scaler` before training and then live in
    the checkpoint. ``start``/``stop`` bound the basis in z units (default −2..5, as
    Cond-CDVAE's released runs).
    """

    mean: torch.Tensor  # buffers (units of the column), in the checkpoint
    std: torch.Tensor

    def __init__(
        self,
        column: str,
        out_dim: int = 64,
        n_basis: int = 80,
        start: float = -2.0,
        stop: float = 5.0,
        mean: float | None = None,
        std: float | None = None,
    ):
        super().__init__(column, out_dim)
        self.expansion = GaussianExpansion(start, stop, n_basis)
        self.linear = nn.Linear(n_basis, out_dim)
        self.register_buffer("mean", torch.tensor(0.0 if mean is None else float(mean)))
        self.register_buffer("std", torch.tensor(1.0 if std is None else float(std)))
        self.start, self.stop = start, stop
        self.scaler_given = mean is not None and std is not None

    def set_scaler(self, mean: float, std: float) -> None:
        """Set the z-scoring constants (std ≤ 1e-8, e.g. all pressures 0, becomes 1)."""
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise GencrystalError(f"condition {self.column!r}: non-finite scaler mean={mean}, std={std}")
        self.mean.fill_(float(mean))
        self.std.fill_(float(std) if std > 1e-8 else 1.0)

    def zscore(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean.to(values)) / self.std.to(values)

    def embed(self, values: torch.Tensor) -> torch.Tensor:
        values = values.reshape(-1)
        z = self.zscore(values.to(self.linear.weight.dtype))
        return self.linear(self.expansion(z))


class CompositionCondition(Condition):
    """Element-fraction vector [B, n_elements] (index Z−1) -> learned embedding.

    ``fractions @ E`` is the fraction-weighted mean of learned element embeddings,
    followed by an MLP; it sees proportions only (exact counts enter through the fixed
    atom types in CSP mode).
    """

    def __init__(self, column: str = "composition", out_dim: int = 64, n_elements: int = MAX_Z, hidden_dim: int = 128):
        super().__init__(column, out_dim)
        self.n_elements = n_elements
        self.element = nn.Linear(n_elements, hidden_dim, bias=False)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, out_dim))

    def embed(self, values: torch.Tensor) -> torch.Tensor:
        if values.shape[-1] != self.n_elements:
            raise GencrystalError(f"composition condition expects {self.n_elements} element fractions, got {values.shape[-1]}")
        values = values.to(self.element.weight.dtype)
        values = values / values.sum(-1, keepdim=True).clamp_min(1e-12)
        return self.mlp(self.element(values))


class ConditionEmbedder(nn.Module):
    """All conditions of a model -> one vector per structure [B, out_dim].

    In training each structure's conditions are dropped with probability ``p_uncond``
    (all together unless ``dropout_iid``), replacing them with their null embeddings.
    """

    def __init__(
        self,
        conditions: Mapping[str, Condition] | None = None,
        p_uncond: float = 0.2,
        dropout_iid: bool = False,
        out_dim: int = 128,
    ):
        super().__init__()
        self.conditions = nn.ModuleDict(dict(conditions or {}))
        if not 0.0 <= p_uncond <= 1.0:
            raise GencrystalError(f"p_uncond={p_uncond} must lie in [0, 1]")
        self.p_uncond = p_uncond
        self.dropout_iid = dropout_iid
        self.out_dim = out_dim if len(self.conditions) else 0
        if len(self.conditions):
            total = sum(c.out_dim for c in self.condition_list())
            self.mix = nn.Sequential(nn.Linear(total, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    @property
    def columns(self) -> dict[str, str]:
        """Condition name -> batch column it reads."""
        return {name: c.column for name, c in self.conditions.items() if isinstance(c, Condition)}

    def condition_list(self) -> list[Condition]:
        """The conditions in order (``self.conditions.values()`` typed as what they are)."""
        return [c for c in self.conditions.values() if isinstance(c, Condition)]

    def forward(
        self,
        values: Mapping[str, torch.Tensor | None],
        batch_size: int,
        uncond: bool | torch.Tensor = False,
        generator: torch.Generator | None = None,
        drop: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor | None:
        """``values`` maps condition *column* -> tensor ([B] or [B, k]); missing = absent.

        ``uncond``: True drops all; a bool tensor [B] drops those rows. ``drop`` maps a
        column to a bool tensor [B] dropping that condition only (per-condition guidance).
        In training mode, random dropping with ``p_uncond`` is added on top.
        """
        if not len(self.conditions):
            return None
        device = next(self.mix.parameters()).device
        drop_cols = drop
        if isinstance(uncond, torch.Tensor):
            base = uncond.to(device=device, dtype=torch.bool).reshape(batch_size)
        else:
            base = torch.full((batch_size,), bool(uncond), dtype=torch.bool, device=device)
        shared = None
        if self.training and self.p_uncond > 0:
            shared = torch.rand(batch_size, device=device, generator=generator) < self.p_uncond
        parts = []
        for c in self.condition_list():
            dropped = base
            if drop_cols is not None and c.column in drop_cols:
                dropped = dropped | drop_cols[c.column].to(device=device, dtype=torch.bool).reshape(batch_size)
            if shared is not None:
                rnd = (torch.rand(batch_size, device=device, generator=generator) < self.p_uncond) if self.dropout_iid else shared
                dropped = dropped | rnd
            v = values.get(c.column)
            parts.append(c(v.to(device) if v is not None else None, dropped, batch_size))
        return self.mix(torch.cat(parts, dim=-1))
