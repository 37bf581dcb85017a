#!/usr/bin/env python
"""The GPU job: MP-20 CSP at DiffCSP size in one command, plus the GPU checks -> ``<out>/mp20_csp_gpu.{md,json}``.

One run on one GPU (run it through ``scripts/gpu_run.sh mp20``, which installs the kit first):

1. the CUDA tests (``pytest -m cuda``), then the MP-20 splits parsed once on all cores;
2. training throughput (forward + backward + AdamW step) of ``mp20_csp`` with the CSPNet 512 x 6
   denoiser at batch 256, fp32 against bf16 autocast (``scripts/bench_train.py``'s measurement);
3. training of ``mp20_csp`` (CSPNet 512 x 6, bf16-mixed) on the offline protocol (MP-20 val
   minus a seeded 10 % hold-out; MP-20 train is not available) under a time limit
   (``--train-minutes``, Lightning ``max_time``), and its training curve; the checkpoint
   samples under bf16 autocast (``model.bf16_sampling``);
4. sampling one structure per MP-20 test crystal (all 9,046 by default) with the ``fast``
   sampler at the crystal's cell composition (structures/s), stopping early only if the
   job's time budget would be exceeded (the report then states how many were sampled);
5. scoring (StructureMatcher match rate and RMSE, DiffCSP validity filter) on ``--workers`` cores;
6. relaxation throughput with CHGNet on the GPU: batched FIRE against one-by-one ASE FIRE
   (``scripts/bench_relax.py``'s structures).

``--smoke`` runs every step on the CPU at toy size (tiny model, 50 test crystals, a 10-step
sampler, a few relaxations), in about two minutes: CI runs it so the path stays exercised.

    bash scripts/gpu_run.sh mp20                                  # on the GPU machine
    python scripts/gpu_job_mp20.py --smoke --out /tmp/smoke        # here, CPU

Files under ``--out``: ``mp20_csp_gpu.md``, ``mp20_csp_gpu.json``, ``mp20_csp_gpu_curve.png``,
``cuda_tests.log``. Model, samples and logs stay under ``--run-dir``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parent.parent
NAME = "mp20_csp_gpu"
DIFFCSP_PUBLISHED = {"label": "DiffCSP (published, 1000 epochs on MP-20 train)", "match_rate_pct": 51.49,
                     "rmse": 0.0631, "epochs": 1000}
GOAL_TRAIN_STRUCTURES_PER_S = 3000.0  # bf16, CSPNet 512 x 6, batch 256, one H200


def _script(name: str):
    """Import ``scripts/<name>.py`` as a module (the benchmarks whose measurements this job reuses)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, toy sizes, ~2 minutes (CI)")
    p.add_argument("--out", default=os.environ.get("OUT", str(REPO / "runs" / "gpu_job")), help="report folder")
    p.add_argument("--run-dir", default=None, help="model, samples, logs (default runs/gpu_job_mp20[_smoke])")
    p.add_argument("--data-root", default=None, help="default $GENCRYSTAL_DATA or ../shared/data")
    p.add_argument("--train-minutes", type=float, default=None, help="training time limit (4.5; smoke 0.5)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="whole job; sampling stops early and relaxation is skipped past it (8.5; smoke 10)")
    p.add_argument("--n-test", type=int, default=None, help="test crystals sampled and scored (0 = all 9,046; smoke 50)")
    p.add_argument("--experiment", default="mp20_csp", choices=["mp20_csp", "mp20_csp_flow"],
                   help="diffusion (mp20_csp, sampler fast) or its flow-matching twin (mp20_csp_flow, e.g. --sampler flow)")
    p.add_argument("--sampler", default="fast")
    p.add_argument("--sampler-steps", type=int, default=None, help="override the sampler's num_steps (smoke 10)")
    p.add_argument("--sample-batch", type=int, default=None, help="structures per sampling call (1024; smoke 50)")
    p.add_argument("--workers", type=int, default=None, help="scoring processes (16; smoke 2)")
    p.add_argument("--relax-n", type=int, default=None, help="structures of the relaxation comparison (12; smoke 3)")
    p.add_argument("--relax-steps", type=int, default=None, help="FIRE step limit (300; smoke 20)")
    p.add_argument("--throughput-steps", type=int, default=None, help="timed training steps per precision (10; smoke 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", nargs="*", default=[], choices=["tests", "data", "throughput", "train", "sample", "relax"])
    a = p.parse_args(argv)
    smoke = a.smoke
    defaults = {"train_minutes": (4.5, 0.5), "budget_minutes": (8.5, 10.0), "n_test": (0, 50), "sample_batch": (1024, 50),
                "workers": (16, 2), "relax_n": (12, 3), "relax_steps": (300, 20), "throughput_steps": (10, 2),
                "sampler_steps": (None, 10)}
    for k, (full, toy) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, toy if smoke else full)
    a.device = "cpu" if smoke else "cuda"
    a.model = "tiny" if smoke else "cspnet"
    a.batch_size = 32 if smoke else 256
    a.precisions = ["32"] if smoke else ["32", "bf16-mixed"]
    a.train_precision = "32-true" if smoke else "bf16-mixed"
    a.run_dir = a.run_dir or str(REPO / "runs" / ("gpu_job_mp20_smoke" if smoke else "gpu_job_mp20"))
    a.data_root = a.data_root or os.environ.get("GENCRYSTAL_DATA") or str(REPO.parent / "shared" / "data")
    return a


class Clock:
    """Seconds since the job started and what is left of its budget."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget_s = time.time(), budget_s

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def environment() -> dict:
    import torch

    env = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        env.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                   gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                   bf16_supported=bool(torch.cuda.is_bf16_supported()))
    return env


# ---------------------------------------------------------------------------- steps
def cuda_tests(a, out: Path) -> dict:
    """``pytest -m cuda`` in a subprocess; its log goes to ``<out>/cuda_tests.log``."""
    where = ["tests/test_cuda.py"] if a.smoke else ["tests"]  # smoke: the GPU tests' own file (quick to collect)
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *where]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    log = (res.stdout or "") + (res.stderr or "")
    (out / "cuda_tests.log").write_text(log)
    lines = [ln for ln in log.strip().splitlines() if ln.strip()]
    return {"command": "python " + " ".join(cmd[1:]), "exit_code": res.returncode, "summary": lines[-1] if lines else "",
            "wall_s": round(time.time() - t0, 1),
            # pytest exit 5 = no test selected; 0 with everything skipped is what a machine without CUDA gives
            "passed": res.returncode == 0}


def parse_data(a) -> dict:
    """Parse the MP-20 splits once on all cores (the cache the later steps read)."""
    from gencrystal.config import compose
    from gencrystal.data.dataset import load_split

    workers = max(1, min(16, os.cpu_count() or 1))
    cfg = compose("train", ["experiment=mp20_csp", f"data_root={a.data_root}", "data.progress=false",
                            f"data.parse_workers={workers}"])
    t0 = time.time()
    sizes = {split: len(load_split(cfg.data, split, data_root=a.data_root)) for split in ("train", "val")}
    return {"workers": workers, "wall_s": round(time.time() - t0, 1), **sizes}


def training_throughput(a) -> list[dict]:
    """Structures/s of training steps at ``a.batch_size``, per precision (bench_train's measurement)."""
    import torch

    bench = _script("bench_train")
    rows = []
    for prec in a.precisions:
        ns = SimpleNamespace(batch_size=a.batch_size, steps=a.throughput_steps, warmup=2 if not a.smoke else 1,
                             precision=prec)
        rows.append(bench.bench_one(a.experiment, a.model, ns, torch.device(a.device), a.data_root))
    return rows


def read_curve(run_dir: Path) -> dict[str, list]:
    """Training/validation loss per step from the run's CSV log."""
    files = sorted((run_dir / "csv").glob("version_*/metrics.csv"))
    curve: dict[str, list] = {"train_step": [], "train_loss": [], "val_step": [], "val_loss": [], "val_epoch": []}
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                tl = row.get("train/loss") or row.get("train/loss_step")
                vl = row.get("val/loss")
                if step and tl:
                    curve["train_step"].append(int(step))
                    curve["train_loss"].append(float(tl))
                if step and vl:
                    curve["val_step"].append(int(step))
                    curve["val_loss"].append(float(vl))
                    curve["val_epoch"].append(int(float(row.get("epoch") or 0)))
    return curve


def plot_curve(curve: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if curve["train_step"]:
        ax.plot(curve["train_step"], curve["train_loss"], lw=0.8, alpha=0.7, label="train loss")
    if curve["val_step"]:
        ax.plot(curve["val_step"], curve["val_loss"], "o-", ms=3, label="val loss (hold-out)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _dd_hh_mm_ss(seconds: float) -> str:
    """Lightning's ``max_time`` string ``DD:HH:MM:SS`` for a duration in seconds (a dict would
    reach the Trainer as a DictConfig, which Lightning does not read as a duration)."""
    s = int(round(seconds))
    return f"{s // 86400:02d}:{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train_model(a, run_dir: Path) -> tuple[Path, dict]:
    """Train ``mp20_csp`` under the time limit; returns the best checkpoint and the facts of the run."""
    from gencrystal.config import compose
    from gencrystal.model.train import train

    out = run_dir / "train"
    resume = (out / "checkpoints" / "last.ckpt").is_file()
    overrides = [f"experiment={a.experiment}", f"model={a.model}", f"out={out}", "logger=csv", f"seed={a.seed}",
                 f"batch_size={a.batch_size}", f"data_root={a.data_root}", "data.progress=false",
                 f"data.parse_workers={max(1, min(16, os.cpu_count() or 1))}", "trainer.enable_progress_bar=false",
                 "+trainer.max_time=" + _dd_hh_mm_ss(60 * a.train_minutes), f"trainer.precision={a.train_precision}",
                 f"resume={'true' if resume else 'false'}"]
    if a.device == "cuda":
        overrides.insert(1, "trainer=gpu")
        overrides.append("model.bf16_sampling=true")  # sampling under bf16 autocast too (recorded in the checkpoint)
    if a.smoke:  # short epochs, so that the hold-out loss is evaluated inside the time limit
        overrides.append("+trainer.limit_train_batches=20")
    cfg = compose("train", overrides)
    t0 = time.time()
    ckpt = train(cfg)
    wall = time.time() - t0
    facts = _script("bench_mp20").checkpoint_facts(Path(ckpt))
    return Path(ckpt), {"overrides": overrides, "wall_s": round(wall, 1), "resumed": resume, "ckpt": str(ckpt),
                        "time_limit_s": round(60 * a.train_minutes), "precision": a.train_precision, **facts}


def load_references(a) -> list:
    """The scored MP-20 test crystals: all, or ``a.n_test`` drawn with ``a.seed`` (rows chosen before parsing)."""
    import numpy as np
    import pandas as pd

    from gencrystal.metrics.io import read_cdvae_csv

    folder = Path(a.data_root) / "mp_20"
    path = next((folder / f for f in ("test.feather", "test.csv") if (folder / f).is_file()), None)
    if path is None:
        from gencrystal.errors import GencrystalError

        raise GencrystalError(f"MP-20 test split not found in {str(folder)!r} (set --data-root or GENCRYSTAL_DATA)")
    if a.n_test <= 0:
        return read_cdvae_csv(path)
    df = pd.read_feather(path) if path.suffix == ".feather" else pd.read_csv(path)
    rows = np.random.default_rng(a.seed).choice(len(df), size=min(a.n_test, len(df)), replace=False)
    tmp = Path(a.run_dir) / "test_subset.feather"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    df.iloc[sorted(rows)].reset_index(drop=True).to_feather(tmp)
    return read_cdvae_csv(tmp)


def sample_and_score(a, ckpt: Path, refs: list, clock: Clock) -> dict:
    """Sample one structure per reference in chunks (stopping before the budget runs out), then score."""
    bench = _script("bench_mp20")
    sampler = bench.sampler_config(a.sampler, a.sampler_steps)
    ns = SimpleNamespace(device=a.device, sample_batch=a.sample_batch, seed=a.seed, validity_mode="paper",
                         workers=a.workers, timeout=30.0, no_metre=False)
    chunk = max(a.sample_batch, 1) * (4 if not a.smoke else 1)
    frames: list = []
    done: list = []
    wall, nfe, stopped = 0.0, None, False
    reserve_s = 60.0 if not a.smoke else 10.0  # kept for scoring and the report
    for i in range(0, len(refs), chunk):
        part = refs[i:i + chunk]
        per = wall / len(done) if done else None
        if per is not None and clock.left() - reserve_s < per * len(part):
            stopped = True
            break
        ns.seed = a.seed + i  # each chunk its own seed: the same command draws the same structures
        fr, meta = bench.sample_references(ckpt, part, sampler, 1, ns)
        frames += fr
        done += part
        wall += float(meta["wall_s"])
        nfe = meta["nfe"]
        print(f"[gpu_job] sampled {len(done)}/{len(refs)} ({wall:.0f} s)", file=sys.stderr)
    t0 = time.time()
    scored = bench.score(done, frames, ns, f"gencrystal ({a.sampler} sampler)") if done else {}
    return {"sampler": a.sampler, "sampler_steps": a.sampler_steps, "nfe": nfe, "n_sampled": len(done),
            "n_requested": len(refs), "stopped_by_budget": stopped, "sampling_wall_s": round(wall, 1),
            "structures_per_s": (len(done) / wall) if wall > 0 else None, "batch": a.sample_batch,
            "scoring_wall_s": round(time.time() - t0, 1), "scoring_workers": a.workers, "score": scored}


def relaxation_throughput(a) -> dict:
    """CHGNet on ``a.device``: one-by-one ASE FIRE against batched FIRE on bench_relax's structures."""
    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures

    bench = _script("bench_relax")
    structs = bench.structures(a.relax_n)
    pressure = 10.0
    pot = load_potential("chgnet", device=a.device)
    relax_structures(structs[:1], pressure, pot, steps=2, progress=False)  # warm-up (lazy init)
    kw = dict(fmax=0.05, steps=a.relax_steps, progress=False)
    one, t1, _, _ = bench.timed("one-by-one", lambda: relax_structures(structs, pressure, pot, **kw))
    bat, t2, _, _ = bench.timed("batched", lambda: relax_structures(structs, pressure, pot, batched=True,
                                                                    batch_size=len(structs), **kw))
    return {"potential": "chgnet", "device": a.device, "pressure_gpa": pressure, "n": len(structs),
            "n_atoms": sum(len(s) for s in structs), "fmax_eV_per_A": 0.05, "max_steps": a.relax_steps,
            "one_by_one_s": round(t1, 2), "batched_s": round(t2, 2),
            "one_by_one_structures_per_min": 60 * len(structs) / t1, "batched_structures_per_min": 60 * len(structs) / t2,
            "agreement": bench.compare(one, bat)}


# ---------------------------------------------------------------------------- report
def _f(x, fmt="{:.1f}"):
    return "–" if x is None else fmt.format(x)


def markdown(res: dict) -> str:
    a = res["settings"]
    env = res["environment"]
    smoke = a["smoke"]
    L = [f"# MP-20 CSP on one GPU: DiffCSP-size model, {a['train_minutes']:g}-minute training"
         + (" — SMOKE RUN (CPU, toy sizes)" if smoke else ""), ""]
    if smoke:
        L += ["**Smoke run**: every step of the GPU job at toy size on the CPU (tiny model, "
              f"{a['n_test']} test crystals, a {a['sampler_steps']}-step sampler). It shows that the path runs; "
              "its numbers mean nothing about the model.", ""]
    L += [f"Device: {env.get('gpu', 'CPU')} (torch {env['torch']}" + (f", CUDA {env['cuda']}" if env.get("cuda") else "")
          + f", {env['cpu_count']} cores). Job wall time {res['wall_s']:.0f} s of a {a['budget_minutes']:g}-minute budget.", ""]
    if res.get("errors"):
        L += ["Steps that failed (the rest of the report stands):", ""] + [f"- {k}: `{v}`" for k, v in res["errors"].items()] + [""]
    t = res.get("training")
    s = res.get("sampling")
    if t or s:
        L += ["## Result", "", "| model | training | epochs | test crystals | sampler (NFE) | match rate % | RMSE | "
              "match rate % (no filter) |", "|---|---|---|---|---|---|---|---|"]
        if s and s.get("score"):
            sc = s["score"]
            L.append(f"| gencrystal `{a['experiment']}` CSPNet {t.get('hidden_dim') if t else '?'}×{t.get('num_layers') if t else '?'} | "
                     f"{(t or {}).get('wall_s', 0) / 60:.1f} min on the offline protocol ({(t or {}).get('precision')}) | "
                     f"{(t or {}).get('epochs')} | {sc['n_ref']:,} of 9,046 | {s['sampler']} ({s['nfe']}) | "
                     f"{100 * sc['match_rate']:.2f} | {_f(sc['rmse'], '{:.4f}')} | {100 * sc['match_rate_unfiltered']:.2f} |")
        p = DIFFCSP_PUBLISHED
        L.append(f"| {p['label']} | — | {p['epochs']} | 9,046 | PC (2000) | {p['match_rate_pct']:.2f} | {p['rmse']:.4f} | — |")
        L += ["", "Protocol: trained on MP-20 **val** minus a seeded 10 % hold-out (validation), scored on MP-20 "
              "**test** (the offline protocol: MP-20 train is not available to this job), one sample per test crystal "
              "at its cell composition; StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10), DiffCSP validity filter. "
              "DiffCSP trained 1000 epochs on the 27,136-crystal train split: the published row is context, not a "
              "like-for-like comparison.", ""]
    if t:
        L += ["## Training", "", f"- `{' '.join(t['overrides'])}`",
              f"- {t.get('parameters', 0):,} parameters; {t.get('epochs')} epochs, {t.get('global_step')} optimizer steps "
              f"in {t['wall_s']:.0f} s (time limit {t['time_limit_s']} s; data loading and parsing included)",
              f"- curve: `{NAME}_curve.png`" + (f"; last hold-out loss {res['curve']['val_loss'][-1]:.4f}"
                                                  if res.get("curve", {}).get("val_loss") else ""), ""]
    if res.get("data"):
        d = res["data"]
        L += [f"Data: MP-20 offline-protocol train {d['train']:,} / hold-out {d['val']:,} structures parsed on "
              f"{d['workers']} processes in {d['wall_s']:.0f} s.", ""]
    if res.get("throughput"):
        L += ["## Training throughput", "", f"Batch {a['batch_size']} MP-20 structures (offline-protocol training split), "
              "forward + backward + AdamW step, mean over the timed steps; goal on one H200 in bf16 at DiffCSP size: "
              f"≥ {GOAL_TRAIN_STRUCTURES_PER_S:,.0f} structures/s (one CPU core: 6.6).", "",
              "| model | precision | params | structures/s | s/step | peak GPU GiB |", "|---|---|---|---|---|---|"]
        for r in res["throughput"]:
            L.append(f"| {r['model']} | {r['precision']} | {r['params']:,} | {r['structures_per_s']:.1f} | "
                     f"{r['step_time_s_mean']:.4f} | {_f(r.get('peak_gpu_memory_gb'), '{:.2f}')} |")
        L.append("")
    if s:
        L += ["## Sampling", "", f"{s['n_sampled']:,} of {s['n_requested']:,} test compositions sampled with `{s['sampler']}`"
              + (f" ({s['sampler_steps']} steps)" if s.get("sampler_steps") else "") + f", {s['nfe']} network evaluations "
              f"per structure, batch {s['batch']}: {s['sampling_wall_s']:.1f} s, **{_f(s['structures_per_s'])} structures/s**"
              + ("; sampling stopped early to stay inside the job's time budget" if s["stopped_by_budget"] else "")
              + f". Scoring: {s['scoring_wall_s']:.0f} s on {s['scoring_workers']} processes.", ""]
    if res.get("relax"):
        r = res["relax"]
        g = r["agreement"]
        L += ["## Relaxation throughput", "", f"{r['n']} structures ({r['n_atoms']} atoms: rattled/strained Si8, Si4O8, Li16) "
              f"relaxed with CHGNet on {r['device']} at {r['pressure_gpa']:g} GPa, FIRE + FrechetCellFilter, fmax "
              f"{r['fmax_eV_per_A']} eV/Å, ≤ {r['max_steps']} steps:", "",
              "| mode | s | structures/min |", "|---|---|---|",
              f"| one-by-one (ASE FIRE) | {r['one_by_one_s']:.1f} | {r['one_by_one_structures_per_min']:.1f} |",
              f"| batched FIRE (batch {r['n']}) | {r['batched_s']:.1f} | {r['batched_structures_per_min']:.1f} |", "",
              f"Batched against one-by-one: max |ΔH| {_f(g.get('max_abs_dH_meV_per_atom'), '{:.2f}')} meV/atom, max |ΔV| "
              f"{_f(g.get('max_abs_dV_pct'), '{:.2f}')} %, {g.get('n_converged')} of {r['n']} converged.", ""]
    if res.get("cuda_tests"):
        c = res["cuda_tests"]
        L += ["## CUDA tests", "", f"`{c['command']}`: exit {c['exit_code']}, `{c['summary']}` ({c['wall_s']} s; log "
              "`cuda_tests.log`)", ""]
    L += ["Reproduce: `make gpu-kit` where PyPI is reachable, then on the GPU machine `bash scripts/gpu_run.sh mp20` "
          "(docs/training.md, section GPU run kit)."]
    return "\n".join(L)


def main(argv=None) -> int:
    from gencrystal.reporting import write_report

    a = parse_args(argv)
    clock = Clock(60 * a.budget_minutes)
    out, run_dir = Path(a.out), Path(a.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"settings": vars(a), "environment": environment(), "errors": {}}
    steps: list[tuple[str, Any]] = [
        ("tests", lambda: res.__setitem__("cuda_tests", cuda_tests(a, out))),
        ("data", lambda: res.__setitem__("data", parse_data(a))),
        ("throughput", lambda: res.__setitem__("throughput", training_throughput(a))),
    ]
    for name, fn in steps:
        if name not in a.skip:
            _guarded(res, name, fn)
    ckpt = None
    if "train" not in a.skip:
        def _train():
            nonlocal ckpt
            ckpt, facts = train_model(a, run_dir)
            res["training"] = facts
            res["curve"] = read_curve(run_dir / "train")
            plot_curve(res["curve"], out / f"{NAME}_curve.png",
                       f"{a.experiment} {a.model}, {a.train_precision}, {a.train_minutes:g} min limit")
        _guarded(res, "train", _train)
    if "sample" not in a.skip and ckpt is not None:
        _guarded(res, "sample", lambda: res.__setitem__("sampling", sample_and_score(a, ckpt, load_references(a), clock)))
    if "relax" not in a.skip:
        if a.smoke or clock.left() > 45:
            _guarded(res, "relax", lambda: res.__setitem__("relax", relaxation_throughput(a)))
        else:
            res["errors"]["relax"] = f"skipped: {clock.left():.0f} s of the budget left"
    res["wall_s"] = round(clock.elapsed(), 1)
    jp, mp = write_report(NAME, res, markdown(res), reports_dir=out)
    print(f"wrote {mp} and {jp}")
    return 1 if any(not str(v).startswith("skipped") for v in res["errors"].values()) else 0


def _guarded(res: dict, name: str, fn) -> None:
    """Run one step; a failure is recorded in the report (one line) and the job goes on."""
    t0 = time.time()
    try:
        fn()
    except Exception as exc:  # a GPU job gets one try: keep the other steps' results
        import traceback

        traceback.print_exc()
        res["errors"][name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    print(f"[gpu_job] {name}: {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
