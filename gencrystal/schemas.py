"""Typed schemas of the command configs (dataclasses read by ``OmegaConf.structured``).

The YAML files in ``conf/`` hold the values and their comments; a schema holds the key
names and types only (every field is ``MISSING`` here, so no default is restated).
:func:`gencrystal.config.compose` merges a command's composed config into its schema: a
key the schema does not know (``+fmaxx=0.1``) or a value of the wrong type
(``fmax=abc``) is refused with one line, and code reads ``cfg.key`` instead of
``cfg.get("key", default)``. Nested nodes built by ``_target_`` (potential, cluster,
guard, dft, checks, sampler, search method) are checked by their targets' signatures
(``tests/conf/test_every_config.py``) and typed ``Any`` here, as are the config groups whose
keys differ per option (data, model, trainer, ...). Plain nested nodes (``hull``, ``validity``,
``checkpoint``) are dataclasses of their own. A node that may be left out (``~dft``, a group
mounted only on request) defaults to ``None`` instead of ``MISSING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING


@dataclass
class RelaxConfig:
    """``conf/relax.yaml`` (``gencrystal relax``); pressure GPa, fmax eV/Å, symprec Å."""

    potential: Any = MISSING
    cluster: Any = MISSING
    input: Any = MISSING
    selection: str | None = MISSING
    pressure: float = MISSING
    out: str = MISSING
    db: str | None = MISSING
    source: str = MISSING
    optimizer: str = MISSING
    fmax: float = MISSING
    steps: int = MISSING
    batched: bool = MISSING
    batch_size: int = MISSING
    symprec: float = MISSING
    matcher: str = MISSING
    resume: bool = MISSING
    guard: Any = MISSING


@dataclass
class ValidateConfig:
    """``conf/validate.yaml`` (``gencrystal validate``); pressure GPa (null: from the inputs)."""

    dft: Any = MISSING
    cluster: Any = MISSING
    input: Any = MISSING
    selection: str | None = MISSING
    pressure: float | None = MISSING
    top_k: Any = MISSING  # checked by the command (an integer >= 1, with its own message)
    include_duplicates: bool = MISSING
    out: str = MISSING
    db: str | None = MISSING
    source: str = MISSING
    matcher: str = MISSING
    resume: bool = MISSING


@dataclass
class RelaxEosConfig:
    """``conf/relax_eos.yaml`` (``gencrystal relax eos``); pressures GPa, fmax eV/Å."""

    dft: Any = None  # optional: ``~dft`` compares potentials only
    cluster: Any = MISSING
    structure: Any = MISSING
    pressures: Any = MISSING
    potentials: Any = MISSING
    chain: bool = MISSING
    fmax: float = MISSING
    steps: int = MISSING
    out: str = MISSING
    db: str | None = MISSING
    source: str = MISSING
    report: str | None = MISSING
    guard: Any = MISSING


@dataclass
class SampleConfig:
    """``conf/sample.yaml`` (``gencrystal sample``); pressure GPa. Values the command checks
    itself with their own one-line messages (seed, batch_size, guidance_scale, ...) are ``Any``."""

    sampler: Any = MISSING
    ckpt: Any = MISSING
    composition: str | None = MISSING
    formula_units: Any = MISSING
    chemical_system: str | None = MISSING
    pressure: Any = MISSING
    num_samples: Any = MISSING
    input: str | None = MISSING
    out: str = MISSING
    overwrite: bool = MISSING
    guidance_scale: Any = MISSING
    batch_size: Any = MISSING
    seed: Any = MISSING
    device: str = MISSING
    progress: bool = MISSING
    checks: Any = MISSING


@dataclass
class SearchConfig:
    """``conf/search.yaml`` (``gencrystal search``); pressure GPa, distances Å, volumes Å³/atom,
    enthalpy_tol eV/atom."""

    potential: Any = MISSING
    cluster: Any = MISSING
    relax: Any = MISSING
    method: Any = MISSING
    composition: str = MISSING
    formula_units: Any = MISSING
    pressure: float = MISSING
    budget: int = MISSING
    seed: int = MISSING
    out: str = MISSING
    db: str = MISSING
    chunk: int = MISSING
    volume_factor: float | None = MISSING
    min_distance: float = MISSING
    volume_range: Any = MISSING
    fingerprint_tol: float = MISSING
    enthalpy_tol: float = MISSING
    n_best: int = MISSING
    progress: bool = MISSING


@dataclass
class DataDownloadConfig:
    """``conf/data_download.yaml`` (``gencrystal data download``); timeout_s in s."""

    dataset: str = MISSING
    data_root: str | None = MISSING
    timeout_s: float = MISSING
    force: bool = MISSING
    base_url: str | None = MISSING


@dataclass
class DataInfoConfig:
    """``conf/data_info.yaml`` (``gencrystal data info``)."""

    data: Any = MISSING
    split: str = MISSING
    data_root: str | None = MISSING
    out: str = MISSING
    plot: bool = MISSING
    leakage: Any = MISSING  # null, "train+val" or a list of split names (checked by the command)
    leakage_matcher: str = MISSING
    leakage_structures: bool = MISSING


@dataclass
class DataSplitConfig:
    """``conf/data_split.yaml`` (``gencrystal data split``)."""

    data: Any = MISSING
    by: str = MISSING
    seed: int = MISSING
    dedupe: bool = MISSING
    matcher: str = MISSING
    data_root: str | None = MISSING
    out: str | None = MISSING
    force: bool = MISSING


@dataclass
class DbBuildConfig:
    """``conf/db_build.yaml`` (``gencrystal db build``); pressures GPa."""

    potential: Any = MISSING
    # optional: mounted only by ``potential@fallback_potential=NAME`` (its defaults entry is null)
    fallback_potential: Any = None
    cluster: Any = MISSING
    relax: Any = MISSING
    source: str = MISSING
    split: str = MISSING
    selection: str | None = MISSING
    limit: int | None = MISSING
    data_root: str | None = MISSING
    pressures: Any = MISSING  # a list of GPa values or one value (checked by gencrystal.limits)
    db: str = MISSING
    chunk_size: int = MISSING
    merge_matcher: str = MISSING
    keep: Any = MISSING
    progress: bool = MISSING


@dataclass
class DbImportConfig:
    """``conf/db_import.yaml`` (``gencrystal db import``); pressure_tol_gpa GPa."""

    import_source: Any = MISSING
    source: str = MISSING
    db: str = MISSING
    on_bad_row: str = MISSING
    merge: bool = MISSING
    merge_matcher: str = MISSING
    pressure_tol_gpa: float = MISSING
    progress: bool = MISSING
    json: str | None = MISSING


@dataclass
class DbExportConfig:
    """``conf/db_export.yaml`` (``gencrystal db export``)."""

    db: str = MISSING
    out: str = MISSING
    fractions: list[float] = MISSING
    seed: int = MISSING
    selection: str | None = MISSING
    set_split_key: bool = MISSING


@dataclass
class DbStatsConfig:
    """``conf/db_stats.yaml`` (``gencrystal db stats``); pressure_bins GPa."""

    db: str = MISSING
    selection: str | None = MISSING
    plot: str | None = MISSING
    json: str | None = MISSING
    pressure_bins: list[float] | None = MISSING


@dataclass
class DemoConfig:
    """``conf/demo.yaml`` (``gencrystal demo``); pressure GPa, fmax eV/Å, volumes Å³/atom."""

    potential: Any = MISSING
    ckpt: str | None = None  # optional: null or ~ckpt relaxes and ranks the known phases only
    pressure: float = MISSING
    systems: Any = MISSING
    num_samples: int = MISSING
    seed: int = MISSING
    sampler: str = MISSING
    min_volume_per_atom: float = MISSING
    optimizer: str = MISSING
    steps: int = MISSING
    fmax: float = MISSING
    workers: int | None = MISSING
    matcher: str = MISSING
    fallback_potential: str | None = MISSING
    out: str = MISSING
    seeds_report: str | None = MISSING


@dataclass
class ValidityConfig:
    """``validity`` of ``conf/evaluate.yaml``; min_distance Å, min_volume Å³."""

    min_distance: float = MISSING
    min_volume: float = MISSING
    oxidation_states_set: str = MISSING


@dataclass
class EvaluateConfig:
    """The keys ``conf/evaluate.yaml`` gives every ``gencrystal evaluate`` command. pred, ref and out
    are null in the YAML and checked by the command (``missing ref=...``)."""

    pred: str | None = MISSING
    ref: str | None = MISSING
    out: str | None = MISSING
    pred_selection: str | None = MISSING
    ref_selection: str | None = MISSING
    workers: int = MISSING
    progress: bool = MISSING
    plots: bool = MISSING
    validity: ValidityConfig = MISSING


@dataclass
class MetreConfig:
    """``metre`` of ``conf/evaluate_csp.yaml``."""

    max_pairs: int | None = MISSING
    valid_only: bool = MISSING


@dataclass
class EvaluateCspConfig(EvaluateConfig):
    """``conf/evaluate_csp.yaml`` (``gencrystal evaluate csp``); timeout_s in s."""

    pair: str = MISSING
    pair_keys: list[str] = MISSING
    limit: int | None = MISSING
    matcher: str = MISSING
    validity_mode: str = MISSING
    timeout_s: float = MISSING
    protocol: str = MISSING
    metre: MetreConfig = MISSING


@dataclass
class EnergiesConfig:
    """``energies`` of ``conf/evaluate_dng.yaml`` (energies eV/atom)."""

    key: str | None = MISSING
    level_of_theory_key: str = MISSING
    level_of_theory: str | None = MISSING
    elements: str | None = MISSING


@dataclass
class HullConfig:
    """``hull`` of ``conf/evaluate_dng.yaml``; pressure GPa, fmax eV/Å."""

    relax_energies: bool = MISSING
    reference: str = MISSING
    pressure: float = MISSING
    steps: int = MISSING
    fmax: float = MISSING
    optimizer: str = MISSING
    require_converged: bool = MISSING
    element_prototypes: list[str] = MISSING
    element_steps: int = MISSING
    cache: bool = MISSING


@dataclass
class EvaluateDngConfig(EvaluateConfig):
    """``conf/evaluate_dng.yaml`` (``gencrystal evaluate dng``); stability_threshold eV/atom."""

    potential: Any = None  # optional: ~potential (needed only by hull.relax_energies=true)
    train: str | None = MISSING
    train_selection: str | None = MISSING
    limit: int | None = MISSING
    ref_limit: int | None = MISSING
    train_limit: int | None = MISSING
    cutoffs: str = MISSING
    struct_cutoff: float | None = MISSING
    comp_cutoff: float | None = MISSING
    cov_joint: bool = MISSING
    coverage: bool = MISSING
    n_wdist: int = MISSING
    seed: int = MISSING
    novelty_matcher: str = MISSING
    stability_threshold: float = MISSING
    energies: EnergiesConfig = MISSING
    hull: HullConfig = MISSING


@dataclass
class EvaluatePipelineConfig(EvaluateConfig):
    """``conf/evaluate_pipeline.yaml`` (``gencrystal evaluate pipeline``); pressure GPa, fmax eV/Å,
    dft_budget_s and timeout_s in s."""

    potential: Any = None  # optional: ~potential with mlp_n=0
    dft: Any = None  # optional: ~dft with dft_n=0
    pressure: float = MISSING
    mlp_n: int = MISSING
    dft_n: int = MISSING
    dft_budget_s: float | None = MISSING
    relax_steps: int = MISSING
    fmax: float = MISSING
    max_neighbours: int = MISSING
    limit: int | None = MISSING
    validity_mode: str = MISSING
    timeout_s: float = MISSING
    metre: bool = MISSING


@dataclass
class LearnSelectConfig:
    """``select`` of ``conf/learn.yaml``; min_volume_per_atom Å³/atom."""

    n_per_iteration: int = MISSING
    min_volume_per_atom: float | None = MISSING


@dataclass
class LearnConfig:
    """``conf/learn.yaml`` (``gencrystal learn``); pressures GPa."""

    dft: Any = MISSING
    potential: Any = MISSING
    composition: str = MISSING
    pressures: Any = MISSING  # a list of GPa values or one value (checked by the loop)
    iterations: int = MISSING
    out: str = MISSING
    db: str | None = MISSING
    resume: bool = MISSING
    seed: int = MISSING
    progress: bool = MISSING
    seeds: Any = MISSING
    seeds_file: str | None = MISSING
    candidates: Any = MISSING
    relax: Any = MISSING
    uncertainty: Any = MISSING
    select: LearnSelectConfig = MISSING
    finetune: Any = MISSING


@dataclass
class CheckpointConfig:
    """``checkpoint`` of ``conf/train.yaml``."""

    every_n_steps: int = MISSING


@dataclass
class TrainConfig:
    """``conf/train.yaml`` (``gencrystal train``). The groups (data, model, diffusion, trainer,
    callbacks, logger, optim) are checked by their own targets and typed ``Any``."""

    data: Any = MISSING
    model: Any = MISSING
    diffusion: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None  # optional: ~callbacks
    logger: Any = None  # optional: ~logger (a CSV logger is always added)
    optim: Any = MISSING
    name: str = MISSING
    out: str = MISSING
    resume: bool = MISSING
    init_from: str | None = MISSING
    seed: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int | None = MISSING
    num_workers: int = MISSING
    data_root: str | None = MISSING
    checkpoint: CheckpointConfig = MISSING


#: Command config name -> schema.
SCHEMAS: dict[str, type] = {
    "relax": RelaxConfig,
    "validate": ValidateConfig,
    "relax_eos": RelaxEosConfig,
    "sample": SampleConfig,
    "search": SearchConfig,
    "data_download": DataDownloadConfig,
    "data_info": DataInfoConfig,
    "data_split": DataSplitConfig,
    "db_build": DbBuildConfig,
    "db_import": DbImportConfig,
    "db_export": DbExportConfig,
    "db_stats": DbStatsConfig,
    "demo": DemoConfig,
    "evaluate_csp": EvaluateCspConfig,
    "evaluate_dng": EvaluateDngConfig,
    "evaluate_pipeline": EvaluatePipelineConfig,
    "learn": LearnConfig,
    "train": TrainConfig,
}
