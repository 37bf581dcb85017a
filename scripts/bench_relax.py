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
    t = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t
    print(f"[bench] {label}: {dt:.1f} s")
    return res, dt


def compare(ref, other):
    import math

    dh = [abs(a.enthalpy_per_atom - b.enthalpy_per_atom) * 1000 for a, b in zip(ref, other)
          if math.isfinite(a.enthalpy_per_atom) and math.isfinite(b.enthalpy_per_atom)]
    dv = [abs(a.volume_per_atom - b.volume_per_atom) / a.volume_per_atom * 100 for a, b in zip(ref, other)]
    return {"max_abs_dH_meV_per_atom": max(dh) if dh else None, "max_abs_dV_pct": max(dv) if dv else None,
            "steps_ref": [a.steps for a in ref], "steps": [b.steps for b in other],
            "n_converged": sum(b.converged for b in other)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--potential", default="chgnet")
    ap.add_argument("--pressure", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="bench_relax")
    args = ap.parse_args(argv)

    import torch

    from gencrystal.relax import load_potential, relax_structures
    from gencrystal.reporting import write_report

    structs = structures(args.n)
    natoms = sum(len(a) for a in structs)
    kw = dict(fmax=0.05, steps=args.steps, progress=False)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device in ("auto", "cuda") else [])
    rows, comparisons = [], {}
    for dev in devices:
        pot = load_potential(args.potential, device=dev)
        relax_structures(structs[:1], args.pressure, pot, steps=2, progress=False)  # warm-up (lazy init)
        one, t1 = timed(f"{dev} one-by-one", lambda: relax_structures(structs, args.pressure, pot, **kw))
        bat, t2 = timed(f"{dev} batched", lambda: relax_structures(structs, args.pressure, pot, batched=True,
                                                                   batch_size=len(structs), **kw))
        rows.append({"device": dev, "mode": "one-by-one (ASE FIRE)", "processes": 1, "seconds": t1,
                     "structures_per_min": 60 * len(structs) / t1})
        rows.append({"device": dev, "mode": f"batched FIRE (batch {len(structs)})", "processes": 1, "seconds": t2,
                     "structures_per_min": 60 * len(structs) / t2})
        comparisons[f"{dev}: batched vs one-by-one"] = compare(one, bat)
        if dev == "cpu" and args.workers > 1:
            fan, t3 = timed(f"cpu dask x{args.workers}", lambda: relax_structures(
                structs, args.pressure, args.potential, device="cpu", workers=args.workers, chunk_size=1, **kw))
            rows.append({"device": "cpu", "mode": f"one-by-one over Dask LocalCluster x{args.workers}",
                         "processes": args.workers, "seconds": t3, "structures_per_min": 60 * len(structs) / t3})
            comparisons[f"cpu: dask x{args.workers} vs one-by-one"] = compare(one, fan)
    load = os.getloadavg()
    results = {"n_structures": len(structs), "n_atoms_total": natoms, "potential": args.potential,
               "pressure_gpa": args.pressure, "fmax": 0.05, "max_steps": args.steps, "rows": rows,
               "agreement": comparisons, "load_average_1_5_15": load, "cpu_count": os.cpu_count()}
    md = [f"# Relaxation throughput: one-by-one vs batched ({args.potential}, {args.pressure:g} GPa)", "",
          f"{len(structs)} structures ({natoms} atoms: rattled/strained Si8, Si4O8, Li16), FIRE, fmax 0.05 eV/Å, "
          f"≤ {args.steps} steps, 1 torch thread per process. Machine load average during the run: "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores (shared machine: timings are noisy).", "",
          "| device | mode | processes | wall (s) | structures/min |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['device']} | {r['mode']} | {r['processes']} | {r['seconds']:.1f} | {r['structures_per_min']:.2f} |")
    md += ["", "## Agreement with the one-by-one ASE path", "", "| comparison | max |ΔH| (meV/atom) | max |ΔV| (%) | converged |",
           "|---|---|---|---|"]
    for k, c in comparisons.items():
        md.append(f"| {k} | {c['max_abs_dH_meV_per_atom']:.3g} | {c['max_abs_dV_pct']:.3g} | {c['n_converged']}/{len(structs)} |")
    write_report(args.name, results, "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
