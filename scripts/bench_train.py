#!/usr/bin/env python
"""Training throughput of the crystal diffusion model: structures/s for forward + backward
+ optimizer step at a fixed batch (default 256 MP-20 structures), on the device at hand.

    python scripts/bench_train.py                       # cspnet (DiffCSP size), mp20_csp, batch 256
    python scripts/bench_train.py --models cspnet tiny --experiments mp20_csp mp20_dng
    python scripts/bench_train.py --device cuda --precision bf16-mixed

Writes reports/bench_train.{json,md} via gencrystal.reporting.write_report. Data: the
MP-20 training split of the active protocol (offline protocol on machines without
train.csv: a seeded 90 % of val). Batches are drawn once (seeded) and reused, so the
timing covers the model only (no data loading). Each configuration runs ``--warmup``
untimed steps, then ``--steps`` timed ones; the report gives the mean and the spread.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiments", nargs="+", default=["mp20_csp"], help="conf/experiment names")
    p.add_argument("--models", nargs="+", default=["cspnet"], help="conf/model names")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed"], help="bf16-mixed: autocast (CUDA)")
    p.add_argument("--data-root", default=None, help="benchmark data root (default $GENCRYSTAL_DATA or ../shared/data)")
    p.add_argument("--name", default="bench_train", help="report name under reports/")
    p.add_argument("--no-report", action="store_true", help="print only")
    return p.parse_args(argv)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bench_one(experiment: str, model: str, args, device, data_root: str) -> dict:
    import torch
    from torch_geometric.loader import DataLoader

    from gencrystal.config import compose
    from gencrystal.data.dataset import load_split
    from gencrystal.model.module import CrystalDiffusionModule
    from gencrystal.model.train import fit_priors

    cfg = compose("train", [f"experiment={experiment}", f"model={model}", f"data_root={data_root}", "data.progress=false"])
    ds = load_split(cfg.data, "train", data_root=data_root)
    prior, scalers = fit_priors(ds, cfg)
    torch.manual_seed(0)
    module = CrystalDiffusionModule(cfg, data_stats=ds.stats.to_dict(), lattice_prior=prior, condition_scalers=scalers)
    module.to(device).train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = []
    for batch in loader:
        if batch.num_atoms.shape[0] == args.batch_size:
            batches.append(batch.to(device))
        if len(batches) >= args.warmup + args.steps:
            break
    use_amp = args.precision == "bf16-mixed"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i, batch in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, _ = module.compute_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(module.net.parameters(), 0.5)
        opt.step()
        module.ema.update_parameters(module.net)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
            losses.append(float(loss.detach()))
        print(f"  {experiment}/{model} step {i}: {dt:.3f} s, loss {float(loss.detach()):.3f}", file=sys.stderr)
    atoms = [int(b.num_atoms.sum()) for b in batches[args.warmup:]]
    edges = [int((b.num_atoms ** 2).sum()) for b in batches[args.warmup:]]
    mean_t = statistics.mean(times)
    return {
        "experiment": experiment,
        "model": model,
        "device": str(device),
        "precision": args.precision,
        "batch_size": args.batch_size,
        "params": sum(p.numel() for p in module.net.parameters()),
        "steps_timed": len(times),
        "step_time_s_mean": mean_t,
        "step_time_s_min": min(times),
        "step_time_s_max": max(times),
        "structures_per_s": args.batch_size / mean_t,
        "atoms_per_s": statistics.mean(atoms) / mean_t,
        "mean_atoms_per_batch": statistics.mean(atoms),
        "mean_pairs_per_batch": statistics.mean(edges),
        "final_loss": losses[-1],
        "train_structures": len(ds),
        "protocol": ds.protocol,
        "peak_gpu_memory_gb": (torch.cuda.max_memory_allocated() / 1024**3) if device.type == "cuda" else None,
        "peak_rss_gb": _peak_rss_gb(),
    }


def main(argv=None) -> int:
    args = _args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    import torch

    from gencrystal.reporting import write_report

    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    root = args.data_root or os.environ.get("GENCRYSTAL_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    load_before = os.getloadavg()
    rows = [bench_one(e, m, args, device, root) for e in args.experiments for m in args.models]
    load_after = os.getloadavg()
    lines = [
        "# Training throughput (forward + backward + AdamW step)",
        "",
        f"Batch {args.batch_size} structures of MP-20 ({rows[0]['protocol']} protocol training split, "
        f"{rows[0]['train_structures']} structures); {args.warmup} warm-up step(s), {args.steps} timed step(s); "
        f"torch threads {torch.get_num_threads()}; 1-min load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (other jobs share this machine: the figures are lower bounds on a quiet one).",
        "",
        "| experiment | model | params | device | precision | structures/s | atoms/s | s/step (min–max) | atom pairs/batch | peak mem GB* |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mem = r["peak_gpu_memory_gb"] if r["peak_gpu_memory_gb"] is not None else r["peak_rss_gb"]
        lines.append(
            f"| {r['experiment']} | {r['model']} | {r['params']:,} | {r['device']} | {r['precision']} | "
            f"{r['structures_per_s']:.1f} | {r['atoms_per_s']:.0f} | {r['step_time_s_mean']:.3f} "
            f"({r['step_time_s_min']:.3f}–{r['step_time_s_max']:.3f}) | {r['mean_pairs_per_batch']:.0f} | {mem:.2f} |")
    lines += ["", "*Memory: peak GPU allocation of that configuration on CUDA; on CPU the process's peak resident "
              "set so far (data included, cumulative over the rows above it, so only the first row and the maximum "
              "are meaningful).",
              "The denoiser is fully connected within each cell, so cost grows with Σ n² atom pairs per batch."]
    md = "\n".join(lines)
    print(md)
    if not args.no_report:
        jpath, mpath = write_report(args.name, {"results": rows, "batch_size": args.batch_size,
                                                "load_average_before": load_before, "load_average_after": load_after}, md)
        print(f"wrote {jpath} and {mpath}")
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
