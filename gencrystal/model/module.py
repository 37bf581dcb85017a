"""The Lightning module: joint diffusion of fractional coordinates, lattice and atom types.

:class:`CrystalDiffusionModule` composes

* the domain-agnostic diffusion fields of :mod:`gencrystal.diffusion` (built from the
  ``diffusion`` config group: ``csp`` has ``frac_coords`` + ``lattice``, ``dng`` adds
  ``atom_types``), each fed with the materials context of the
  :class:`~gencrystal.model.fields.FieldContext` its YAML names (``context``) — ``std_scale =
  n^(-1/3)`` for the wrapped-normal coordinates, the lattice prior ``μ(n, P)·I`` /
  ``sqrt(v)·n^(1/3)`` of :class:`LatticePrior`, the allowed types; the module itself loops
  over the fields by name and knows none of them (except that the atom types are a fixed
  input of the denoiser when they are not diffused, CSP);
* a :class:`~gencrystal.model.denoiser.Denoiser` (``model.denoiser``) and a
  :class:`~gencrystal.model.conditioning.ConditionEmbedder` (``model.conditions``),
  wrapped together in :class:`CrystalNet` whose exponential moving average (EMA) is
  used for validation and sampling and stored in the checkpoint.

Flow matching: with ``diffusion=csp_flow`` / ``dng_flow`` the same context feeds the flow
fields (:class:`~gencrystal.diffusion.FlowTorus`, :class:`~gencrystal.diffusion.FlowMatrix`
from the same lattice prior μ(n, P), :class:`~gencrystal.diffusion.MaskedFlow`); the
network then regresses velocities and :meth:`CrystalDiffusionModule.sample` integrates
them with a :class:`~gencrystal.diffusion.FlowSampler` (:meth:`resolve_sampler`).

Translation handling: the denoiser sees only fractional *differences*, so a common
translation of all atoms changes neither its outputs nor the diffusion loss (the network
is invariant; the mean is not removed). The flow torus loss removes the per-crystal mean
of the velocity error, because the target velocity carries a common drift that an
invariant network cannot express.

Units: lattices in Å (rows = vectors), pressure in GPa, fractional coordinates in [0, 1).
Atom types enter the diffusion as ``Z − 1`` (0..99) with the mask state 100.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gencrystal.errors import GencrystalError
from gencrystal.model.conditioning import ConditionEmbedder
from gencrystal.model.denoiser import NUM_ELEMENTS, Denoiser
from gencrystal.model.fields import CrystalInfo, FieldContext, legacy_context
from gencrystal.model.lattice_prior import LatticePrior, LatticePriorParams


def _instantiate(node: Any, **kwargs):
    from hydra.utils import instantiate

    return instantiate(node, **kwargs)


def _plain(cfg: Any) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return copy.deepcopy(dict(cfg))


class CrystalNet(nn.Module):
    """Condition embedder + denoiser: ``(noisy state by field, t, conditions) -> outputs by field``."""

    def __init__(self, denoiser: Denoiser, conditions: ConditionEmbedder):
        super().__init__()
        self.denoiser = denoiser
        self.conditions = conditions

    def forward(
        self,
        x: Mapping[str, torch.Tensor],
        num_atoms: torch.Tensor,
        batch: torch.Tensor,
        t: torch.Tensor,
        cond_values: Mapping[str, torch.Tensor | None],
        uncond: bool | torch.Tensor = False,
        drop: Mapping[str, torch.Tensor] | None = None,
        **inputs: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``x``: the noisy state by field name (see :class:`Denoiser`); ``inputs``: the fields'
        extra denoiser inputs (:meth:`FieldContext.denoiser_inputs`, e.g. ``lattice_mean``)."""
        cond = self.conditions(cond_values, len(num_atoms), uncond=uncond, drop=drop)
        return self.denoiser(x, num_atoms, batch, t, cond, **inputs)


class CrystalDiffusionModule(pl.LightningModule):
    """Conditional joint crystal diffusion (see the module docstring).

    Args:
        cfg: the full composed config (``model``, ``diffusion``, ``optim``, ``data``, ...).
        data_stats: :meth:`DatasetStats.to_dict` of the training split.
        lattice_prior: fitted :class:`LatticePriorParams` as a dict.
        condition_scalers: ``{condition name: [mean, std]}`` for scalar conditions
            (units of their column, e.g. GPa).
    """

    def __init__(
        self,
        cfg: Mapping | DictConfig,
        data_stats: Mapping | None = None,
        lattice_prior: Mapping | None = None,
        condition_scalers: Mapping | None = None,
    ):
        super().__init__()
        cfg = _plain(cfg)
        self.save_hyperparameters(
            {
                "cfg": cfg,
                "data_stats": dict(data_stats or {}),
                "lattice_prior": dict(lattice_prior or LatticePriorParams().to_dict()),
                "condition_scalers": {k: list(v) for k, v in (condition_scalers or {}).items()},
            }
        )
        # the model section, also as saved in older checkpoints that lack newer keys: each .get below
        # gives the value those checkpoints were trained with
        mcfg = cfg["model"]
        self.fields = _instantiate(cfg["diffusion"])
        for name, field in self.fields.items():
            if field.context is None:  # configs and checkpoints written before fields named their context
                field.context = legacy_context(name, mcfg)
            elif not isinstance(field.context, FieldContext):
                raise GencrystalError(
                    f"diffusion.fields.{name}.context builds a {type(field.context).__name__}, "
                    "not a gencrystal.model.fields.FieldContext"
                )
        self.csp = "atom_types" not in self.fields
        self.time_eps = float(mcfg.get("time_eps", 1e-5))
        self.prior = LatticePrior(self.hparams["lattice_prior"])
        conditions = {}
        for name, node in (mcfg.get("conditions") or {}).items():
            if not isinstance(node, Mapping) or "_target_" not in node:
                raise GencrystalError(f"model.conditions.{name} has no _target_ (see conf/model/conditions/)")
            conditions[name] = _instantiate(node)
        for name, (mean, std) in self.hparams["condition_scalers"].items():
            if name in conditions and hasattr(conditions[name], "set_scaler"):
                conditions[name].set_scaler(float(mean), float(std))
        embedder = ConditionEmbedder(
            conditions,
            p_uncond=float(mcfg.get("p_uncond", 0.2)),
            dropout_iid=bool(mcfg.get("dropout_iid", False)),
            out_dim=int(mcfg.get("cond_dim", 128)),
        )
        heads = {name: field.head for name, field in self.fields.items() if field.head is not None}
        denoiser = _instantiate(
            mcfg["denoiser"],
            cond_dim=embedder.out_dim,
            num_type_logits=0 if self.csp else NUM_ELEMENTS,
            **({"heads": heads} if heads else {}),
        )
        self.net = CrystalNet(denoiser, embedder)
        self.ema_decay = float(mcfg.get("ema_decay", 0.999))
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)

    # ------------------------------------------------------------------ properties
    @property
    def cfg(self) -> DictConfig:
        """The full training config (DictConfig)."""
        return OmegaConf.create(self.hparams["cfg"])

    @property
    def data_stats(self):
        """Training-split :class:`~gencrystal.data.stats.DatasetStats`."""
        from gencrystal.data.stats import DatasetStats

        return DatasetStats.from_dict(self.hparams["data_stats"])

    @property
    def max_atoms(self) -> int:
        """Largest cell (atoms) seen in training."""
        return int(self.hparams["data_stats"].get("max_atoms", 0))

    @property
    def pressure_range(self) -> tuple[float, float]:
        """(min, max) training pressure in GPa."""
        s = self.hparams["data_stats"]
        return float(s.get("pressure_min", 0.0)), float(s.get("pressure_max", 0.0))

    @property
    def condition_columns(self) -> list[str]:
        """Batch columns the model is conditioned on (e.g. ``composition``, ``pressure``)."""
        return list(self.net.conditions.columns.values())

    # ------------------------------------------------------------------ context
    @property
    def contexts(self) -> dict[str, FieldContext]:
        """``{field name: FieldContext}`` (from each field's YAML)."""
        return dict(self.fields.contexts)

    @property
    def lattice_skip_enabled(self) -> bool:
        """Whether the lattice output adds the closed-form guess (:meth:`LatticeContext.skip`)."""
        return bool(getattr(self.contexts.get("lattice"), "skip_guess", False))

    @property
    def prior_metric_input(self) -> bool:
        """Whether the denoiser sees the metric normalised by the lattice prior."""
        return bool(getattr(self.contexts.get("lattice"), "metric_input", False))

    def crystal_info(
        self,
        num_atoms: torch.Tensor,
        batch: torch.Tensor,
        pressure: torch.Tensor | None,
        dtype: torch.dtype,
        allowed: torch.Tensor | None = None,
    ) -> CrystalInfo:
        """What the field contexts see of these crystals (pressure [B] in GPa or None)."""
        return CrystalInfo(num_atoms=num_atoms, batch=batch, pressure=pressure, dtype=dtype, prior=self.prior, allowed=allowed)

    def field_context(
        self,
        num_atoms: torch.Tensor,
        batch: torch.Tensor,
        pressure: torch.Tensor | None,
        dtype: torch.dtype,
        allowed: torch.Tensor | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Per-field keyword context for the diffusion processes, from each field's context object."""
        info = self.crystal_info(num_atoms, batch, pressure, dtype, allowed=allowed)
        return {name: c.context(info) for name, c in self.contexts.items()}

    def _skips(
        self, x: Mapping[str, torch.Tensor], t: torch.Tensor, ctx: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Closed-form guesses added to the network's outputs, by field (:meth:`FieldContext.skip`)."""
        out = {}
        for name, field in self.fields.items():
            guess = field.context.skip(field.process, x[name], t, ctx[name])
            if guess is not None:
                out[name] = guess
        return out

    def _denoiser_inputs(self, ctx: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """The fields' extra denoiser inputs (e.g. the lattice prior's μ and σ, Å)."""
        out: dict[str, torch.Tensor] = {}
        for name, c in self.contexts.items():
            out.update(c.denoiser_inputs(ctx.get(name) or {}))
        return out

    @staticmethod
    def _cond_values(batch, columns) -> dict[str, torch.Tensor]:
        out = {}
        for col in columns:
            value = getattr(batch, col, None) if not isinstance(batch, Mapping) else batch.get(col)
            if value is None:
                raise GencrystalError(f"the batch has no column {col!r} that the model is conditioned on")
            out[col] = value
        return out

    # ------------------------------------------------------------------ training
    def compute_loss(self, batch, net: nn.Module | None = None, generator: torch.Generator | None = None):
        """Total loss and per-field losses of one batch (noise drawn here)."""
        net = net or self.net
        num_atoms = batch.num_atoms
        b = int(num_atoms.shape[0])
        index = batch.batch
        dtype = batch.frac_coords.dtype
        x0 = {name: field.context.data(batch, name) for name, field in self.fields.items()}
        t = self.time_eps + (1.0 - self.time_eps) * torch.rand(b, device=num_atoms.device, dtype=dtype, generator=generator)
        pressure = getattr(batch, "pressure", None)
        ctx = self.field_context(num_atoms, index, pressure, dtype)
        corrupted = self.fields.corrupt(x0, t, ctx, generator=generator)
        x = {name: c.x_t for name, c in corrupted.items()}
        if "atom_types" not in x:  # CSP: the types are a fixed input
            x["atom_types"] = batch.atom_types.long() - 1
        preds = net(x, num_atoms, index, t, self._cond_values(batch, self.condition_columns), **self._denoiser_inputs(ctx))
        preds = {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in preds.items() if k in corrupted}
        for name, guess in self._skips(x, t, ctx).items():
            preds[name] = preds[name] + guess
        total, parts = self.fields.loss(preds, corrupted)
        return total, parts

    def training_step(self, batch, batch_idx):
        loss, parts = self.compute_loss(batch)
        bs = int(batch.num_atoms.shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/loss_{k}", v, batch_size=bs)
        return loss

    def optimizer_step(self, *args, **kwargs):
        """The optimizer step, then the EMA update of the step's weights.

        Updated here rather than in ``on_train_batch_end``: Lightning saves step checkpoints in the
        callbacks' ``on_train_batch_end``, before the module's, so an EMA updated there would be
        one update short in every mid-run checkpoint (and in a run resumed from it)."""
        super().optimizer_step(*args, **kwargs)
        self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        loss, parts = self.compute_loss(batch, net=self.ema.module)
        bs = int(batch.num_atoms.shape[0])
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        for k, v in parts.items():
            self.log(f"val/loss_{k}", v, batch_size=bs, sync_dist=True)
        return loss

    def configure_optimizers(self):
        # conf/optim nodes differ (a scheduler, its interval and monitor are optional); old checkpoints lack optim
        ocfg = self.hparams["cfg"].get("optim") or {}
        params = [p for p in self.net.parameters() if p.requires_grad]
        opt_node = ocfg.get("optimizer") or {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}
        optimizer = _instantiate(opt_node)(params)
        sched_node = ocfg.get("scheduler")
        if not sched_node:
            return optimizer
        scheduler = _instantiate(sched_node)(optimizer)
        config = {"scheduler": scheduler, "interval": ocfg.get("interval", "epoch"), "frequency": 1}
        if ocfg.get("monitor"):
            monitor = str(ocfg["monitor"])
            trainer = self._trainer
            if monitor.startswith("val/") and trainer is not None and not trainer.limit_val_batches:
                monitor = "train/loss"  # no validation in this run: schedule on the training loss
            config["monitor"] = monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def load_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> CrystalDiffusionModule:
        """Load a trained module from ``path`` (EMA weights inside; config and statistics too).

        Raises :class:`GencrystalError` for a missing, unreadable or foreign file."""
        path = Path(path)
        if not path.is_file():
            raise GencrystalError(f"checkpoint {str(path)!r} does not exist")
        try:
            module = cls.load_from_checkpoint(str(path), map_location=map_location, weights_only=False)
        except GencrystalError:
            raise
        except Exception as exc:  # corrupt pickle, truncated zip, missing keys, foreign model
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GencrystalError(f"checkpoint {str(path)!r} is corrupt or not a gencrystal model: {msg[:200]}") from None
        module.eval()
        return module

    # ------------------------------------------------------------------ sampling
    def _warn_out_of_basis(self, cond_values: Mapping[str, torch.Tensor]) -> None:
        """Warn when a scalar condition lies outside its Gaussian basis (its embedding fades)."""
        import warnings

        from gencrystal.model.conditioning import ScalarCondition

        for name, c in self.net.conditions.conditions.items():
            if not isinstance(c, ScalarCondition):
                continue
            v = cond_values.get(c.column)
            if v is None:
                continue
            lo = float(c.mean + c.start * c.std)
            hi = float(c.mean + c.stop * c.std)
            bad = v[(v < lo) | (v > hi)]
            if bad.numel():
                warnings.warn(
                    f"condition {name!r} = {float(bad[0]):g} lies outside the model's basis range "
                    f"[{lo:g}, {hi:g}] (z in [{c.start:g}, {c.stop:g}]); its embedding fades to zero there",
                    stacklevel=3,
                )

    @property
    def is_flow(self) -> bool:
        """True for a flow-matching model (every field is a flow field, ``conf/diffusion/*_flow.yaml``)."""
        return all(getattr(f.process, "is_flow", False) for f in self.fields.values())

    @staticmethod
    def _sampler_config(sampler: str | Mapping | DictConfig):
        if isinstance(sampler, str):
            from gencrystal.config import conf_dir

            path = conf_dir() / "sampler" / f"{sampler}.yaml"
            if not path.is_file():
                raise GencrystalError(f"unknown sampler {sampler!r}: no {path}")
            return OmegaConf.load(path)
        return sampler

    def resolve_sampler(self, sampler: str | Mapping | DictConfig) -> str | Mapping | DictConfig:
        """The sampler this model runs when asked for ``sampler``.

        A flow model asked for a diffusion sampler (``fast``, ``pc``, ``ode`` — the CLI
        defaults) runs its own flow sampler instead (``model.flow_sampler``, default
        ``conf/sampler/flow.yaml``), so flow checkpoints need no extra flag. A diffusion
        model asked for a flow sampler is an error."""
        node = self._sampler_config(sampler)
        target = str((node or {}).get("_target_", "")) if isinstance(node, (Mapping, DictConfig)) else ""
        flow_sampler = target.rsplit(".", 1)[-1] == "FlowSampler"
        if self.is_flow and not flow_sampler:
            return str(self.hparams["cfg"]["model"].get("flow_sampler", "flow"))
        if not self.is_flow and flow_sampler:
            label = sampler if isinstance(sampler, str) else target.rsplit(".", 1)[-1]
            raise GencrystalError(
                f"sampler {label!r} integrates a flow, but this checkpoint is a diffusion model (use fast, pc or ode)"
            )
        return sampler

    def _sampler(self, sampler: str | Mapping | DictConfig):
        node = self._sampler_config(self.resolve_sampler(sampler))
        try:
            return _instantiate(node)
        except Exception as exc:  # hydra wraps the sampler's own ValueError (bad steps, solver, ...)
            cause = exc.__cause__ or exc
            raise GencrystalError(f"bad sampler configuration: {str(cause).strip().splitlines()[0][:200]}") from None

    @torch.no_grad()
    def sample(
        self,
        num_atoms: torch.Tensor,
        atom_types: torch.Tensor | None = None,
        conditions: Mapping[str, torch.Tensor] | None = None,
        sampler: str | Mapping | DictConfig = "pc",
        guidance_scale: float | Mapping[str, float] = 1.0,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Generate crystals with the EMA weights.

        Args:
            num_atoms: LongTensor [B], atoms per cell.
            atom_types: LongTensor [N] atomic numbers (N = Σ num_atoms); required in CSP
                mode (types fixed), ignored by de-novo models.
            conditions: ``{"pressure": [B] GPa, "composition": [B, 100] fractions, ...}``;
                a missing condition is treated as absent (null embedding). The special key
                ``"allowed_elements"`` (bool [100] or [B, 100], index Z−1) restricts
                de-novo types to a chemical system.
            sampler: ``"pc"``/``"fast"``/``"flow"``... (``conf/sampler/<name>.yaml``) or a sampler
                config; see :meth:`resolve_sampler` for flow models.
            guidance_scale: classifier-free guidance γ (1 = plain conditional; a dict
                ``{column: γ}`` guides each condition separately).
            generator: torch.Generator for reproducible draws (on the model's device).
        Returns:
            ``frac_coords`` [N, 3] in [0, 1), ``lattice`` [B, 3, 3] Å (symmetric polar
            factor), ``atom_types`` [N] Z, ``num_atoms`` [B], ``nfe`` (network calls; for
            flow models the guided outputs are velocities, combined by the same guidance code),
            and any further field by name (its context's :meth:`FieldContext.output`).
            Guidance is :class:`gencrystal.diffusion.ClassifierFreeGuidance`.
        """
        from gencrystal.diffusion import ClassifierFreeGuidance, is_discrete, prediction_to_score

        device = self.device
        num_atoms = torch.as_tensor(num_atoms, dtype=torch.long, device=device).reshape(-1)
        if len(num_atoms) == 0 or bool((num_atoms < 1).any()):
            raise GencrystalError(f"num_atoms must be positive atom counts, got {num_atoms.tolist()[:8]}")
        b, n_total = len(num_atoms), int(num_atoms.sum())
        batch = torch.repeat_interleave(torch.arange(b, device=device), num_atoms)
        conditions = dict(conditions or {})
        allowed = conditions.pop("allowed_elements", None)
        if self.csp:
            if atom_types is None:
                raise GencrystalError("this model does crystal structure prediction: atom_types (Z per atom) are required")
            atom_types = torch.as_tensor(atom_types, dtype=torch.long, device=device).reshape(-1)
            if len(atom_types) != n_total:
                raise GencrystalError(f"atom_types has {len(atom_types)} entries but num_atoms sums to {n_total}")
            if bool(((atom_types < 1) | (atom_types > NUM_ELEMENTS)).any()):
                raise GencrystalError(f"atomic numbers must lie in 1..{NUM_ELEMENTS}")
        cond_values = {}
        for col in self.condition_columns:
            if conditions.get(col) is not None:
                v = torch.as_tensor(conditions[col], device=device, dtype=torch.float32)
                if col == "pressure":
                    v = v.reshape(-1).expand(b) if v.numel() == 1 else v.reshape(b)
                    if bool((~torch.isfinite(v)).any() | (v < 0).any()):
                        raise GencrystalError(f"pressure must be finite and >= 0 GPa, got {v.tolist()[:8]}")
                cond_values[col] = v
        self._warn_out_of_basis(cond_values)
        pressure = cond_values.get("pressure")
        if pressure is None and "pressure" in conditions and conditions["pressure"] is not None:
            pressure = torch.as_tensor(conditions["pressure"], device=device, dtype=torch.float32).reshape(-1).expand(b)
        if allowed is not None:
            allowed = torch.as_tensor(allowed, dtype=torch.bool, device=device)
        dtype = torch.float32
        info = self.crystal_info(num_atoms, batch, pressure, dtype, allowed=allowed)
        contexts = self.contexts
        ctx = {name: c.context(info) for name, c in contexts.items()}
        procs = self.fields.processes
        state: dict[str, torch.Tensor] = {}
        for name, proc in procs.items():
            c = contexts[name]
            state[name] = proc.prior_sample(c.like(info), generator=generator, **c.process_kwargs(ctx[name]))
        if self.csp:
            assert atom_types is not None  # required (checked above) for a CSP model
            state["atom_types"] = atom_types - 1
        net = self.ema.module
        net.eval()
        use_bf16 = bool(self.hparams["cfg"]["model"].get("bf16_sampling", False)) and device.type == "cuda"

        cols = list(cond_values)
        if cols and isinstance(guidance_scale, Mapping):
            unknown = sorted(set(guidance_scale) - set(self.condition_columns))
            if unknown:
                raise GencrystalError(
                    f"guidance_scale names condition(s) {unknown} the model does not have (it has {self.condition_columns})"
                )
        guidance = ClassifierFreeGuidance(cols, guidance_scale)
        k = len(guidance.variants)
        num_atoms_k = num_atoms.repeat(k)
        batch_k = torch.cat([batch + i * b for i in range(k)])
        values_k = {c: torch.cat([v] * k) for c, v in cond_values.items()}
        drop_k = {
            c: torch.cat([torch.full((b,), dropped, dtype=torch.bool, device=device) for dropped in guidance.dropped(c)])
            for c in cols
        }
        ref = {key: torch.cat([v] * k) for key, v in self._denoiser_inputs(ctx).items()}

        def predict(st, t):
            """One network call on the k-fold batch -> k score (velocity, logit) dicts, one per variant."""
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = net(
                    {name: torch.cat([v] * k) for name, v in st.items()},
                    num_atoms_k,
                    batch_k,
                    t.repeat(k),
                    values_k,
                    drop=drop_k,
                    **ref,
                )
            skips = self._skips(st, t, ctx)
            results = []
            for i in range(k):
                scores = {}
                for name, proc in procs.items():
                    rows = out[name].shape[0] // k
                    o = out[name][i * rows : (i + 1) * rows].float()
                    if name in skips:
                        o = o + skips[name]
                    scores[name] = prediction_to_score(proc, o, t, **contexts[name].process_kwargs(ctx[name]))
                results.append(scores)
            return results

        score_fn = guidance.score_fn(predict, discrete=[name for name, proc in procs.items() if is_discrete(proc)])
        smp = self._sampler(sampler)
        result = smp(
            procs,
            score_fn,
            state,
            context={k: {kk: vv for kk, vv in v.items()} for k, v in ctx.items()},
            generator=generator,
            progress=progress,
        )
        final = {name: contexts[name].output(result.state[name]) for name in procs}
        out: dict[str, Any] = {"frac_coords": final.pop("frac_coords"), "lattice": final.pop("lattice")}
        if "atom_types" in final:
            out["atom_types"] = final.pop("atom_types")
        else:
            assert atom_types is not None  # a CSP model: given by the caller (checked above)
            out["atom_types"] = atom_types.long()
        out.update(num_atoms=num_atoms, nfe=int(result.nfe), **final)
        return out
