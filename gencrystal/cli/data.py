"""``gencrystal data info`` and ``gencrystal data download`` (Hydra configs
``conf/data_info.yaml`` and ``conf/data_download.yaml``)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from gencrystal.errors import GencrystalError

log = logging.getLogger("gencrystal.data")


def setup_logging(level: int = logging.INFO) -> None:
    """Log ``gencrystal.*`` messages to stderr when nobody configured logging."""
    logger = logging.getLogger("gencrystal")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)


def summary(ds) -> dict:
    """Counts and statistics of a loaded dataset split (JSON-serialisable)."""
    st = ds.stats
    return {
        "dataset": ds.name,
        "split": ds.split,
        "protocol": ds.protocol,
        "source": ds.source,
        "n_structures": len(ds),
        "n_skipped": len(ds.skipped),
        "skipped": [{"id": sid, "reason": why} for sid, why in ds.skipped],
        "columns": [str(c) for c in ds.table.columns if c != "cif"],
        "stats": st.to_dict(),
    }


def plot_stats(ds, path: str | Path) -> Path:
    """Histograms of atoms per cell, volume per atom (Å³) and the most frequent elements; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
    from ase.data import chemical_symbols

    from gencrystal.io import atomic_write

    st = ds.stats
    n = ds.num_atoms.numpy()
    vpa = np.abs(np.linalg.det(ds.lattices.double().numpy())) / n
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ks = sorted(st.num_atoms_hist)
    axes[0].bar(ks, [st.num_atoms_hist[k] for k in ks], color="tab:blue")
    axes[0].set(xlabel="atoms per cell", ylabel="structures", title=f"{ds.name} {ds.split}: {len(ds)} structures")
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[1].hist(vpa, bins=60, color="tab:orange")
    axes[1].axvline(st.volume_per_atom_mean, color="k", ls="--", lw=1, label=f"mean {st.volume_per_atom_mean:.2f} Å³")
    axes[1].set(xlabel="volume per atom (Å³)", ylabel="structures", title=f"pressure {st.pressure_min:g}–{st.pressure_max:g} GPa")
    axes[1].legend()
    top = sorted(st.element_frequencies.items(), key=lambda kv: -kv[1])[:25]
    axes[2].bar([chemical_symbols[z] for z, _ in top], [f for _, f in top], color="tab:green")
    axes[2].set(ylabel="fraction of atoms", title=f"{len(st.element_counts)} elements (top 25)")
    axes[2].tick_params(axis="x", labelrotation=90, labelsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


def _print_table(info: dict) -> None:
    from ase.data import chemical_symbols
    from rich.console import Console
    from rich.table import Table

    st = info["stats"]
    hist = {int(k): v for k, v in st["num_atoms_hist"].items()}
    mean_atoms = sum(k * v for k, v in hist.items()) / max(1, sum(hist.values()))
    top = sorted(st["element_frequencies"].items(), key=lambda kv: -kv[1])[:10]
    table = Table(title=f"{info['dataset']} / {info['split']} ({info['protocol']} protocol)", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        ("source", info["source"]),
        ("structures", f"{info['n_structures']:,}"),
        ("unreadable rows skipped", f"{info['n_skipped']:,}"),
        ("atoms per cell", f"min {min(hist)}, mean {mean_atoms:.2f}, max {st['max_atoms']}"),
        ("volume per atom", f"{st['volume_per_atom_mean']:.3f} ± {st['volume_per_atom_std']:.3f} Å³"),
        ("pressure", f"{st['pressure_min']:g}–{st['pressure_max']:g} GPa (mean {st['pressure_mean']:.3g})"),
        ("elements", f"{len(st['element_counts'])}: " + ", ".join(f"{chemical_symbols[int(z)]} {100 * f:.1f}%" for z, f in top)),
    ]
    for b in st["volume_per_atom_by_pressure"]:
        if b["count"]:
            hi = "∞" if b["hi"] is None else f"{b['hi']:g}"
            rows.append((f"V/atom at [{b['lo']:g}, {hi}) GPa", f"{b['mean']:.3f} ± {b['std']:.3f} Å³ ({b['count']:,})"))
    rows.append(("columns", ", ".join(info["columns"])))
    lk = info.get("leakage")
    if lk:
        for name, c in lk["against"].items():
            txt = (
                f"{c['n_compositions_shared']:,} of {lk['n_test_compositions']:,} compositions "
                f"({100 * c['fraction_test_compositions_shared']:.1f} %), carried by "
                f"{c['n_test_structures_with_shared_composition']:,} structures"
            )
            if "n_test_structures_duplicated" in c:
                txt += f"; {c['n_test_structures_duplicated']:,} structures duplicated ({lk['matcher']} matcher)"
            rows.append((f"shared with {name}", txt))
    for k, v in rows:
        table.add_row(k, str(v))
    Console().print(table)


def _leakage_splits(value, split: str) -> list[str]:
    from gencrystal.data.dataset import SPLITS

    if value in (None, False, "", "none", "null"):
        return []
    names = [str(v) for v in value] if not isinstance(value, str) else [v for v in value.split("+") if v]
    for n in names:
        if n not in SPLITS or n == split:
            raise GencrystalError(f"leakage={value!r}: name splits other than split={split} from {', '.join(SPLITS)}")
    return names


def leakage(cfg: DictConfig, ds, others: list[str]) -> dict:
    """Leakage of the loaded split ``ds`` into the ``others`` splits of the same dataset
    (:func:`gencrystal.metrics.leakage.leakage_report`)."""
    from gencrystal.data.dataset import load_split
    from gencrystal.metrics.leakage import leakage_report
    from gencrystal.structures import to_structure

    def structures(d):
        return [to_structure(d.to_atoms(i)) for i in range(len(d))]

    pools = {n: structures(load_split(cfg.data, n, data_root=cfg.data_root)) for n in others}
    rep = leakage_report(
        structures(ds),
        pools,
        matcher=str(cfg.leakage_matcher),
        structures=bool(cfg.leakage_structures),
    )
    rep["split"] = ds.split
    return rep


def info(cfg: DictConfig) -> int:
    """Load ``data=<name>`` split ``split``; print statistics (and, with ``leakage=``, the compositions and
    structures it shares with other splits); write ``<out>/summary.json`` and ``<out>/histograms.png``."""
    from gencrystal.data.dataset import load_split
    from gencrystal.io import write_json

    setup_logging()
    others = _leakage_splits(cfg.leakage, str(cfg.split))
    ds = load_split(cfg.data, str(cfg.split), data_root=cfg.data_root)
    from gencrystal.runtime import thread_count

    result = {**summary(ds), "threads": thread_count()}
    if others:
        result["leakage"] = leakage(cfg, ds, others)
    out = Path(str(cfg.out))
    write_json(result, out / "summary.json")
    if cfg.plot:
        result["plot"] = str(plot_stats(ds, out / "histograms.png"))
    _print_table(result)
    print(f"wrote {out / 'summary.json'}" + (f" and {result['plot']}" if "plot" in result else ""))
    return 0


def split(cfg: DictConfig) -> int:
    """``gencrystal data split data=<name> by=composition|structure``: write a group-disjoint split
    (:func:`gencrystal.data.splits.write_grouped_split`) and print its sizes."""
    from gencrystal.data.splits import write_grouped_split

    setup_logging()
    seed = int(cfg.seed)  # an integer (gencrystal.schemas.DataSplitConfig)
    m = write_grouped_split(
        cfg.data,
        by=str(cfg.by),
        seed=seed,
        dedupe=bool(cfg.dedupe),
        data_root=cfg.data_root,
        out=cfg.out,
        matcher=str(cfg.matcher),
        force=bool(cfg.force),
    )
    sizes = ", ".join(f"{k} {v:,} (target {m['target_sizes'][k]:,})" for k, v in m["sizes"].items())
    print(
        f"{m['dataset']} {m['scheme']} split (by {m['by']}, seed {m['seed']}"
        + (f", {m['n_duplicates_removed']:,} duplicates removed" if m["dedupe"] else "")
        + f"): {sizes}; {m['n_groups']:,} groups, compositions shared between splits: "
        f"{m['compositions_shared_between_splits']} -> {m['folder']}"
    )
    print(
        f"train on it with: gencrystal train data={cfg.data.get('download_name', m['dataset'])} "
        f"data.split_scheme={m['scheme']}" + (f" data.split_dir={m['folder']}" if cfg.out else "")
    )
    return 0


def download(cfg: DictConfig) -> int:
    """Fetch the standard split files of ``dataset`` into ``<data_root>/<folder>/``."""
    from gencrystal.config import compose, conf_dir
    from gencrystal.data.download import download_dataset
    from gencrystal.data.paths import resolve_data_root

    setup_logging()
    name = str(cfg.dataset)
    if not (conf_dir() / "data" / f"{name}.yaml").is_file() or name in ("base", "asedb"):
        known = sorted(p.stem for p in (conf_dir() / "data").glob("*.yaml") if p.stem not in ("base", "asedb"))
        raise GencrystalError(f"unknown dataset {name!r}; known: {', '.join(known)}")
    data_cfg = compose("data_info", [f"data={name}"]).data
    base_url = cfg.base_url or data_cfg.download.base_url
    files = list(data_cfg.download.files or [])
    if not base_url or not files:
        raise GencrystalError(f"dataset {name!r} has no download source (conf/data/{name}.yaml: download.base_url/files)")
    root = resolve_data_root(cfg.data_root)
    folder = root / str(data_cfg.folder)
    paths = download_dataset(
        str(base_url),
        files,
        folder,
        timeout_s=float(cfg.timeout_s),
        force=bool(cfg.force),
        cif_column=str(data_cfg.cif_column),
    )
    print(f"{name}: {len(paths)} files in {folder}")
    return 0
