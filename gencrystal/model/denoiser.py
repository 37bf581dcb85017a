"""Denoisers: networks from a noisy crystal to per-field outputs.

The interface is one class wide, :class:`Denoiser`, keyed by field name like the diffusion
side: ``forward(x, num_atoms [B], batch [N], t [B] in [0, 1], cond [B, C] or None) -> {field:
output}``, where ``x`` holds the noisy state by field name — ``"frac_coords"`` [N, 3],
``"lattice"`` [B, 3, 3] (Å, rows = vectors), ``"atom_types"`` [N] long, and any further field
— and the outputs are ``{"frac_coords": [N, 3], "lattice": [B, 3, 3], "atom_types": [N, K],
...}``. Optional ``lattice_mean``/``lattice_std`` [B] (Å) are the lattice prior's scale per
cell, for input normalisation (given by :class:`gencrystal.model.fields.LatticeContext`).
``atom_types`` are ``Z − 1`` (0..99) with ``mask_token`` (100) for the absorbing state (fixed
inputs in CSP, where the types are not diffused). The raw outputs are interpreted by the
diffusion fields (scores, noise predictions, velocities or logits).

A field beyond the built-in three gets its output from a :class:`FieldHead` named by
``head`` in the field's YAML: it reads the shared per-atom and per-cell features and the
field's own noisy value.

:class:`CSPNet` is the CSPNet-like denoiser (DiffCSP lineage, our own code):

* fully connected over all atom pairs (i, j) of each cell, self-pairs included, built
  from index tensors (:func:`fully_connected_edges`, no Python loop over structures);
* edge inputs: Fourier features ``sin/cos(2πk·Δf)`` (k = 1..num_freqs) of the
  fractional difference ``Δf = f_j − f_i`` and the lattice metric ``G = L·Lᵀ``, both
  invariant to rotations of the frame and to common translations. ``G`` enters as its
  deviation from the lattice prior, ``(G − μ²I)/(2μσ)`` (≈ ``(S − μI)/σ``, order one),
  when the caller passes the prior's per-cell ``lattice_mean`` μ and ``lattice_std`` σ
  (Å); otherwise as ``G/(n^(2/3)·metric_scale²)``;
* node inputs: atom-type embedding, sinusoidal time embedding and the condition vector;
* residual pre-LayerNorm message-passing layers (mean aggregation);
* heads: a per-atom fractional coordinate output (invariant), per-atom type logits
  (invariant), and a lattice update ``X·Q`` where ``X`` is a symmetric 3×3 matrix from
  pooled invariant features and ``Q`` the orthogonal polar factor of the input lattice
  (``L = S·Q``). Rotating the frame (``L -> L·Rᵀ``) maps the update to ``X·Q·Rᵀ``: it
  rotates with the frame. For the symmetric polar-factor lattices used in training,
  ``Q = I`` and the update is the symmetric ``X``.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import nn

from gencrystal.elements import MAX_Z
from gencrystal.geometry import polar_decomposition

#: Number of element classes (the vocabulary of gencrystal.elements: Z = 1..100 -> tokens 0..99)
#: and the absorbing mask token.
NUM_ELEMENTS = MAX_Z
MASK_TOKEN = NUM_ELEMENTS


def fully_connected_edges(num_atoms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs (src, dst) of atoms within each cell, self-pairs included.

    ``num_atoms`` [B] long. Returns global atom indices ``src``, ``dst`` [E] and the cell
    index of each edge [E], with ``E = Σ n_b²``. Vectorised (no loop over cells).
    """
    device = num_atoms.device
    n = num_atoms.long()
    ptr = torch.cumsum(n, 0) - n  # first atom of each cell
    n_edges = n * n
    edge_batch = torch.repeat_interleave(torch.arange(len(n), device=device), n_edges)
    edge_start = torch.cumsum(n_edges, 0) - n_edges
    local = torch.arange(int(n_edges.sum()), device=device) - edge_start[edge_batch]
    nb = n[edge_batch]
    src = ptr[edge_batch] + torch.div(local, nb, rounding_mode="floor")
    dst = ptr[edge_batch] + local % nb
    return src, dst, edge_batch


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, scale: float = 1000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of t ∈ [0, 1] (scaled by ``scale``): [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = (t.reshape(-1, 1) * scale) * freqs
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def fourier_features(delta: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """``[sin(2πkΔ), cos(2πkΔ)]`` for k = 1..num_freqs over 3 dimensions: [E, 6·num_freqs].

    Periodic in Δ with period 1, so wrapping the fractional difference is not needed."""
    k = torch.arange(1, num_freqs + 1, device=delta.device, dtype=delta.dtype)
    x = 2 * math.pi * delta.unsqueeze(-1) * k  # [E, 3, K]
    return torch.cat([torch.sin(x), torch.cos(x)], dim=-1).flatten(1)


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of ``values`` rows grouped by ``index`` into ``size`` rows (empty -> 0)."""
    out = torch.zeros(size, values.shape[-1], dtype=values.dtype, device=values.device).index_add_(0, index, values)
    count = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(
        0, index, torch.ones_like(index, dtype=values.dtype)
    )
    return out / count.clamp_min(1).unsqueeze(-1)


def symmetric_from_6(x: torch.Tensor) -> torch.Tensor:
    """[B, 6] -> symmetric [B, 3, 3] (diagonal xx, yy, zz; off-diagonals xy, xz, yz)."""
    b = x.shape[0]
    out = x.new_zeros(b, 3, 3)
    out[:, 0, 0], out[:, 1, 1], out[:, 2, 2] = x[:, 0], x[:, 1], x[:, 2]
    out[:, 0, 1] = out[:, 1, 0] = x[:, 3]
    out[:, 0, 2] = out[:, 2, 0] = x[:, 4]
    out[:, 1, 2] = out[:, 2, 1] = x[:, 5]
    return out


class Denoiser(nn.Module):
    """The denoiser interface (see module docstring). Subclasses implement ``forward``."""

    #: number of type logits per atom the network outputs (0 = no type head)
    num_type_logits: int = NUM_ELEMENTS

    def forward(
        self,
        x: Mapping[str, torch.Tensor],
        num_atoms: torch.Tensor,
        batch: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        lattice_mean: torch.Tensor | None = None,
        lattice_std: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


class FieldHead(nn.Module):
    """The output of one extra diffusion field (named by ``head`` in the field's YAML).

    Built as ``head(hidden_dim=H)`` by the denoiser (so the YAML gives ``_partial_: true`` and
    the head's own sizes); called as ``head(x_t, h_atoms [N, H], h_cells [B, H], batch [N])``
    with the field's noisy value ``x_t`` (one row per atom or per cell) and returns the
    prediction the field's process regresses, of the shape of ``x_t``."""

    def forward(
        self, x_t: torch.Tensor, h_atoms: torch.Tensor, h_cells: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class CSPLayer(nn.Module):
    """One residual pre-norm message-passing layer over fully connected edges."""

    def __init__(self, hidden_dim: int, edge_in_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim)
        self.lin_src = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.lin_dst = nn.Linear(hidden_dim, hidden_dim, bias=True)
        self.lin_edge = nn.Linear(edge_in_dim, hidden_dim, bias=False)
        self.edge_mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim), nn.SiLU())
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, h: torch.Tensor, edge_feat: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        x = self.norm(h)
        m = self.edge_mlp(self.lin_src(x)[src] + self.lin_dst(x)[dst] + self.lin_edge(edge_feat))
        agg = scatter_mean(m, dst, h.shape[0])
        return h + self.node_mlp(torch.cat([x, agg], dim=-1))


class CSPNet(Denoiser):
    """CSPNet-like periodic invariant/equivariant denoiser (sizes from config).

    ``hidden_dim`` width, ``num_layers`` message-passing layers, ``num_freqs`` Fourier
    frequencies per fractional dimension, ``time_dim`` time-embedding width,
    ``cond_dim`` width of the condition vector (0 = unconditional), ``num_type_logits``
    type-head width (0 disables it, e.g. CSP), ``metric_scale`` (Å) normalises ``G``,
    ``heads`` the :class:`FieldHead` (or a ``hidden_dim -> FieldHead`` factory) of each field
    beyond ``frac_coords``, ``lattice`` and ``atom_types``.
    """

    def __init__(
        self,
        hidden_dim: int = 512,
        num_layers: int = 6,
        num_freqs: int = 128,
        time_dim: int = 256,
        cond_dim: int = 0,
        num_type_logits: int = NUM_ELEMENTS,
        metric_scale: float = 2.6,
        num_tokens: int = NUM_ELEMENTS + 1,
        heads: Mapping[str, nn.Module | Callable[..., nn.Module]] | None = None,
    ):
        super().__init__()
        self.hidden_dim, self.num_freqs, self.time_dim = hidden_dim, num_freqs, time_dim
        self.cond_dim, self.num_type_logits, self.metric_scale = cond_dim, num_type_logits, metric_scale
        self.atom_embedding = nn.Embedding(num_tokens, hidden_dim)
        self.node_in = nn.Linear(hidden_dim + time_dim + cond_dim, hidden_dim)
        edge_in = 9 + 6 * num_freqs
        self.layers = nn.ModuleList([CSPLayer(hidden_dim, edge_in) for _ in range(num_layers)])
        self.final_norm = nn.LayerNorm(hidden_dim)
        self.coord_head = nn.Linear(hidden_dim, 3, bias=False)
        self.lattice_head = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, 6))
        self.type_head = nn.Linear(hidden_dim, num_type_logits) if num_type_logits > 0 else None
        extra = {k: h if isinstance(h, nn.Module) else h(hidden_dim=hidden_dim) for k, h in (heads or {}).items()}
        clash = sorted(set(extra) & {"frac_coords", "lattice", "atom_types"})
        if clash:
            raise ValueError(f"CSPNet has its own heads for {clash}")
        # registered only when there are any, so that models without extra fields keep their state-dict keys
        self.heads = nn.ModuleDict(extra) if extra else None

    def forward(self, x, num_atoms, batch, t, cond=None, lattice_mean=None, lattice_std=None):
        frac_coords, lattice, atom_tokens = x["frac_coords"], x["lattice"], x["atom_types"]
        dtype = self.node_in.weight.dtype
        frac_coords, lattice, t = frac_coords.to(dtype), lattice.to(dtype), t.to(dtype)
        num_atoms = num_atoms.long()
        src, dst, edge_batch = fully_connected_edges(num_atoms)
        gram = lattice @ lattice.transpose(-1, -2)
        if lattice_mean is not None and lattice_std is not None:
            # (G − μ²I)/(2μσ) ≈ (S − μI)/σ: the metric's deviation from the prior, O(1)
            mu, sd = lattice_mean.to(dtype)[:, None, None], lattice_std.to(dtype)[:, None, None]
            metric = (gram - mu**2 * torch.eye(3, dtype=dtype, device=gram.device)) / (2 * mu * sd)
        else:
            n23 = num_atoms.to(dtype) ** (2.0 / 3.0)
            metric = gram / (n23 * self.metric_scale**2)[:, None, None]
        edge_feat = torch.cat(
            [metric.flatten(1)[edge_batch], fourier_features(frac_coords[dst] - frac_coords[src], self.num_freqs)], dim=-1
        )
        parts = [self.atom_embedding(atom_tokens), sinusoidal_embedding(t, self.time_dim)[batch]]
        if self.cond_dim:
            if cond is None:
                raise ValueError("CSPNet built with cond_dim > 0 needs a condition vector")
            parts.append(cond.to(parts[0].dtype)[batch])
        h = self.node_in(torch.cat(parts, dim=-1))
        for layer in self.layers:
            h = layer(h, edge_feat, src, dst)
        h = self.final_norm(h)
        out = {"frac_coords": self.coord_head(h)}
        pooled = scatter_mean(h, batch, len(num_atoms))
        sym = symmetric_from_6(self.lattice_head(pooled))
        with torch.autocast(device_type=lattice.device.type, enabled=False):
            _s, q = polar_decomposition(lattice.float() if lattice.dtype == torch.bfloat16 else lattice)
        out["lattice"] = sym @ q.to(sym.dtype)
        if self.type_head is not None:
            out["atom_types"] = self.type_head(h)
        for name, head in (self.heads or {}).items():
            out[name] = head(x[name].to(dtype), h, pooled, batch)
        return out
