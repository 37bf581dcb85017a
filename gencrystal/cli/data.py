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
    import matplotlib.ticker
    import matplotlib.pyplot as plt
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
    for k, v in rows:
        table.add_row(k, str(v))
    Console().print(table)


def info(cfg: DictConfig) -> int:
    """Load ``data=<name>`` split ``split``; print statistics; write ``<out>/summary.json`` and ``<out>/histograms.png``."""
    from gencrystal.data.dataset import load_split
    from gencrystal.io import write_json

    setup_logging()
    ds = load_split(cfg.data, str(cfg.split), data_root=cfg.get("data_root"))
    from gencrystal.runtime import thread_count

    result = {**summary(ds), "threads": thread_count()}
    out = Path(str(cfg.out))
    write_json(result, out / "summary.json")
    if cfg.get("plot", True):
        result["plot"] = str(plot_stats(ds, out / "histograms.png"))
    _print_table(result)
    print(f"wrote {out / 'summary.json'}" + (f" and {result['plot']}" if "plot" in result else ""))
    return 0


def download(cfg: DictConfig) -> int:
    """Fetch the standard split files of ``dataset`` into ``<data_root>/<folder>/``."""
    from gencrystal.config import compose, conf_dir
    from gencrystal.data.paths import resolve_data_root
    from gencrystal.data.download import download_dataset

    setup_logging()
    name = str(cfg.dataset)
    if not (conf_dir() / "data" / f"{name}.yaml").is_file() or name in ("base", "asedb"):
        known = sorted(p.stem for p in (conf_dir() / "data").glob("*.yaml") if p.stem not in ("base", "asedb"))
        raise GencrystalError(f"unknown dataset {name!r}; known: {', '.join(known)}")
    data_cfg = compose("data_info", [f"data={name}"]).data
    base_url = cfg.get("base_url") or data_cfg.download.base_url
    files = list(data_cfg.download.files or [])
    if not base_url or not files:
        raise GencrystalError(f"dataset {name!r} has no download source (conf/data/{name}.yaml: download.base_url/files)")
    root = resolve_data_root(cfg.get("data_root"))
    folder = root / str(data_cfg.folder)
    paths = download_dataset(str(base_url), files, folder, timeout_s=float(cfg.timeout_s), force=bool(cfg.get("force", False)),
                             cif_column=str(data_cfg.cif_column))
    print(f"{name}: {len(paths)} files in {folder}")
    return 0
