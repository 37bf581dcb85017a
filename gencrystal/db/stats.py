"""Database statistics: rows per pressure, per element, per level of theory and split,
per level of theory × pressure bin, and a plot of volume per atom (Å³) against pressure (GPa)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gencrystal.db.schema import connect
from gencrystal.errors import GencrystalError


def pressure_bin_label(p: float, edges: Sequence[float]) -> str:
    """The bin of pressure ``p`` (GPa) among ascending ``edges``: ``"[a,b)"``, or
    ``">=last"`` above the last edge; ``"nan"`` for a missing pressure."""
    import math

    if not math.isfinite(p):
        return "nan"
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= p < hi:
            return f"[{lo:g},{hi:g})"
    return f">={edges[-1]:g}" if p >= edges[-1] else f"<{edges[0]:g}"


def collect_stats(db_url: str, selection: str | None = None, pressure_bins: Sequence[float] | None = None) -> dict[str, Any]:
    """Counts per pressure (GPa), element (rows containing it), level of theory, split,
    source kind and level of theory × pressure bin (``pressure_bins``: ascending edges in
    GPa, ``conf/db_stats.yaml``; None = one bin from 0 GPa up), relaxed rows, plus
    ``(pressure, volume per atom, reduced formula)`` points for plotting."""
    from pymatgen.core import Composition

    edges = sorted(float(x) for x in (pressure_bins if pressure_bins is not None else [0.0]))
    if not edges:
        raise GencrystalError("pressure_bins is empty; give ascending edges in GPa, e.g. [0,10,50,100]")
    per_level_bin: dict[str, Counter] = defaultdict(Counter)
    relaxed = 0

    if not str(db_url).startswith("postgres") and not Path(db_url).exists():
        raise GencrystalError(f"database {str(db_url)!r} does not exist")
    db = connect(db_url)
    per_pressure: Counter = Counter()
    per_element: Counter = Counter()
    per_level: Counter = Counter()
    per_split: Counter = Counter()
    per_source: Counter = Counter()
    points: list[tuple[float, float, str]] = []
    n = 0
    for row in db.select(selection) if selection else db.select():
        n += 1
        p = float(row.get("pressure_gpa", float("nan")))
        per_pressure[f"{p:g}"] += 1
        comp = Composition(row.formula)
        for el in comp.elements:
            per_element[el.symbol] += 1
        per_level[row.get("level_of_theory", "?")] += 1
        per_level_bin[row.get("level_of_theory", "?")][pressure_bin_label(p, edges)] += 1
        relaxed += bool(row.get("relaxed", False))
        per_split[row.get("split", "none")] += 1
        per_source[str(row.get("source", "?")).split(":")[0]] += 1
        points.append((p, row.volume / row.natoms, comp.reduced_formula))
    if n == 0:
        raise GencrystalError(f"database {str(db_url)!r} has no rows{' matching ' + repr(selection) if selection else ''}")
    return {
        "rows": n,
        "per_pressure": dict(sorted(per_pressure.items(), key=lambda kv: float(kv[0]))),
        "per_element": dict(per_element.most_common()),
        "per_level_of_theory": dict(per_level),
        "per_split": dict(per_split),
        "per_source": dict(per_source),
        "pressure_bins": edges,
        "per_level_and_pressure_bin": {lvl: dict(c) for lvl, c in sorted(per_level_bin.items())},
        "relaxed": relaxed,
        "points": points,
    }


def plot_volume_vs_pressure(points: list[tuple[float, float, str]], path: str | Path, title: str = "") -> Path:
    """Scatter of volume per atom (Å³) against pressure (GPa) with the per-pressure median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gencrystal.io import atomic_write

    by_p: dict[float, list[float]] = defaultdict(list)
    for p, v, _ in points:
        by_p[p].append(v)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = [p for p, _, _ in points]
    ys = [v for _, v, _ in points]
    ax.scatter(xs, ys, s=8, alpha=0.4, label="structures")
    ps = sorted(by_p)
    ax.plot(ps, [float(np.median(by_p[p])) for p in ps], "k-o", ms=4, label="median")
    ax.set_xlabel("pressure (GPa)")
    ax.set_ylabel("volume per atom (Å³)")
    ax.set_title(title or "volume per atom vs pressure")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return path


def format_stats(stats: dict[str, Any], max_elements: int = 30) -> str:
    """A plain-text summary of :func:`collect_stats` for the terminal."""
    lines = [f"rows: {stats['rows']}", "rows per pressure (GPa):"]
    lines += [f"  {p:>8}  {c}" for p, c in stats["per_pressure"].items()]
    lines.append("rows containing each element:")
    items = list(stats["per_element"].items())
    for i in range(0, min(len(items), max_elements), 6):
        lines.append("  " + "  ".join(f"{el:>2} {c:<6}" for el, c in items[i : i + 6]))
    if len(items) > max_elements:
        lines.append(f"  ... {len(items) - max_elements} more elements")
    lines.append("rows per level of theory: " + ", ".join(f"{k} {v}" for k, v in stats["per_level_of_theory"].items()))
    lines.append("rows per split: " + ", ".join(f"{k} {v}" for k, v in stats["per_split"].items()))
    lines.append("rows per source: " + ", ".join(f"{k} {v}" for k, v in stats["per_source"].items()))
    table = stats.get("per_level_and_pressure_bin") or {}
    if table:
        edges = stats["pressure_bins"]
        cols = [pressure_bin_label(lo, edges) for lo in edges]
        cols = [c for c in dict.fromkeys(cols + sorted({b for c in table.values() for b in c} - set(cols)))]
        width = max(12, *(len(k) for k in table))
        lines.append(f"rows per level of theory x pressure bin (GPa); {stats.get('relaxed', 0)} rows relaxed:")
        lines.append("  " + f"{'level':<{width}}" + "".join(f"{c:>11}" for c in cols) + f"{'total':>8}")
        for lvl, c in table.items():
            lines.append("  " + f"{lvl:<{width}}" + "".join(f"{c.get(b, 0):>11}" for b in cols) + f"{sum(c.values()):>8}")
    return "\n".join(lines)
