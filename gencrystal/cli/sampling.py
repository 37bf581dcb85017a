"""``gencrystal sample``: the command-line face of :class:`gencrystal.sampling.Generator`.

Order of work, so that bad input writes nothing: parse and check every argument and the
output folder, load the checkpoint, check the requests against the model (atom counts,
CSP mode, elements, pressure range), then sample, then write everything into a
temporary folder that is renamed to ``out`` at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from gencrystal.errors import GencrystalError


def _opt(cfg, key: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    val = OmegaConf.select(cfg, key, default=default)
    return default if val is None else val


def build_requests(cfg, seed: int = 0) -> list:
    """The list of :class:`SampleRequest` from ``composition``/``formula_units``/``pressure``/
    ``num_samples``/``chemical_system`` or from the ``input`` table."""
    from gencrystal.sampling.requests import expand_request, read_request_table

    input_file = _opt(cfg, "input")
    composition = _opt(cfg, "composition")
    formula_units = _opt(cfg, "formula_units")
    pressure = _opt(cfg, "pressure")
    num_samples = _opt(cfg, "num_samples")
    chemical_system = _opt(cfg, "chemical_system")
    if formula_units is not None and not isinstance(formula_units, (int, str)):
        formula_units = list(formula_units)
    if input_file is not None:
        if composition is not None:
            raise GencrystalError("give either input=FILE or composition=..., not both")
        return read_request_table(input_file, pressure, num_samples, formula_units, rotate=seed)
    if pressure is None:
        raise GencrystalError("pressure= is required (GPa), e.g. pressure=50")
    if num_samples is None:
        raise GencrystalError("num_samples= is required")
    return expand_request(composition, pressure, num_samples, formula_units, chemical_system, rotate=seed)


def _instantiate_checks(cfg):
    """``cfg.checks`` -> :class:`gencrystal.checks.StructureChecks` (Hydra ``_target_``), errors unwrapped to one line."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if _opt(cfg, "checks") is None:
        return None
    try:
        return instantiate(cfg.checks)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, GencrystalError):
            raise cause from None
        first = str(cause or exc).strip().splitlines()[0]
        raise GencrystalError(f"bad checks configuration: {first}") from exc


def run(cfg) -> int:
    """Run ``gencrystal sample`` from the composed ``conf/sample.yaml``; returns 0."""
    from gencrystal.sampling.generator import Generator, resolve_seed
    from gencrystal.sampling.output import check_out_dir, write_run

    ckpt = _opt(cfg, "ckpt")
    if ckpt is None or str(ckpt) in ("", "???"):
        raise GencrystalError("ckpt= is required (path to a trained checkpoint)")
    seed = resolve_seed(_opt(cfg, "seed"))
    requests = build_requests(cfg, seed)
    out = check_out_dir(_opt(cfg, "out"), bool(_opt(cfg, "overwrite", False)))
    checks = _instantiate_checks(cfg)
    sampler = _opt(cfg, "sampler", "fast")
    t0 = time.perf_counter()
    gen = Generator(
        str(ckpt),
        device=str(_opt(cfg, "device", "cpu")),
        sampler=sampler,
        guidance_scale=_opt(cfg, "guidance_scale", 1.0),
        batch_size=_opt(cfg, "batch_size", 64),
        checks=checks,
        progress=bool(_opt(cfg, "progress", True)),
    )
    load_s = time.perf_counter() - t0
    for line in gen.validate(requests):
        print(f"warning: {line}", file=sys.stderr)
    result = gen.run(requests, seed=seed)
    extra = {
        "ckpt": gen.ckpt,
        "device": str(gen.device),
        "load_time_s": load_s,
        "sampler": gen.sampler_name,
        "guidance_scale": gen.guidance_scale,
        "batch_size": gen.batch_size,
        "checks": {
            "min_distance": gen.checks.min_distance,
            "min_volume_per_atom": gen.checks.min_volume_per_atom,
            "max_volume_per_atom": gen.checks.max_volume_per_atom,
        },
    }
    summary = write_run(result, out, extra, overwrite=bool(_opt(cfg, "overwrite", False)))
    print(
        f"wrote {summary['written']} structures ({summary['flagged']} flagged) to {out}/ "
        f"in {summary['wall_time_s']:.2f} s, {summary['nfe']} NFE per sample, sampler {summary['sampler']}, "
        f"device {summary['device']}, seed {summary['seed']}"
    )
    return 0
