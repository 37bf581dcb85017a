#!/usr/bin/env python
"""Benchmark sampling speed: the fast sampler against predictor–corrector (PC).

For 16 samples of one ≤ 20-atom composition at one pressure it records, per sampler
and device: network evaluations per trajectory (NFE), sampling wall time, structures/s,
and the wall time of the whole ``gencrystal sample`` command (Python start-up and
checkpoint loading included, CPU only). Results go to ``reports/bench_sample.{json,md}``
(plus a bar chart ``reports/bench_sample.png``) with command, commit and hardware.

    python scripts/bench_sample.py [--ckpt PATH] [--composition Li16] [--pressure 50]
                                   [--num-samples 16] [--repeats 3] [--samplers fast pc]

Without ``--ckpt`` a tiny CSP model is trained first on the toy database of
``tests/toy_model.py`` (say so when quoting the numbers: its NFE and speed are
real, its structures are not meaningful). A GPU run is added when torch sees CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402

from gencrystal.reporting import REPORTS_DIR, run_metadata, write_report  # noqa: E402


def _time_generator(ckpt: str, device: str, sampler: str, composition: str, pressure: float, n: int,
                    repeats: int, batch_size: int) -> dict:
    from gencrystal.sampling import Generator, expand_request

    t0 = time.perf_counter()
    gen = Generator(ckpt, device=device, sampler=sampler, batch_size=batch_size)
    load_s = time.perf_counter() - t0
    gen.sample(composition, pressure, min(n, 2), seed=999)  # warm-up (lazy imports, CUDA kernels)
    walls, nfe, flagged = [], 0, 0
    for r in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        run = gen.run(expand_request(composition, pressure, n), seed=r)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        walls.append(run.wall_time_s)
        nfe = run.nfe_per_sample
        flagged += len(run.flagged)
    med = statistics.median(walls)
    return {
        "sampler": sampler,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "num_samples": n,
        "num_atoms": len(run.frames[0]),
        "batch_size": batch_size,
        "nfe": nfe,
        "wall_s_median": med,
        "wall_s_all": walls,
        "structures_per_s": n / med if med > 0 else None,
        "load_s": load_s,
        "flagged_fraction": flagged / (n * repeats),
        "threads": torch.get_num_threads(),
    }


def _time_cli(ckpt: str, sampler: str, composition: str, pressure: float, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "gencrystal", "sample", f"ckpt={ckpt}", f"composition={composition}",
               f"pressure={pressure}", f"num_samples={n}", f"sampler={sampler}", "seed=0", "device=cpu",
               "progress=false", f"out={out}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"gencrystal sample failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        summary = json.loads((out / "summary.json").read_text())
    return {"sampler": sampler, "command": "gencrystal " + " ".join(cmd[3:-1]) + " out=DIR", "command_wall_s": wall,
            "sampling_wall_s": summary["wall_time_s"], "nfe": summary["nfe"], "written": summary["written"],
            "flagged": summary["flagged"]}


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    labels = [f"{r['sampler']}\n{r['device']}" for r in rows]
    axes[0].bar(labels, [r["wall_s_median"] for r in rows], color="tab:blue")
    axes[0].set_ylabel("wall time for the batch (s)")
    axes[0].set_yscale("log")
    axes[1].bar(labels, [r["nfe"] for r in rows], color="tab:orange")
    axes[1].set_ylabel("network evaluations per sample")
    axes[1].set_yscale("log")
    n = rows[0]["num_samples"]
    fig.suptitle(f"{n} samples of a {rows[0]['num_atoms']}-atom cell")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="checkpoint; default: train a tiny toy model first")
    ap.add_argument("--composition", default="Li16", help="cell composition (≤ 20 atoms)")
    ap.add_argument("--pressure", type=float, default=50.0, help="GPa")
    ap.add_argument("--num-samples", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samplers", nargs="+", default=None,
                    help="sampler configs (conf/sampler/); default: fast, pc and any others present")
    ap.add_argument("--train-steps", type=int, default=200, help="steps for the toy model (no --ckpt)")
    ap.add_argument("--reports-dir", default=str(REPORTS_DIR))
    ap.add_argument("--no-cli", action="store_true", help="skip timing the gencrystal sample command")
    args = ap.parse_args(argv)

    if args.samplers is None:
        from gencrystal.sampling.generator import available_samplers

        others = [s for s in available_samplers() if s not in ("fast", "pc")]
        args.samplers = ["fast", "pc", *others]
    meta = run_metadata()
    trained_here = args.ckpt is None
    work = tempfile.TemporaryDirectory()
    if trained_here:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests/
        from tests.toy_model import train_toy_checkpoint

        t0 = time.perf_counter()
        ckpt = str(train_toy_checkpoint(Path(work.name), max_steps=args.train_steps))
        train_s = time.perf_counter() - t0
        print(f"trained a toy checkpoint in {train_s:.1f} s: {ckpt}", file=sys.stderr)
    else:
        ckpt, train_s = args.ckpt, None

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for sampler in args.samplers:
            row = _time_generator(ckpt, device, sampler, args.composition, args.pressure, args.num_samples,
                                  args.repeats, args.batch_size)
            print(f"{sampler:>5} {device:>5}: NFE {row['nfe']:5d}  {row['wall_s_median']:.3f} s  "
                  f"{row['structures_per_s']:.1f} structures/s", file=sys.stderr)
            rows.append(row)
    cli_rows = [] if args.no_cli else [_time_cli(ckpt, s, args.composition, args.pressure, args.num_samples)
                                       for s in args.samplers]

    by = {(r["sampler"], r["device"]): r for r in rows}
    comparisons = []
    for device in devices:
        p = by.get(("pc", device))
        for s in args.samplers:
            f = by.get((s, device))
            if p and f and s != "pc":
                comparisons.append({"device": device, "sampler": s,
                                    "nfe_ratio_pc_over_sampler": p["nfe"] / f["nfe"] if f["nfe"] else None,
                                    "speedup_over_pc": p["wall_s_median"] / f["wall_s_median"]})
    results = {
        "metadata": meta,
        "checkpoint": ckpt if not trained_here else "toy model trained by this script",
        "trained_here": trained_here,
        "train_steps": args.train_steps if trained_here else None,
        "train_wall_s": train_s,
        "composition": args.composition,
        "pressure_gpa": args.pressure,
        "num_samples": args.num_samples,
        "repeats": args.repeats,
        "runs": rows,
        "cli": cli_rows,
        "comparisons": comparisons,
        "load_average_1min_at_end": os.getloadavg()[0],
    }

    lines = [
        "# Sampling speed: fast sampler vs predictor–corrector",
        "",
        f"{args.num_samples} samples of {args.composition} at {args.pressure:g} GPa, batch size {args.batch_size}, "
        f"median of {args.repeats} seeded runs after one warm-up (wall time of `Generator.run`, i.e. model calls, "
        "conversion to Atoms and the distance/volume checks).",
        "",
        ("Checkpoint: **a tiny CSP model trained by this script** on the toy database of "
         f"`tests/toy_model.py` ({args.train_steps} steps, {train_s:.0f} s): NFE and speed are real, the "
         "structures are not meaningful." if trained_here else f"Checkpoint: `{ckpt}`."),
        "",
        "| sampler | device | NFE / sample | wall (s) | structures/s | flagged |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['sampler']} | {r['device_name']} | {r['nfe']} | {r['wall_s_median']:.3f} | "
                     f"{r['structures_per_s']:.1f} | {r['flagged_fraction']:.0%} |")
    if comparisons:
        lines += ["", "| device | sampler | PC NFE / its NFE | speed-up over PC (wall) |", "|---|---|---|---|"]
        for c in comparisons:
            ratio = f"{c['nfe_ratio_pc_over_sampler']:.1f}×" if c["nfe_ratio_pc_over_sampler"] else "n/a"
            lines.append(f"| {c['device']} | {c['sampler']} | {ratio} | {c['speedup_over_pc']:.1f}× |")
    if cli_rows:
        lines += ["", "The whole command on CPU (Python start-up, imports and checkpoint loading included):", "",
                  "| sampler | command wall (s) | of which sampling (s) | written | flagged |", "|---|---|---|---|---|"]
        for c in cli_rows:
            lines.append(f"| {c['sampler']} | {c['command_wall_s']:.2f} | {c['sampling_wall_s']:.3f} | "
                         f"{c['written']} | {c['flagged']} |")
        lines += ["", f"Command: `{cli_rows[0]['command']}`"]
    lines += ["", "flagged: share of samples with atoms closer than 0.5 Å or a volume outside 1–200 Å³/atom "
              "(kept, not dropped; see docs/sampling.md).",
              f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
              "(a shared machine inflates wall times)."]
    if not torch.cuda.is_available():
        lines += ["", "No GPU was visible to torch on this machine: GPU rows are absent."]
    lines += ["", "![wall time and NFE](bench_sample.png)"]
    reports = Path(args.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    _plot(rows, reports / "bench_sample.png")
    jpath, mpath = write_report("bench_sample", results, "\n".join(lines), reports_dir=reports)
    print(f"wrote {jpath} and {mpath}", file=sys.stderr)
    work.cleanup()
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
