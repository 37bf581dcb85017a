"""CLI entry points: ``gencrystal db build | import | export | stats`` (configs conf/db_*.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from gencrystal.errors import GencrystalError


def build(cfg: DictConfig) -> int:
    """``gencrystal db build``: relax a source at several pressures into the database."""
    from hydra.utils import instantiate

    from gencrystal.data.sources import load_source
    from gencrystal.db.build import build_database
    from gencrystal.potentials import build_potential
    from gencrystal.relax.runs import relax_setup

    pressures = list(cfg.pressures) if not isinstance(cfg.pressures, (int, float)) else [cfg.pressures]
    structures, label = load_source(
        str(cfg.source), split=str(cfg.split), selection=cfg.selection, limit=cfg.limit, data_root=cfg.data_root
    )
    potential, opts = relax_setup(cfg)
    # fallback_potential is None unless potential@fallback_potential=NAME mounts one
    fallback = build_potential(cfg.fallback_potential) if cfg.fallback_potential else None
    # (structures, pressures, potential) groups: with a fallback, the structures outside the
    # potential's DFT labels (an element or a pressure) go to the fallback, pressure by pressure
    groups = [(structures, pressures, potential)]
    if fallback is not None:
        groups = []
        for p in pressures:
            inside = [s for s in structures if not potential.coverage_warnings([s[1]], float(p))]
            outside = [s for s in structures if potential.coverage_warnings([s[1]], float(p))]
            groups += [(part, [p], pot) for part, pot in ((inside, potential), (outside, fallback)) if part]
    for part, ps, pot in groups:
        s = build_database(
            part,
            ps,
            str(cfg.db),
            pot,
            relax_options=opts,
            source_label=label,
            chunk_size=int(cfg.chunk_size),
            keep=instantiate(cfg.keep),
            merge_matcher=str(cfg.merge_matcher),
            progress=bool(cfg.progress),
        )
        print(
            f"db build: {s.total} tasks ({len(part)} structures × {len(ps)} pressures, {s.level_of_theory}); "
            f"{s.skipped_done} already done, {s.relaxed} relaxed now: {s.kept} kept, {s.merged} merged as duplicates, "
            f"{s.rejected} rejected{(' ' + json.dumps(s.rejected_reasons)) if s.rejected_reasons else ''}; "
            f"{s.rows} rows in {cfg.db}"
        )
    return 0


def import_(cfg: DictConfig) -> int:
    """``gencrystal db import``: labelled structures from VASP, CALYPSO, tables, entries, files or a db."""
    from gencrystal.db.importing import build_reader, format_summary, import_source
    from gencrystal.io import write_json

    summary = import_source(
        build_reader(cfg.import_source),
        str(cfg.db),
        on_bad_row=str(cfg.on_bad_row),
        merge=bool(cfg.merge),
        merge_matcher=str(cfg.merge_matcher),
        pressure_tol_gpa=float(cfg.pressure_tol_gpa),
        progress=bool(cfg.progress),
    )
    print(format_summary(summary, str(cfg.db)))
    if cfg.json:
        write_json(summary.as_dict(), str(cfg.json))
    return 0


def export(cfg: DictConfig) -> int:
    """``gencrystal db export``: train/val/test splits grouped by composition."""
    from gencrystal.db.export import export_splits

    counts = export_splits(
        str(cfg.db),
        str(cfg.out),
        fractions=list(cfg.fractions),
        seed=int(cfg.seed),
        selection=cfg.selection,
        set_split_key=bool(cfg.set_split_key),
    )
    print(
        f"db export: {counts['train']} train / {counts['val']} val / {counts['test']} test rows "
        f"(grouped by composition) -> {cfg.out}/{{train,val,test}}.{{db,csv}}"
    )
    return 0


def stats(cfg: DictConfig) -> int:
    """``gencrystal db stats``: counts per pressure / element and a volume-vs-pressure plot."""
    from gencrystal.db.stats import collect_stats, format_stats, plot_volume_vs_pressure
    from gencrystal.io import write_json

    bins = cfg.pressure_bins
    st = collect_stats(str(cfg.db), selection=cfg.selection, pressure_bins=None if bins is None else list(bins))
    print(format_stats(st))
    db = str(cfg.db)
    if cfg.plot:
        plot = Path(str(cfg.plot))
    elif db.startswith("postgres"):
        raise GencrystalError("give plot=PATH for a PostgreSQL database")
    else:
        plot = Path(db).with_name(Path(db).stem + "_volume_vs_pressure.png")
    plot_volume_vs_pressure(st["points"], plot, title=f"{Path(db).name}: {st['rows']} rows")
    print(f"plot: {plot}")
    if cfg.json:
        write_json({k: v for k, v in st.items() if k != "points"}, str(cfg.json))
        print(f"json: {cfg.json}")
    return 0
