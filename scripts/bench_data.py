#!/usr/bin/env python
"""Benchmark: first (cold-cache) and cached load times of the MP-20 test split.

    python scripts/bench_data.py [--data-root ../shared/data] [--split test] [--workers 1 2]

Each cold load parses every CIF into a fresh, empty cache directory (so nothing is
reused); the cached load then reads the pickle that load wrote. Also times one pass of
the torch-geometric DataLoader over the split (batch 256). Writes
``reports/bench_data.{json,md}`` via :func:`gencrystal.reporting.write_report`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data-root", default=os.environ.get("GENCRYSTAL_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    ap.add_argument("--dataset", default="mp20")
    ap.add_argument("--split", default="test")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="parse processes to time cold loads with")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    from torch_geometric.loader import DataLoader

    from gencrystal.config import compose
    from gencrystal.data.dataset import load_split
    from gencrystal.reporting import write_report

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    rows = []
    try:
        for w in args.workers:
            cache = tmp / f"cache-w{w}"
            cfg = compose("data_info", [f"data={args.dataset}", f"data.cache_dir={cache}", f"data.parse_workers={w}"]).data
            load1 = os.getloadavg()[0]
            t0 = time.perf_counter()
            ds = load_split(cfg, args.split, data_root=args.data_root)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            ds2 = load_split(cfg, args.split, data_root=args.data_root)
            cached = time.perf_counter() - t0
            assert len(ds2) == len(ds)
            cache_bytes = sum(p.stat().st_size for p in cache.rglob("*.pkl"))
            rows.append({"parse_workers": w, "cold_load_s": cold, "cached_load_s": cached, "speedup": cold / cached,
                         "n_structures": len(ds), "n_skipped": len(ds.skipped), "source": ds.source,
                         "cache_mb": cache_bytes / 2**20, "load_average_before": load1})
            print(f"workers={w}: cold {cold:.1f} s, cached {cached:.2f} s, {len(ds)} structures")
        t0 = time.perf_counter()
        n_batches = sum(1 for _ in DataLoader(ds2, batch_size=args.batch_size, shuffle=True))
        loader_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results = {
        "dataset": args.dataset, "split": args.split, "data_root": str(args.data_root),
        "loads": rows,
        "dataloader_pass": {"batch_size": args.batch_size, "batches": n_batches, "seconds": loader_s,
                            "structures_per_s": len(ds2) / loader_s},
    }
    lines = [
        f"# Data loading: {args.dataset} {args.split}",
        "",
        "Cold = parse every CIF (pymatgen) + Niggli + polar lattice into an empty cache; "
        "cached = read the cache the cold load wrote. Wall-clock seconds on a machine shared with other jobs "
        "(1-minute load average before each cold load is listed).",
        "",
        "| parse workers | structures | skipped | cold load (s) | cached load (s) | cold / cached | cache (MiB) | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['parse_workers']} | {r['n_structures']:,} | {r['n_skipped']} | {r['cold_load_s']:.1f} | "
                     f"{r['cached_load_s']:.2f} | {r['speedup']:.0f}× | {r['cache_mb']:.1f} | {r['load_average_before']:.2f} |")
    d = results["dataloader_pass"]
    lines += ["", f"One shuffled DataLoader pass (batch {d['batch_size']}, {d['batches']} batches): "
              f"{d['seconds']:.2f} s ({d['structures_per_s']:,.0f} structures/s).", "",
              f"Source: `{rows[-1]['source']}`."]
    jpath, mpath = write_report("bench_data", results, "\n".join(lines))
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
