#!/usr/bin/env python
"""Relaxation throughput: one-by-one ASE FIRE vs batched FIRE (and Dask fan-out) -> reports/bench_relax.{json,md}.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_relax.py [--n 12] [--potential chgnet] [--pressure 10]
        [--workers 2] [--device auto] [--steps 300] [--name bench_relax]

Structures: deterministic rattled + strained cells of diamond Si (8 atoms), rutile SiO2
(12 atoms) and bcc Li (16 atoms), relaxed at ``--pressure`` GPa with FIRE (fmax 0.05).
Reports structures/min for each mode on CPU (1 torch thread per process) and, when a
CUDA GPU is visible, on the GPU; and how far the batched results are from the
one-by-one ones (max |ΔH| meV/atom, max |ΔV| %, step counts).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def structures(n: int):
    import numpy as np
    from ase.build import bulk
    from pymatgen.core import Lattice, Structure

    from gencrystal.structures import to_atoms

    rutile = to_atoms(Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.177, 2.666), ["Si", "O"],
                                                [[0, 0, 0], [0.3062, 0.3062, 0]]))
    bases = [bulk("Si", "diamond", a=5.45, cubic=True), rutile.repeat((1, 1, 2)), bulk("Li", "bcc", a=3.44, cubic=True).repeat(2)]
    out = []
    for i in range(n):
        a = bases[i % len(bases)].copy()
        rng = np.random.default_rng(i)
        a.set_cell(a.cell @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))), scale_atoms=True)
        a.rattle(0.05, seed=i)
        a.info["id"] = f"{a.get_chemical_formula()}-{i}"
        out.append(a)
    return out


def timed(label, fn):
    """Run ``fn``; return its result, wall seconds, this process's CPU seconds and the 1-min load before/after."""
    load0 = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    res = fn()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    load1 = os.getloadavg()[0]
    print(f"[bench] {label}: {dt:.1f} s wall, {dc:.1f} s CPU (this process), load {load0:.1f} -> {load1:.1f}")
    return res, dt, dc, (load0, load1)


def compare(ref, other):
    import math

    dh = [abs(a.enthalpy_per_atom - b.enthalpy_per_atom) * 1000 for a, b in zip(ref, other)
          if math.isfinite(a.enthalpy_per_atom) and math.isfinite(b.enthalpy_per_atom)]
    dv = [abs(a.volume_per_atom - b.volume_per_atom) / a.volume_per_atom * 100 for a, b in zip(ref, other)]
    return {"max_abs_dH_meV_per_atom": max(dh) if dh else None, "max_abs_dV_pct": max(dv) if dv else None,
            "steps_ref": [a.steps for a in ref], "steps": [b.steps for b in other],
            "n_converged": sum(b.converged for b in other)}


def render(results: dict) -> str:
    """The markdown report for a results dict (also used by --from-json to re-render a saved run)."""
    rows, comparisons = results["rows"], results["agreement"]
    load = results["load_average_1_5_15"]
    n, natoms = results["n_structures"], results["n_atoms_total"]
    md = [f"# Relaxation throughput: one-by-one vs batched ({results['potential']}, {results['pressure_gpa']:g} GPa)", "",
          f"{n} structures ({natoms} atoms: rattled/strained Si8, Si4O8, Li16), FIRE, fmax 0.05 eV/Å, "
          f"≤ {results['max_steps']} steps, 1 torch thread per process. Load average at the end: "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {results['cpu_count']} cores. This machine is shared: with a load "
          "far above the core count, wall times measure the contention as much as the code; the CPU seconds of the "
          "in-process modes (structures per CPU-minute) are the fairer comparison of one-by-one vs batched.", "",
          "| device | mode | processes | wall (s) | CPU (s) | load (1 min) before → after | structures/min | structures/CPU-min |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cpu = "–" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.1f}"
        per_cpu = "–" if r["structures_per_cpu_min"] is None else f"{r['structures_per_cpu_min']:.2f}"
        l0, l1 = r["load_1min_before_after"]
        md.append(f"| {r['device']} | {r['mode']} | {r['processes']} | {r['seconds']:.1f} | {cpu} | {l0:.1f} → {l1:.1f} | "
                  f"{r['structures_per_min']:.2f} | {per_cpu} |")
    md += ["", "## Agreement with the one-by-one ASE path", "", "| comparison | max abs ΔH (meV/atom) | max abs ΔV (%) | converged |",
           "|---|---|---|---|"]
    for k, c in comparisons.items():
        md.append(f"| {k} | {c['max_abs_dH_meV_per_atom']:.3g} | {c['max_abs_dV_pct']:.3g} | {c['n_converged']}/{n} |")
    for dev in dict.fromkeys(r["device"] for r in rows):
        one = next((r for r in rows if r["device"] == dev and r["mode"].startswith("one-by-one (")), None)
        bat = next((r for r in rows if r["device"] == dev and r["mode"].startswith("batched")), None)
        if one and bat and one["cpu_seconds"] and bat["cpu_seconds"]:
            md += ["", f"{dev}: batched FIRE took {bat['cpu_seconds'] / one['cpu_seconds']:.2f}× the CPU time and "
                   f"{bat['seconds'] / one['seconds']:.2f}× the wall time of the one-by-one ASE path."]
    if not any(r["device"] == "cuda" for r in rows):
        md += ["", "No CUDA GPU was visible to this run, so there are no GPU rows; on a GPU machine the script adds "
               "them (batching is meant for GPUs: on CPU, process fan-out is the way to scale, see ../shared/STACK.md)."]
    return "\n".join(md)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--pressure", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="bench_relax")
    ap.add_argument("--from-json", default=None, help="re-render the markdown of a saved reports/<name>.json (no new timings)")
    args = ap.parse_args(argv)
    if args.from_json:
        import json

        from gencrystal.reporting import write_report

        saved = json.load(open(args.from_json))
        write_report(args.name, saved, render(saved))
        return 0

    import torch

    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures
    from gencrystal.reporting import write_report

    structs = structures(args.n)
    natoms = sum(len(a) for a in structs)
    kw = dict(fmax=0.05, steps=args.steps, progress=False)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device in ("auto", "cuda") else [])
    rows, comparisons = [], {}
    for dev in devices:
        pot = load_potential(args.potential, device=dev)
        relax_structures(structs[:1], args.pressure, pot, steps=2, progress=False)  # warm-up (lazy init)
        one, t1, c1, l1 = timed(f"{dev} one-by-one", lambda: relax_structures(structs, args.pressure, pot, **kw))
        bat, t2, c2, l2 = timed(f"{dev} batched", lambda: relax_structures(structs, args.pressure, pot, batched=True,
                                                                           batch_size=len(structs), **kw))
        rows.append({"device": dev, "mode": "one-by-one (ASE FIRE)", "processes": 1, "seconds": t1, "cpu_seconds": c1,
                     "load_1min_before_after": l1, "structures_per_min": 60 * len(structs) / t1,
                     "structures_per_cpu_min": 60 * len(structs) / c1})
        rows.append({"device": dev, "mode": f"batched FIRE (batch {len(structs)})", "processes": 1, "seconds": t2,
                     "cpu_seconds": c2, "load_1min_before_after": l2, "structures_per_min": 60 * len(structs) / t2,
                     "structures_per_cpu_min": 60 * len(structs) / c2})
        comparisons[f"{dev}: batched vs one-by-one"] = compare(one, bat)
        if dev == "cpu" and args.workers > 1:
            fan, t3, _, l3 = timed(f"cpu dask x{args.workers}", lambda: relax_structures(
                structs, args.pressure, args.potential, device="cpu", workers=args.workers, chunk_size=1, **kw))
            rows.append({"device": "cpu", "mode": f"one-by-one over Dask LocalCluster x{args.workers} (incl. start-up)",
                         "processes": args.workers, "seconds": t3, "cpu_seconds": None, "load_1min_before_after": l3,
                         "structures_per_min": 60 * len(structs) / t3, "structures_per_cpu_min": None})
            comparisons[f"cpu: dask x{args.workers} vs one-by-one"] = compare(one, fan)
    load = os.getloadavg()
    results = {"n_structures": len(structs), "n_atoms_total": natoms, "potential": args.potential,
               "pressure_gpa": args.pressure, "fmax": 0.05, "max_steps": args.steps, "rows": rows,
               "agreement": comparisons, "load_average_1_5_15": load, "cpu_count": os.cpu_count()}
    md = render(results)
    write_report(args.name, results, md)
    print(md)
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(lambda: main(sys.argv[1:]))
