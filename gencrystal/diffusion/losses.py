"""Fields keyed by name: a process, a loss weight and a per-sample reduction.

The loss of a field is computed per row by its process, reduced per sample (``"sum"``
or ``"mean"`` over the rows of the sample, e.g. the atoms of a crystal), then averaged
over the batch; the total is ``sum_f loss_weight_f * loss_f``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from gencrystal.diffusion.base import Corrupted
from gencrystal.diffusion.segments import segment_mean, segment_sum

REDUCTIONS = ("sum", "mean")


def reduce_rows(values: Tensor, index: Tensor | None, num_segments: int, reduce: str) -> Tensor:
    """Reduce per-row values [N] to per-sample values [B] by ``"sum"`` or ``"mean"``."""
    if reduce == "sum":
        return segment_sum(values, index, num_segments)
    if reduce == "mean":
        return segment_mean(values, index, num_segments)
    raise ValueError(f"unknown reduction {reduce!r} (expected one of {REDUCTIONS})")


class DiffusionField(nn.Module):
    """One diffused field: its process, loss weight and per-sample reduction.

    Args:
        process: a :class:`WrappedVE`, :class:`VPProcess` or :class:`MaskedD3PM` (any object
            with ``corrupt``/``loss``).
        loss_weight: weight of this field's batch-mean loss in the total (MatterGen: pos
            0.1, cell 1, types 1).
        reduce: ``"sum"`` or ``"mean"`` over the rows of a sample.
        context: the caller's object that supplies this field's data and per-sample keyword
            context (``std_scale``, ``limit_mean``, ...); never used here, only carried so that
            one YAML names everything about a field. A plain object, not a module: it adds
            nothing to the state dict.
        head: the caller's factory of the network output for this field (e.g. a
            ``functools.partial`` from ``_partial_: true``), carried the same way; the network
            that builds it owns its parameters.
    """

    process: Any  # a process module (WrappedVE, VPProcess, MaskedD3PM, ...): anything with corrupt/loss

    def __init__(
        self, process: nn.Module, loss_weight: float = 1.0, reduce: str = "sum", context: Any = None, head: Any = None
    ) -> None:
        super().__init__()
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduce!r} (expected one of {REDUCTIONS})")
        if not loss_weight >= 0:
            raise ValueError(f"loss_weight must be >= 0, got {loss_weight}")
        self.process = process
        self.loss_weight = float(loss_weight)
        self.reduce = reduce
        if isinstance(context, nn.Module):
            raise TypeError("a field context must be a plain object, not an nn.Module (it would change the state dict)")
        self.context = context
        if isinstance(head, nn.Module):
            raise TypeError("a field head must be a factory (`_partial_: true` in its YAML), not a built nn.Module")
        self.head = head

    def corrupt(self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None, **context: Any) -> Corrupted:
        """Noise ``x0`` to times ``t`` [B] (``context``: ``index``, ``std_scale``, ...)."""
        return self.process.corrupt(x0, t, generator=generator, **context)

    def loss(self, pred: Tensor, corrupted: Corrupted) -> Tensor:
        """Per-sample loss [B] (unweighted)."""
        rows = self.process.loss(pred, corrupted)
        return reduce_rows(rows, corrupted.index, corrupted.num_segments, self.reduce)


class FieldSet(nn.ModuleDict):
    """The fields of a model keyed by name (``"frac_coords"``, ``"lattice"``, ``"atom_types"``)."""

    def __init__(self, fields: Mapping[str, DiffusionField]) -> None:
        super().__init__(dict(fields))

    def fields(self) -> list[tuple[str, DiffusionField]]:
        """``[(name, field)]`` in order (``items()`` typed as the fields they are)."""
        return [(name, f) for name, f in self.items() if isinstance(f, DiffusionField)]

    @property
    def processes(self) -> dict[str, nn.Module]:
        """``{name: process}`` as the sampler takes it."""
        return {name: f.process for name, f in self.fields()}

    @property
    def contexts(self) -> dict[str, Any]:
        """``{name: context object}`` (None for a field whose YAML names none)."""
        return {name: f.context for name, f in self.fields()}

    def corrupt(
        self,
        x0: Mapping[str, Tensor],
        t: Tensor,
        context: Mapping[str, Mapping[str, Any]] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Corrupted]:
        """Noise every field of ``x0`` (fields without a process are not touched)."""
        context = context or {}
        missing = [name for name in self.keys() if name not in x0]
        if missing:
            raise KeyError(f"x0 lacks diffused field(s) {missing}")
        return {name: f.corrupt(x0[name], t, generator=generator, **dict(context.get(name, {}))) for name, f in self.fields()}

    def loss(self, preds: Mapping[str, Tensor], corrupted: Mapping[str, Corrupted]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total weighted loss and the per-field batch means ``{name: scalar}`` for logging."""
        per_field: dict[str, Tensor] = {}
        total: Tensor | None = None
        for name, f in self.fields():
            value = f.loss(preds[name], corrupted[name]).mean()
            per_field[name] = value.detach()
            total = f.loss_weight * value if total is None else total + f.loss_weight * value
        if total is None:
            raise ValueError("FieldSet has no fields")
        return total, per_field
