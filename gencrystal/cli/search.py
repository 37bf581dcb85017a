"""CLI entry point: ``gencrystal search`` (config conf/search.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from gencrystal.errors import GencrystalError

METHODS = ("random", "pso", "generative")


def formula_and_units(composition: str, formula_units) -> tuple[str, list[int]]:
    """Reduced formula and Z values: ``("SiO2", None)`` → Z 1, ``("Si2O4", None)`` → Z 2,
    ``("SiO2", "1-4")`` → Z 1..4."""
    from gencrystal.composition import parse_composition, parse_int_range

    comp = parse_composition(str(composition))
    reduced, factor = comp.get_reduced_formula_and_factor()
    if formula_units is None or str(formula_units).strip() in ("", "None", "null"):
        return reduced, [int(round(factor))]
    if int(round(factor)) != 1:
        raise GencrystalError(f"give either a cell composition ({composition!r}) or a reduced formula with formula_units, not both")
    spec = formula_units if isinstance(formula_units, (int, str)) else [int(z) for z in formula_units]
    return reduced, parse_int_range(spec)


def make_method(cfg: DictConfig):
    """Instantiate the configured method node (``cfg.random`` / ``cfg.pso`` / ``cfg.generative``)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    name = str(cfg.method)
    if name not in METHODS:
        raise GencrystalError(f"method={name!r} is unknown; choose random, pso or generative")
    try:
        return instantiate(cfg[name])
    except InstantiationException as exc:
        if isinstance(exc.__cause__, GencrystalError):
            raise exc.__cause__ from None
        raise GencrystalError(f"bad {name} settings: {str(exc).splitlines()[0]}") from exc


def run(cfg: DictConfig) -> int:
    """``gencrystal search composition=SiO2 pressure=50 method=pso budget=40 out=DIR``."""
    from gencrystal.relax.runs import relax_setup
    from gencrystal.search.runner import run_search

    formula, zs = formula_and_units(cfg.composition, cfg.formula_units)
    method = make_method(cfg)
    potential, opts = relax_setup(cfg)
    res = run_search(formula, cfg.pressure, method, int(cfg.budget), str(cfg.db), str(cfg.out), potential,
                     formula_units=zs, seed=int(cfg.seed), relax_options=opts, chunk=int(cfg.chunk),
                     volume_factor=cfg.volume_factor, min_distance=float(cfg.min_distance),
                     volume_range=tuple(cfg.volume_range), fingerprint_tol=float(cfg.fingerprint_tol),
                     enthalpy_tol=float(cfg.enthalpy_tol), n_best=int(cfg.n_best), progress=bool(cfg.progress))
    best = (f"best {res.best.enthalpy_per_atom:.4f} eV/atom (candidate {res.best.index})" if res.best
            else "no successful relaxation")
    from pathlib import Path

    written = ", ".join(Path(p).name for p in res.files.values())
    print(f"search {method.name} {formula} Z={','.join(map(str, zs))} at {float(cfg.pressure):g} GPa "
          f"[{res.level_of_theory}]: {res.n_done}/{cfg.budget} candidates ({res.n_new} new); {best}; "
          f"-> {cfg.out}/ {written}; candidates in {cfg.db}")
    return 0
