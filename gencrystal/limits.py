"""Physical and practical limits of every number a command takes, in one documented table.

A value outside these limits is a typo or a unit mix-up, never a study: it is refused with
one line naming the key and the value (:class:`~gencrystal.errors.GencrystalError`),
before any work starts. Values inside the limits that are merely unusual (a pressure
outside a model's trained range, a 250 eV cutoff for an oxide) stay warnings where the
code that knows the model or the system gives them.

The pressure limit lives in :mod:`gencrystal.units` (:data:`~gencrystal.units.MAX_PRESSURE_GPA`,
10,000 GPa); the others:

=====================  ==============================  ===========================================
key (any depth)         accepted                        why
=====================  ==============================  ===========================================
``pressure(s)``        0 ... 10,000 GPa                 see ``gencrystal.units``
``ecut``               50 ... 5,000 eV                  plane-wave cutoff; PAW needs >= ~200 eV,
                                                        > 5 keV is eV/Ry/Ha confusion
``smearing``           0 ... 5 eV                       electronic temperature; 5 eV ≈ 58,000 K
``kpt_density``        > 0 ... 100 per Å⁻¹              k-points per reciprocal Å
``fmax``               > 0 ... 100 eV/Å                 force convergence
``*steps``             0 ... 1,000,000                  optimiser steps (0 = single point);
                                                        ``num_steps`` (sampler) >= 1
``iterations`` etc.    1 ... 1,000,000                  loop, epoch and SCF counts
``num_samples`` etc.   1 ... 10,000,000                 samples, budgets, top-k, batch sizes
``limit`` etc.         null or 1 ... 10⁹                first-N selections
``timeout_s`` etc.     null or > 0 ... 10⁷ s            wall-clock budgets (10⁷ s ≈ 116 days)
``workers``            0 ... 4,096                      processes (0 = all cores)
``threads``            null or 1 ... 4,096              torch/BLAS threads
=====================  ==============================  ===========================================

:func:`check_config` applies the table to a composed command configuration (the CLI calls
it for every command); library functions use :func:`check_count` / :func:`check_quantity`
for their own arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from gencrystal.errors import GencrystalError
from gencrystal.units import check_pressure

#: Optimiser steps, sampler steps, iterations, epochs.
MAX_STEPS: int = 1_000_000
#: Samples, candidates (search budget), structures sent to DFT, batch sizes.
MAX_COUNT: int = 10_000_000
#: First-N selections of a dataset or a file.
MAX_LIMIT: int = 1_000_000_000
#: Wall-clock budgets in seconds (≈ 116 days).
MAX_SECONDS: float = 1.0e7
#: Plane-wave cutoff energy, eV.
MIN_ECUT_EV: float = 50.0
MAX_ECUT_EV: float = 5_000.0
#: Electronic smearing width (an electronic temperature), eV.
MAX_SMEARING_EV: float = 5.0
#: Processes and threads.
MAX_WORKERS: int = 4096


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise GencrystalError(f"{name}={value!r} is not a number")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise GencrystalError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(f):
        raise GencrystalError(f"{name}={value!r} is not a finite number")
    return f


def check_count(value: Any, name: str, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """Return ``value`` as an int in ``[minimum, maximum]`` or raise a one-line error naming it."""
    f = _number(value, name)
    if f != int(f):
        raise GencrystalError(f"{name}={value!r} must be a whole number")
    n = int(f)
    if n < minimum:
        raise GencrystalError(f"{name}={n} must be a positive integer" if minimum == 1 else f"{name}={n} must be >= {minimum}")
    if n > maximum:
        raise GencrystalError(f"{name}={n} is absurd (more than {maximum:,}; gencrystal.limits)")
    return n


def check_quantity(value: Any, name: str, unit: str, low: float, high: float, *, low_inclusive: bool = False) -> float:
    """Return ``value`` as a float with ``low < value <= high`` (``low <=`` if ``low_inclusive``).

    ``unit`` is named in the message (eV, Å, s, ...).
    """
    f = _number(value, name)
    too_low = f < low if low_inclusive else f <= low
    if too_low:
        rel = ">=" if low_inclusive else ">"
        raise GencrystalError(f"{name}={f:g} {unit} must be {rel} {low:g} {unit}")
    if f > high:
        raise GencrystalError(f"{name}={f:g} {unit} is beyond the limit of {high:g} {unit} (gencrystal.limits)")
    return f


@dataclass(frozen=True)
class Rule:
    """How one configuration key is checked; ``nullable`` keys may be ``null``."""

    check: Callable[[Any, str], Any]
    nullable: bool = True


def _count(minimum: int, maximum: int) -> Callable[[Any, str], int]:
    return lambda v, name: check_count(v, name, minimum, maximum)


def _quantity(unit: str, low: float, high: float, low_inclusive: bool = False) -> Callable[[Any, str], float]:
    return lambda v, name: check_quantity(v, name, unit, low, high, low_inclusive=low_inclusive)


def _pressures(value: Any, name: str) -> Any:
    if isinstance(value, (int, float, str)):
        return check_pressure(value, name)
    return [check_pressure(p, f"{name}[{i}]") for i, p in enumerate(value)]


#: Configuration keys (the last part of a dotted key, at any depth) and their checks.
CONFIG_RULES: dict[str, Rule] = {
    # pressure, GPa
    "pressure": Rule(lambda v, n: check_pressure(v, n)),
    "pressures": Rule(_pressures),
    # DFT: cutoff and electronic temperature
    "ecut": Rule(_quantity("eV", MIN_ECUT_EV, MAX_ECUT_EV, low_inclusive=True)),
    "smearing": Rule(_quantity("eV", 0.0, MAX_SMEARING_EV, low_inclusive=True)),
    "kpt_density": Rule(_quantity("per Å^-1", 0.0, 100.0)),
    "fmax": Rule(_quantity("eV/Å", 0.0, 100.0)),
    # step counts (0 = single point for optimisers)
    "steps": Rule(_count(0, MAX_STEPS)),
    "element_steps": Rule(_count(0, MAX_STEPS)),
    "num_steps": Rule(_count(1, MAX_STEPS)),
    "corrector_steps": Rule(_count(0, 1000)),
    "iterations": Rule(_count(1, MAX_STEPS)),
    "epochs": Rule(_count(1, MAX_STEPS)),
    "scf_maxiter": Rule(_count(1, MAX_STEPS)),
    "nsw": Rule(_count(0, MAX_STEPS)),
    # sample counts and budgets
    "num_samples": Rule(_count(1, MAX_COUNT)),
    "budget": Rule(_count(1, MAX_COUNT)),
    "top_k": Rule(_count(1, MAX_COUNT)),
    "n_best": Rule(_count(1, MAX_COUNT)),
    "n_per_iteration": Rule(_count(1, MAX_COUNT)),
    "n_wdist": Rule(_count(1, MAX_COUNT)),
    "n_members": Rule(_count(1, 1000)),
    "population": Rule(_count(1, MAX_COUNT)),
    "perturbations": Rule(_count(0, MAX_COUNT)),
    "n_random": Rule(_count(0, MAX_COUNT)),
    "n_generated": Rule(_count(0, MAX_COUNT)),
    "batch_size": Rule(_count(1, MAX_COUNT)),
    "eval_batch_size": Rule(_count(1, MAX_COUNT)),
    "batch": Rule(_count(1, MAX_COUNT)),
    "chunk": Rule(_count(1, MAX_COUNT)),
    "chunk_size": Rule(_count(1, MAX_COUNT)),
    "limit": Rule(_count(1, MAX_LIMIT)),
    "ref_limit": Rule(_count(1, MAX_LIMIT)),
    "train_limit": Rule(_count(1, MAX_LIMIT)),
    # wall-clock budgets, s
    "timeout_s": Rule(_quantity("s", 0.0, MAX_SECONDS)),
    "max_seconds": Rule(_quantity("s", 0.0, MAX_SECONDS)),
    "dft_budget_s": Rule(_quantity("s", 0.0, MAX_SECONDS)),
    # processes and threads
    "workers": Rule(_count(0, MAX_WORKERS)),
    "num_workers": Rule(_count(0, MAX_WORKERS)),
    "torch_threads": Rule(_count(1, MAX_WORKERS)),
    "threads": Rule(_count(1, MAX_WORKERS)),
    # distances and cutoffs, Å (and fingerprint-distance cutoffs)
    "min_distance": Rule(_quantity("Å", 0.0, 100.0, low_inclusive=True)),
    "neighbor_cutoff": Rule(_quantity("Å", 0.0, 100.0)),
    "struct_cutoff": Rule(_quantity("", 0.0, 1.0e6)),
    "comp_cutoff": Rule(_quantity("", 0.0, 1.0e6)),
}


def check_config(cfg: Any, rules: dict[str, Rule] | None = None) -> None:
    """Check every key of a composed configuration named in :data:`CONFIG_RULES`.

    Walks the (OmegaConf or plain) mapping at any depth; the error names the dotted key,
    e.g. ``relax.steps=-5 must be >= 0``. Missing (``???``) values and keys under
    ``trainer`` (Lightning's own ``-1`` conventions) are left to their commands.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    rules = CONFIG_RULES if rules is None else rules

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, DictConfig):
            for k in list(node.keys()):
                key = f"{prefix}{k}"
                if key == "trainer" or OmegaConf.is_missing(node, k):
                    continue
                try:
                    value = node[k]
                except OmegaConfBaseException:  # unresolvable interpolation: the command reports it
                    continue
                if isinstance(value, DictConfig):
                    walk(value, key + ".")
                elif str(k) in rules:
                    _apply(rules[str(k)], value, key)
        elif isinstance(node, dict):
            for k, value in node.items():
                key = f"{prefix}{k}"
                if isinstance(value, dict):
                    walk(value, key + ".")
                elif str(k) in rules:
                    _apply(rules[str(k)], value, key)

    def _apply(rule: Rule, value: Any, key: str) -> None:
        if isinstance(value, ListConfig):
            try:
                value = OmegaConf.to_container(value, resolve=True)
            except OmegaConfBaseException:
                return
        if value is None:
            if not rule.nullable:
                raise GencrystalError(f"{key} must be set")
            return
        rule.check(value, key)

    walk(cfg, "")
