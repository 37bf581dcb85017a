"""Domain-agnostic diffusion core: corruption processes, per-field losses, samplers.

Tensors in, tensors out. Nothing here imports materials code (no pymatgen, ASE or
other ``gencrystal`` modules): a "crystal" is just a *segment* (sample) and the atoms
of segment ``b`` are the rows ``i`` with ``index[i] == b``. A model is a set of named
**fields** (``"frac_coords"``, ``"lattice"``, ``"atom_types"``), each with a process, a
loss weight and a reduction; the sampler walks all fields together.

Conventions
-----------
* Time is continuous, ``t`` in ``(0, 1]``, one value per sample: ``t: Tensor[B]``.
  ``t = 1`` is the prior, ``t -> 0`` the data. D3PM derives its discrete step
  ``k = ceil(t * T)`` (``T = num_steps``) from ``t`` (:meth:`MaskedD3PM.discrete_time`).
* Per-element fields (one row per atom) take ``index: LongTensor[N]`` mapping rows to
  samples; per-sample fields (the lattice, ``[B, 3, 3]``) take ``index=None``.
* Per-sample *context* tensors are supplied by the caller (the model), never computed
  here: ``std_scale: Tensor[B]`` for the torus (the model passes ``n**(-1/3)``),
  ``limit_mean: Tensor[B, 3, 3]`` and ``limit_std: Tensor[B]`` for the VP lattice
  (``mu(n) I`` or ``c(P)``-based, and ``sqrt(v) n**(1/3)``), ``allowed: BoolTensor[K]``
  or ``[B, K]`` for D3PM sampling restricted to a chemical system.
* Continuous fields: the *score* is ``grad_x log p_t(x)``. Networks regress the
  process's training ``target`` (see each process); ``process.score_from_prediction``
  turns a prediction back into a score. ``score_fn`` of the sampler returns **scores**
  for continuous fields and **x0 logits** (``[N, K]`` or ``[N, K+1]``) for D3PM fields.
* float32 and float64 are both supported; every random draw takes an optional
  ``torch.Generator`` (on the tensors' device) for determinism.

Processes (``wrapped_normal.py``, ``vp.py``, ``d3pm.py``)
---------------------------------------------------------
All three share the methods used by training and sampling::

    corrupt(x0, t, *, generator=None, **ctx) -> Corrupted   # x_t, target, index, aux
    loss(pred, corrupted) -> Tensor[n_rows]                 # per-row loss, unreduced
    prior_sample(like, *, generator=None, **ctx) -> Tensor  # shape/dtype/device of like
    score_from_prediction(pred, t, **ctx) -> score          # continuous processes
    noise_like, project, langevin_alpha, ode_drift          # used by samplers

* ``WrappedVE(sigma_min=0.01, sigma_max=5.0, num_images=None, weighting="score_times_std"
  | "sigma_norm", prior="uniform" | "wrapped_normal", remove_mean=False)`` on the torus
  ``[0, 1)^d``; ``sigma(t) = sigma_min (sigma_max/sigma_min)^t`` times ``std_scale``;
  ``num_images=None`` picks ``max(10, ceil(6 sigma_max))`` images per side.
  Also ``sigma(t)``, ``score(x_t, x0, sigma)``, ``score_from_prediction(pred, t, ...)``.
  Free functions: ``wrapped_normal_log_prob(x, mean, sigma, num_images)``,
  ``wrapped_normal_score(...)`` (per coordinate), ``wrap_displacement``, ``wrap01``.
* ``VPProcess(beta_min=0.1, beta_max=20.0, symmetric=True, target="score_times_std" |
  "eps")`` for a matrix field: ``mean = a(t) x0 + (1 - a(t)) limit_mean``,
  ``std = sqrt(1 - a(t)^2) limit_std``; ``a(t) = exp(-t^2 (b_max-b_min)/4 - t b_min/2)``.
  ``symmetric_noise(shape, ...)`` gives ``(e_ij + e_ji)/sqrt(2)`` off-diagonal.
* ``MaskedD3PM(num_classes=K, num_steps=1000, hybrid_lambda=0.01)``: states
  ``0..K-1`` plus the mask state ``K``; keep probability ``1 - k/T``; x0
  parameterisation; ``loss`` = reverse KL + ``hybrid_lambda`` * CE.
  Also ``discrete_time``, ``keep_prob``, ``marginal_probs``, ``step_probs``,
  ``posterior_log_probs``, ``model_log_probs``, ``x0_log_probs(logits, allowed=, index=)``.

Flow matching (``flow.py``, ``flow_sampler.py``)
-----------------------------------------------
Same interface and time convention (``t = 1`` prior, ``t = 0`` data; flow time
``tau = 1 - t``); the network regresses velocities ``dx/dtau`` (x1 logits for types).
* ``FlowSchedule(kind="cond_ot" | "cosine")``: ``kappa(tau)``, ``dkappa(tau)``.
* ``FlowTorus(schedule="cond_ot", remove_mean=True)``: uniform prior, geodesic path
  ``z + kappa w(x1 - z)``, target ``kappa' w(x1 - z)``; the loss removes the per-sample
  mean of the velocity error.
* ``FlowMatrix(schedule="cond_ot", space="log" | "linear")``: symmetric positive-definite
  matrix (lattice polar factor) from the VP field's prior (``limit_mean``, ``limit_std``),
  straight in ``log S`` (or ``S``).
* ``MaskedFlow(num_classes, schedule="cond_ot")``: discrete flow matching from the mask
  state; loss = cross-entropy on masked rows; ``jump(x, logits, t, s, ...)``.
Continuous flow fields have ``velocity_from_prediction``, ``move(x, v, dtau)`` and
``project``; all have ``is_flow = True``.
``sample_flow(fields, velocity_fn, init_state, num_steps, solver="euler" | "midpoint" |
"rk4", anneal_slope=0, anneal_offset=0, anneal_fields=("frac_coords",), t_start=1,
t_end=0, ...)`` and ``FlowSampler`` (``conf/sampler/flow*.yaml``; NFE = steps x 1/2/4).

Fields and losses (``losses.py``)
---------------------------------
* ``DiffusionField(process, loss_weight=1.0, reduce="sum" | "mean", context=None,
  head=None)``: ``corrupt`` as the process; ``loss(pred, corrupted) -> Tensor[B]`` reduced per
  sample; ``context`` (the caller's plain object that supplies the field's data and keyword
  context) and ``head`` (the caller's factory of the network output) are carried, not used.
* ``FieldSet(fields: dict[str, DiffusionField])`` (an ``nn.ModuleDict``):
  ``corrupt(x0: dict, t, context: dict[str, dict], generator=None) -> dict[str, Corrupted]``
  and ``loss(preds: dict, corrupted: dict) -> (total, {name: mean loss})`` where
  ``total = sum_f weight_f * mean_b loss_f[b]``; ``processes`` gives ``{name: process}``,
  ``contexts`` ``{name: context}``. Hydra: ``conf/diffusion/{csp,dng}.yaml`` (``_target_: gencrystal.diffusion.FieldSet``).

Segments (``segments.py``)
--------------------------
``segment_sum(x, index, B)``, ``segment_mean``, ``remove_segment_mean`` (translation
invariance of a displacement/score), ``segment_sq_norm``, ``rows_of(values, index)``.
Schedules: ``sample_time(B, t_min=1e-5, generator=)``, ``time_grid(N, spacing, power)``.

Sampling (``sampler.py``, ``ode.py``, ``predictors.py``, ``correctors.py``, ``guidance.py``)
-----------------------------------------------------------------------------------------
``sample(fields, score_fn, init_state, num_steps, *, predictors=None, correctors=None,
context=None, generator=None, spacing="linear", power=2.0, corrector_steps=1,
batch_size=None, progress=False, post_step=None) -> SamplerOutput(state, nfe)``, where
``fields`` maps names to processes (or ``DiffusionField``s / a ``FieldSet``) and
``score_fn(state: dict[str, Tensor], t: Tensor[B]) -> dict[str, Tensor]``.
Fields in ``init_state`` without a process are *fixed* (e.g. atom types in CSP mode)
and passed through untouched; ``draw_prior(fields, like, context, generator)`` builds an
initial state from each process's prior. ``PCSampler`` holds the configuration
(``conf/sampler/pc.yaml``: 1000 steps + 1 Langevin corrector, 2000 NFE;
``conf/sampler/fast.yaml``: 100 steps on a power-2 grid + corrector, 200 NFE; ``.nfe``) and is called as
``sampler(processes, score_fn, init_state, context=..., generator=...)``.
``ODESampler`` (``conf/sampler/ode.yaml``: 50 Heun steps of the probability-flow ODE
for the continuous fields, D3PM ancestral jumps for types, 99 NFE) is called the same
way; it uses ``process.ode_drift(x, score, t, **ctx)``.
Predictors: ``WrappedVEAncestral(eta)``, ``VPAncestral(eta)``, ``D3PMAncestral()``.
Missing predictors default to the ancestral one of the process (``default_predictor``).
Corrector: ``LangevinCorrector(snr, max_step_size=1e6, norm="batch" | "sample")``.
Guidance: ``cfg_combine(cond, uncond, scale)``, ``cfg_combine_logits(cond, uncond, scale)``,
``cfg_combine_multi(uncond, conds, scales, logits=False)``,
``cfg_combine_fields(cond, uncond, scale, discrete=("atom_types",))``;
``ClassifierFreeGuidance(conditions, scale)`` is the guided score/velocity function built
from them: ``.variants`` (the condition subsets to evaluate the network with) and
``.score_fn(predict, discrete)`` (``predict(state, t)`` returns one prediction dict per
variant; the result is the guided ``score_fn`` of any sampler). ``prediction_to_score(process,
pred, t, **ctx)`` turns a network output into the sampler's input (velocity, score or logits).
"""

from gencrystal.diffusion.base import Corrupted
from gencrystal.diffusion.correctors import LangevinCorrector
from gencrystal.diffusion.d3pm import MaskedD3PM, masked_x0_log_probs
from gencrystal.diffusion.flow import FlowMatrix, FlowSchedule, FlowTorus, MaskedFlow, sym_exp, sym_log
from gencrystal.diffusion.flow_sampler import FlowSampler, sample_flow
from gencrystal.diffusion.guidance import (
    ClassifierFreeGuidance,
    cfg_combine,
    cfg_combine_fields,
    cfg_combine_logits,
    cfg_combine_multi,
    is_discrete,
    prediction_to_score,
)
from gencrystal.diffusion.losses import DiffusionField, FieldSet, reduce_rows
from gencrystal.diffusion.ode import ODESampler, sample_ode
from gencrystal.diffusion.predictors import D3PMAncestral, VPAncestral, WrappedVEAncestral, default_predictor
from gencrystal.diffusion.sampler import PCSampler, SamplerOutput, draw_prior, sample
from gencrystal.diffusion.schedules import geometric_sigma, linear_beta, sample_time, time_grid, vp_mean_coeff
from gencrystal.diffusion.segments import remove_segment_mean, rows_of, segment_mean, segment_sq_norm, segment_sum
from gencrystal.diffusion.vp import VPProcess, symmetric_noise, symmetrize
from gencrystal.diffusion.wrapped_normal import (
    WrappedVE,
    wrap01,
    wrap_displacement,
    wrapped_normal_log_prob,
    wrapped_normal_score,
)

__all__ = [
    "ClassifierFreeGuidance",
    "is_discrete",
    "prediction_to_score",
    "Corrupted",
    "D3PMAncestral",
    "DiffusionField",
    "FieldSet",
    "FlowMatrix",
    "FlowSampler",
    "FlowSchedule",
    "FlowTorus",
    "MaskedFlow",
    "masked_x0_log_probs",
    "sample_flow",
    "sym_exp",
    "sym_log",
    "LangevinCorrector",
    "MaskedD3PM",
    "ODESampler",
    "PCSampler",
    "sample_ode",
    "SamplerOutput",
    "VPAncestral",
    "VPProcess",
    "WrappedVE",
    "WrappedVEAncestral",
    "cfg_combine",
    "cfg_combine_fields",
    "cfg_combine_logits",
    "cfg_combine_multi",
    "default_predictor",
    "draw_prior",
    "geometric_sigma",
    "linear_beta",
    "reduce_rows",
    "remove_segment_mean",
    "rows_of",
    "sample",
    "sample_time",
    "segment_mean",
    "segment_sq_norm",
    "segment_sum",
    "symmetric_noise",
    "symmetrize",
    "time_grid",
    "vp_mean_coeff",
    "wrap01",
    "wrap_displacement",
    "wrapped_normal_log_prob",
    "wrapped_normal_score",
]
