"""The materials side of each diffusion field: a small context object named in the field's YAML.

The diffusion layer (:mod:`gencrystal.diffusion`) knows processes, losses and samplers, not
crystals. What a field needs from the crystals — its data tensor, its per-sample keyword context
(``std_scale``, ``limit_mean``, ...), the template of its prior draw and the conversion of the
sampled tensor back to user units — comes from a :class:`FieldContext` built by Hydra from the
``context`` node of the field's YAML (``conf/diffusion/<field>/<variant>.yaml``)::

    _target_: gencrystal.diffusion.DiffusionField
    context:
      _target_: gencrystal.model.fields.TorusContext
      std_scaling: true

A new field is therefore a YAML (process, loss weight, reduction, ``context``, and a ``head`` for
the denoiser, see :class:`gencrystal.model.denoiser.FieldHead`), a context class and a head.

Units: lattices in Å (rows = vectors), pressure in GPa, fractional coordinates in [0, 1),
atom types as ``Z − 1`` inside the diffusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from gencrystal.errors import GencrystalError
from gencrystal.geometry import polar_symmetric
from gencrystal.model.denoiser import MASK_TOKEN
from gencrystal.model.lattice_prior import LatticePrior


@dataclass
class CrystalInfo:
    """What a field context knows about the crystals of one batch.

    Attributes:
        num_atoms: LongTensor [B], atoms per cell.
        batch: LongTensor [N], the cell of each atom (N = Σ num_atoms).
        pressure: Tensor [B] in GPa, or None when the pressure is not given.
        dtype: floating dtype of the continuous fields.
        prior: the model's fitted lattice prior μ(n, P), σ(n) (Å).
        allowed: BoolTensor [100] or [B, 100] (index Z − 1) restricting sampled types, or None.
    """

    num_atoms: Tensor
    batch: Tensor
    pressure: Tensor | None
    dtype: torch.dtype
    prior: LatticePrior
    allowed: Tensor | None = None

    @property
    def num_cells(self) -> int:
        """B, the number of crystals."""
        return int(self.num_atoms.shape[0])

    @property
    def num_rows(self) -> int:
        """N, the number of atoms over all crystals."""
        return int(self.batch.shape[0])


class FieldContext:
    """The materials side of one field (see the module docstring). Subclasses override what differs.

    ``sampler_only`` names context keys that only the sampler's steps take (not the prior draw
    nor the prediction-to-score conversion), e.g. ``allowed`` of the atom types.
    """

    sampler_only: tuple[str, ...] = ()

    def context(self, info: CrystalInfo) -> dict[str, Any]:
        """Keyword context of the field's process for these crystals (``index`` at least)."""
        return {"index": info.batch}

    def data(self, batch: Any, name: str) -> Tensor:
        """The clean tensor x0 of the field in a training batch (default: the batch column ``name``)."""
        value = batch.get(name) if isinstance(batch, Mapping) else getattr(batch, name, None)
        if value is None:
            raise GencrystalError(f"the batch has no column {name!r} for the diffusion field of that name")
        return value

    def like(self, info: CrystalInfo) -> Tensor:
        """A zero tensor of the field's shape, dtype and device for the prior draw."""
        raise NotImplementedError

    def output(self, x: Tensor) -> Tensor:
        """The sampled tensor in user units (default: unchanged)."""
        return x

    def denoiser_inputs(self, ctx: Mapping[str, Any]) -> dict[str, Tensor]:
        """Extra keyword inputs of the denoiser derived from this field's context (default: none)."""
        return {}

    def skip(self, process: Any, x_t: Tensor, t: Tensor, ctx: Mapping[str, Any]) -> Tensor | None:
        """A closed-form guess added to the network's output for this field (None: no preconditioning)."""
        return None

    def process_kwargs(self, ctx: Mapping[str, Any]) -> dict[str, Any]:
        """The context without the sampler-only keys (for the prior draw and the score conversion)."""
        return {k: v for k, v in ctx.items() if k not in self.sampler_only}


@dataclass
class TorusContext(FieldContext):
    """Fractional coordinates [N, 3] on the torus [0, 1)³.

    ``std_scaling``: the wrapped-normal σ(t) is multiplied by ``std_scale = n^(-1/3)`` per cell
    (MatterGen), so that the noise in Å is comparable across cell sizes; False passes ones."""

    std_scaling: bool = True

    def context(self, info: CrystalInfo) -> dict[str, Any]:
        n = info.num_atoms.to(info.dtype)
        return {"index": info.batch, "std_scale": n ** (-1.0 / 3.0) if self.std_scaling else torch.ones_like(n)}

    def like(self, info: CrystalInfo) -> Tensor:
        return torch.zeros(info.num_rows, 3, device=info.batch.device, dtype=info.dtype)

    def output(self, x: Tensor) -> Tensor:
        frac = torch.remainder(x, 1.0)
        return torch.where(frac >= 1.0, frac - 1.0, frac)  # float32 remainder of -1e-9 is 1.0


@dataclass
class LatticeContext(FieldContext):
    """The lattice [B, 3, 3] (Å, rows = vectors; symmetric polar factor in training).

    The process's prior is the model's lattice prior: ``limit_mean = μ(n, P)·I`` and
    ``limit_std = σ(n)`` (Å).

    Args:
        skip_guess: add a closed-form Gaussian guess of the target to the network's lattice output
            (:meth:`skip`; ``model.lattice_skip`` in checkpoints written before the field contexts).
        metric_input: give the denoiser the prior's μ and σ per cell (``lattice_mean``,
            ``lattice_std``, Å) to normalise the metric it sees (``model.prior_metric_input``).
    """

    skip_guess: bool = False
    metric_input: bool = False

    def context(self, info: CrystalInfo) -> dict[str, Any]:
        device = info.num_atoms.device
        return {
            "index": None,
            "limit_mean": info.prior.mean_matrix(info.num_atoms, info.pressure, dtype=info.dtype).to(device),
            "limit_std": info.prior.std(info.num_atoms, dtype=info.dtype).to(device),
        }

    def like(self, info: CrystalInfo) -> Tensor:
        return torch.zeros(info.num_cells, 3, 3, device=info.num_atoms.device, dtype=info.dtype)

    def output(self, x: Tensor) -> Tensor:
        return polar_symmetric(x)

    def denoiser_inputs(self, ctx: Mapping[str, Any]) -> dict[str, Tensor]:
        """Prior mean μ(n, P) and std (Å, [B]) for the denoiser's metric normalisation."""
        if not self.metric_input or "limit_mean" not in ctx:
            return {}
        return {"lattice_mean": ctx["limit_mean"][:, 0, 0], "lattice_std": ctx["limit_std"]}

    def skip(self, process: Any, x_t: Tensor, t: Tensor, ctx: Mapping[str, Any]) -> Tensor | None:
        """Gaussian preconditioning of the lattice output.

        For the VP field in standard units ``y_t = (x_t − μ)/σ∞ = a_t·y_0 + sqrt(1 − a_t²)·ε``,
        ``E[ε | y_t] = sqrt(1 − a_t²)·y_t`` when ``y_0 ~ N(0, I)``; the network adds a residual to
        this closed-form guess (sign following the process's target). Near t = 1 (``a_t ≈ 0``),
        where the reverse process multiplies any error in ε by ``1/a_t``, the guess is exact.
        For the flow lattice field the guess is :meth:`~gencrystal.diffusion.FlowMatrix.skip_guess`."""
        if not self.skip_guess:
            return None
        if hasattr(process, "skip_guess"):  # flow lattice
            return process.skip_guess(x_t, t, limit_mean=ctx["limit_mean"], limit_std=ctx["limit_std"])
        if not hasattr(process, "mean_coeff"):
            return None
        a = process.mean_coeff(t).to(x_t.dtype)
        sq = torch.sqrt((1.0 - a**2).clamp(min=0.0))[:, None, None]
        y = (x_t - ctx["limit_mean"].to(x_t.dtype)) / ctx["limit_std"].to(x_t.dtype)[:, None, None]
        return -sq * y if getattr(process, "target", "score_times_std") == "score_times_std" else sq * y


@dataclass
class AtomTypesContext(FieldContext):
    """Atom types [N] as ``Z − 1`` (0..99; the mask state 100 is the process's).

    ``allowed`` (bool [100] or [B, 100]) of :class:`CrystalInfo` restricts sampled types to a
    chemical system; only the sampler's steps take it."""

    sampler_only: tuple[str, ...] = ("allowed",)

    def context(self, info: CrystalInfo) -> dict[str, Any]:
        ctx: dict[str, Any] = {"index": info.batch}
        if info.allowed is not None:
            ctx["allowed"] = info.allowed
        return ctx

    def data(self, batch: Any, name: str) -> Tensor:
        return super().data(batch, "atom_types").long() - 1

    def like(self, info: CrystalInfo) -> Tensor:
        return torch.zeros(info.num_rows, dtype=torch.long, device=info.batch.device)

    def output(self, x: Tensor) -> Tensor:
        types = x.long()
        if bool((types >= MASK_TOKEN).any()):
            raise GencrystalError("sampling ended with masked atom types; the sampler did not reach t = 0")
        return types + 1


def legacy_context(name: str, model_cfg: Mapping[str, Any]) -> FieldContext:
    """The context of a built-in field in a config written before fields named their context.

    Those configs kept the switches in the model section: ``coord_std_scaling`` (default on),
    ``lattice_skip`` and ``prior_metric_input`` (both default off, as they were trained)."""
    if name == "frac_coords":
        return TorusContext(std_scaling=bool(model_cfg.get("coord_std_scaling", True)))
    if name == "lattice":
        return LatticeContext(
            skip_guess=bool(model_cfg.get("lattice_skip", False)), metric_input=bool(model_cfg.get("prior_metric_input", False))
        )
    if name == "atom_types":
        return AtomTypesContext()
    raise GencrystalError(
        f"diffusion field {name!r} has no context: add `context: {{_target_: ...}}` (a gencrystal.model.fields.FieldContext) "
        "to its YAML"
    )
