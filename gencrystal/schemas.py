"""Typed schemas of the command configs (dataclasses read by ``OmegaConf.structured``).

The YAML files in ``conf/`` hold the values and their comments; a schema holds the key
names and types only (every field is ``MISSING`` here, so no default is restated).
:func:`gencrystal.config.compose` merges a command's composed config into its schema: a
key the schema does not know (``+fmaxx=0.1``) or a value of the wrong type
(``fmax=abc``) is refused with one line, and code reads ``cfg.key`` instead of
``cfg.get("key", default)``. Nested nodes built by ``_target_`` (potential, cluster,
guard, dft, checks, sampler, search method) are checked by their targets' signatures
(``tests/conf/test_every_config.py``) and typed ``Any`` here.
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


#: Command config name -> schema.
SCHEMAS: dict[str, type] = {
    "relax": RelaxConfig,
    "validate": ValidateConfig,
    "relax_eos": RelaxEosConfig,
    "sample": SampleConfig,
    "search": SearchConfig,
}
