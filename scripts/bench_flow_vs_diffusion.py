#!/usr/bin/env python
"""Flow matching against diffusion at an equal training budget, CSP on Perov-5 and MP-20.

For each dataset two models are trained with the same data, denoiser (``--model``),
optimiser, optimiser steps (``--steps``), batch (``--batch-size``) and seed: the
diffusion experiment ``<dataset>_csp`` and its flow twin ``<dataset>_csp_flow``. Both are
scored on the same test crystals (one sample each, the crystal's own cell composition,
0 GPa): 1-sample match rate and RMSE against network evaluations (NFE) — flow Euler at
``--flow-nfe`` (default 10, 20, 50, 100) plus ``--flow-extra`` samplers, diffusion
``fast`` (200 NFE) and ``pc`` (2000 NFE, on the first ``--pc-n`` scored crystals, where
every other sampler is scored too) — with the sampling wall time per structure.

Protocol (the one of ``scripts/bench_mp20.py``, whose pieces this script imports): the
train splits are not on these machines, so each model trains on the dataset's **val**
split minus a seeded 10 % hold-out (``data.protocol=offline``) and is scored on a seeded
random subset of its **test** split. Validation is off (``trainer.limit_val_batches=0``)
and the checkpoint scored is the last one (EMA weights) after exactly ``--steps`` steps,
so the budget is the same for both. Trainings run as ``gencrystal train`` subprocesses,
``--parallel`` at a time, under ``nice`` with one thread each.

Resumable: a killed training resumes from its ``last.ckpt``; finished trainings and
sample files (``<run-dir>/samples/*.extxyz`` + ``.json``) are reused by a re-run.

    # the reduced CPU run of reports/flow_vs_diffusion.md
    python scripts/bench_flow_vs_diffusion.py
    # a real comparison on a GPU
    python scripts/bench_flow_vs_diffusion.py --model cspnet --steps 100000 --batch-size 256 --n-test 0 --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from bench_mp20 import (  # noqa: E402
    _leakage_lines,
    checkpoint_facts,
    data_root_default,
    leakage,
    sample_references,
    sampler_config,
    score,
    select_references,
)

DATASETS = {
    "perov5": {"title": "Perov-5", "folder": "perov_5", "n_test": 3785},
    "mp20": {"title": "MP-20", "folder": "mp_20", "n_test": 9046},
}
KINDS = {"diffusion": "{ds}_csp", "flow": "{ds}_csp_flow"}


# ---------------------------------------------------------------------------- training
def shown(path: Path | str) -> str:
    """A path as written into commands and reports: relative to the repository when inside it."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(path)


def strip_machine_paths(obj: Any, data_root: str) -> Any:
    """The results with the repository and data-root prefixes replaced (no machine paths in reports)."""
    text = json.dumps(obj).replace(str(REPO) + "/", "").replace(str(Path(data_root).resolve()), "$GENCRYSTAL_DATA")
    return json.loads(text)


def train_command(ds: str, kind: str, args, out: Path, resume: bool) -> list[str]:
    """The ``gencrystal train`` command line of one model (equal budget for both kinds)."""
    cmd = ["nice", "-n", str(args.nice), sys.executable, "-m", "gencrystal", "train",
           f"experiment={KINDS[kind].format(ds=ds)}", f"model={args.model}", f"out={shown(out)}",
           f"trainer.max_steps={args.steps[ds]}", "trainer.max_epochs=100000", f"batch_size={args.batch_size}",
           f"optim={args.optim}", "logger=csv", f"seed={args.seed}", f"resume={'true' if resume else 'false'}",
           "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", "data.progress=false",
           "checkpoint.every_n_steps=200", f"model.ema_decay={args.ema_decay}"]
    if args.data_root_given:
        cmd.append(f"data_root={args.data_root}")
    if args.device.startswith("cuda"):
        cmd.append("trainer=gpu")
    return cmd + list(args.train_override)


def train_all(args, run_root: Path) -> dict[str, dict]:
    """Train (or reuse/resume) every (dataset, kind) model, ``--parallel`` at a time."""
    from gencrystal.io import write_json
    from gencrystal.runtime import die_with_parent_preexec

    jobs = [(ds, kind) for ds in args.datasets for kind in KINDS]
    records: dict[str, dict] = {}
    pending = []
    for ds, kind in jobs:
        out = run_root / f"train_{ds}_{kind}"
        rec_path = out / "bench_train.json"
        if rec_path.is_file():
            records[f"{ds}/{kind}"] = json.loads(rec_path.read_text())
        else:
            pending.append((ds, kind, out))
    running: list[tuple[str, str, Path, subprocess.Popen, float, Any]] = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads), "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    while pending or running:
        while pending and len(running) < args.parallel:
            ds, kind, out = pending.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            resume = (out / "checkpoints" / "last.ckpt").is_file()
            cmd = train_command(ds, kind, args, out, resume)
            log = open(out / "bench_train.log", "a")
            print(f"[train] {ds}/{kind}: gencrystal {' '.join(cmd[6:])}", flush=True)
            # (die with this script: a training left running would race the one its re-run starts in `out`)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                    preexec_fn=die_with_parent_preexec())
            running.append((ds, kind, out, proc, time.time(), log))
        time.sleep(2.0)
        for item in list(running):
            ds, kind, out, proc, t0, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            wall = round(time.time() - t0, 1)
            prev = json.loads((out / "wall_partial.json").read_text())["wall_s"] if (out / "wall_partial.json").is_file() else 0.0
            if proc.returncode != 0:
                write_json({"wall_s": prev + wall}, out / "wall_partial.json")
                raise SystemExit(f"training {ds}/{kind} failed (exit {proc.returncode}); see {out / 'bench_train.log'}")
            ckpt = out / "checkpoints" / "last.ckpt"
            rec = {"dataset": ds, "kind": kind, "experiment": KINDS[kind].format(ds=ds), "ckpt": str(ckpt),
                   "wall_s": round(prev + wall, 1), "threads": args.threads,
                   "command": " ".join(["gencrystal", *train_command(ds, kind, args, out, False)[6:]]),
                   **checkpoint_facts(ckpt)}
            write_json(rec, out / "bench_train.json")  # atomic: a kill leaves no half-written record
            records[f"{ds}/{kind}"] = rec
            print(f"[train] {ds}/{kind} done in {wall} s ({rec.get('global_step')} steps)", flush=True)
    return records


def final_train_loss(out: Path) -> float | None:
    """Mean ``train/loss`` of the last 10 logged steps (CSV log), or None."""
    import csv

    files = sorted(out.glob("csv/version_*/metrics.csv"))
    vals: list[float] = []
    for f in files:
        with open(f) as fh:
            for row in csv.DictReader(fh):
                v = row.get("train/loss")
                if v not in (None, ""):
                    vals.append(float(v))
    return round(sum(vals[-10:]) / len(vals[-10:]), 4) if vals else None


# ---------------------------------------------------------------------------- samplers
def samplers_for(kind: str, args) -> list[tuple[str, Any, bool]]:
    """(label, sampler name/config, pc-subset only) per sampler of a model kind."""
    if kind == "diffusion":
        pc = sampler_config("pc", args.pc_steps) if args.pc_steps else "pc"
        return [("diffusion fast", "fast", False), ("diffusion pc", pc, True)]
    out = []
    for nfe in args.flow_nfe:
        out.append((f"flow euler {nfe}", sampler_config("flow", nfe), False))
    for spec in args.flow_extra:  # solver:steps[:slope]
        parts = spec.split(":")
        cfg = sampler_config("flow", int(parts[1]))
        cfg.solver = parts[0]
        label = f"flow {parts[0]} {int(parts[1]) * {'euler': 1, 'midpoint': 2, 'rk4': 4}[parts[0]]}"
        if len(parts) > 2:
            cfg.anneal_slope = float(parts[2])
            label += f" anneal {float(parts[2]):g}"
        out.append((label, cfg, False))
    return out


# ---------------------------------------------------------------------------- report
def _pct(x):
    return f"{100 * x:.2f}" if _finite(x) else "–"


def _num(x, nd=4):
    return f"{x:.{nd}f}" if _finite(x) else "–"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    dss = list(res["datasets"])
    fig, axes = plt.subplots(1, len(dss), figsize=(5.2 * len(dss), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        rows = res["datasets"][ds]["pc_subset"]
        flow = sorted((r["nfe"], r["match_rate"]) for r in rows if r["label"].startswith("flow euler"))
        ax.plot([p[0] for p in flow], [100 * p[1] for p in flow], "o-", label="flow (Euler)")
        for r in rows:
            if r["label"].startswith("diffusion"):
                ax.plot([r["nfe"]], [100 * r["match_rate"]], "s", label=r["label"])
            elif not r["label"].startswith("flow euler"):
                ax.plot([r["nfe"]], [100 * r["match_rate"]], "^", label=r["label"])
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations per sample (NFE)")
        ax.set_ylabel("1-sample match rate (%)")
        n = rows[0]["n_ref"] if rows else 0
        ax.set_title(f"{DATASETS[ds]['title']} (test subset n = {n})")
        ax.legend(fontsize=7)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def goal_lines(res: dict) -> list[str]:
    """The issue's goal, checked per dataset on the full scored subset (flow <= 50 NFE vs fast)."""
    out = []
    for ds, d in res["datasets"].items():
        rows = d["main"]
        fast = next((r for r in rows if r["label"] == "diffusion fast"), None)
        flows = [r for r in rows if r["label"].startswith("flow") and r["nfe"] <= 50]
        if fast is None or not flows:
            continue
        best = max(flows, key=lambda r: (r["match_rate"], -r["rmse"] if _finite(r["rmse"]) else -math.inf))
        mr_ok = best["match_rate"] >= fast["match_rate"]
        comparable = _finite(best["rmse"]) and _finite(fast["rmse"])  # an RMSE over no matches is not a number
        rmse_ok = comparable and best["rmse"] < fast["rmse"]
        if not comparable:
            rmse_word = "not comparable: " + ("diffusion fast" if _finite(best["rmse"]) else "the flow") + " matched nothing"
            verdict = "not shown (the RMSE half needs matches on both sides)" if mr_ok else "NOT met"
        else:
            rmse_word = "lower" if rmse_ok else "not lower"
            verdict = "met" if (mr_ok and rmse_ok) else "NOT met"
        out.append(f"- {DATASETS[ds]['title']}: best flow at <= 50 NFE is `{best['label']}` ({best['nfe']} NFE): "
                   f"match rate {_pct(best['match_rate'])} % against {_pct(fast['match_rate'])} % for diffusion "
                   f"fast at {fast['nfe']} NFE ({'>=' if mr_ok else '<'}), RMSE {_num(best['rmse'])} against "
                   f"{_num(fast['rmse'])} ({rmse_word}) -> goal **{verdict}**.")
    return out


def markdown(res: dict) -> str:
    a = res["settings"]
    lines = ["# Flow matching vs diffusion at an equal training budget — REDUCED RUN" if a["model"] == "tiny"
             else "# Flow matching vs diffusion at an equal training budget", ""]
    steps = ", ".join(f"{DATASETS[ds]['title']} {n}" for ds, n in a["steps"].items())
    if a["model"] == "tiny":
        lines += [f"**This is a reduced CPU run**: model `{a['model']}`, optimiser steps of batch "
                  f"{a['batch_size']} per model: {steps}; a subset of each test set. It compares the two generative "
                  "formulations at the same small budget; the numbers are far below the published ones "
                  "(fully trained DiffCSP-size models) and must not be read as such.", ""]
    lines += ["## Protocol", ""]
    lines += ["- data: offline protocol — each model trains on the dataset's val split minus a seeded 10 % hold-out "
              "and is scored on its test split (train splits are not on this machine; ../shared/data/README.md)",
              f"- equal budget: same data, denoiser `model={a['model']}`, `optim={a['optim']}`, "
              f"optimiser steps ({steps}), global batch {a['batch_size']}, seed {a['seed']}, "
              f"{a['threads']} thread(s) per training; validation off, the last checkpoint's EMA weights are scored "
              f"with EMA decay {a['ema_decay']} for both (the experiments' 0.999 would still carry 0.999^N of the "
              "initial weights after N steps — 22 % at 1500 — which a short run cannot afford)",
              "- diffusion: `experiment=<dataset>_csp` (wrapped-normal VE coordinates, VP lattice with the "
              "μ(n, P) prior); flow: `experiment=<dataset>_csp_flow` (flat-torus flow, log-polar lattice flow "
              "from the same prior, conditional-OT schedule)",
              "- scoring: 1 sample per test crystal (its cell composition, 0 GPa); pymatgen StructureMatcher("
              "stol=0.5, ltol=0.3, angle_tol=10); RMSE = get_rms_dist()[0] / (V/N)^1/3, mean over matched "
              f"crystals; validity filter `{a['validity_mode']}` (numbers without it beside)",
              "- NFE = network evaluations per sample; wall time per structure = sampling wall time / samples "
              f"(batch {a['sample_batch']}, device {a['device']})", ""]
    lines += ["## Training", "",
              "| dataset | model | experiment | steps | epochs | parameters | training wall (s) | final train loss |",
              "|---|---|---|---|---|---|---|---|"]
    for r in res["training"].values():
        lines.append(f"| {DATASETS[r['dataset']]['title']} | {r['kind']} | `{r['experiment']}` | {r.get('global_step')} | "
                     f"{r.get('epochs')} | {r.get('parameters')} | {r.get('wall_s')} | {r.get('final_train_loss')} |")
    lines += ["", "The two losses are different objectives (velocity regression against score matching) and are "
              "not comparable with each other.", ""]
    for ds, d in res["datasets"].items():
        t = DATASETS[ds]["title"]
        lines += [f"## {t}", "",
                  f"Scored: {d['n_ref']} of {DATASETS[ds]['n_test']:,} test crystals (seeded random subset, seed "
                  f"{a['seed']}); a perfect model scores {_pct(d['ceiling'])} % with the validity filter.", "",
                  "| model / sampler | NFE | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) | "
                  "cRMSE (no filter) | METRe % | METRe cRMSE | valid samples | wall per structure (s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in d["main"]:
            lines.append(f"| {r['label']} | {r['nfe']} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                         f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} | "
                         f"{_num(r.get('crmse_unfiltered'))} | {_pct(r.get('metre'))} | {_num(r.get('metre_crmse'))} | "
                         f"{r['n_pred_valid']} | {_num(r['wall_per_structure_s'], 4)} |")
        lines += ["", "cRMSE counts a miss as the matcher's stol (0.5); METRe compares every sample with every test "
                  "crystal of its composition (docs/metrics.md)."]
        lines += _leakage_lines(d.get("leakage"), "test")
        pc_nfe = next((r["nfe"] for r in d["pc_subset"] if r["label"] == "diffusion pc"), "?")
        lines += ["", f"On the first {d['pc_n']} of these crystals, where the {pc_nfe}-NFE `pc` sampler was run "
                  "(it costs 10x `fast` at its default steps):", "",
                  "| model / sampler | NFE | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) |",
                  "|---|---|---|---|---|---|---|"]
        for r in d["pc_subset"]:
            lines.append(f"| {r['label']} | {r['nfe']} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                         f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} |")
        lines.append("")
    lines += ["## Match rate against NFE", "", f"![match rate vs NFE]({res['plot']})", "",
              "## Goal: flow at <= 50 NFE matches at least as often as diffusion fast at 200 NFE, with lower RMSE", ""]
    lines += goal_lines(res) or ["- not evaluated (missing rows)"]
    if res.get("discussion"):
        lines += ["", "## Discussion", "", res["discussion"].strip()]
    lines += ["", "## Timing", "", f"- wall time of this invocation: {res['wall_s']:.1f} s (trainings and sample files "
              "reused from earlier invocations are not re-timed; their own times are in the tables)",
              f"- run directory: `{res['run_dir']}` (checkpoints, samples; re-score with `gencrystal evaluate csp`)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["perov5", "mp20"])
    p.add_argument("--model", default="tiny", help="conf/model/<name>.yaml, the same for both kinds")
    p.add_argument("--optim", default="adamw_constant", help="conf/optim/<name>.yaml, the same for both kinds")
    p.add_argument("--steps", nargs="+", default=["perov5=2000", "mp20=1200"],
                   help="optimiser steps per model, as N (every dataset) or DATASET=N")
    p.add_argument("--batch-size", type=int, default=64, help="global training batch")
    p.add_argument("--ema-decay", type=float, default=0.99,
                   help="EMA decay of the scored weights (the experiments' 0.999 keeps 0.999^N of the initial "
                        "weights after N steps: 22 %% at 1500)")
    p.add_argument("--threads", type=int, default=1, help="threads per training process")
    p.add_argument("--parallel", type=int, default=2, help="trainings run at once")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--train-override", nargs="*", default=[], help="extra Hydra overrides for every training")
    p.add_argument("--n-test", nargs="+", default=["perov5=200", "mp20=100"],
                   help="test crystals scored (0 = all), as N or DATASET=N")
    p.add_argument("--pc-n", nargs="+", default=["perov5=50", "mp20=25"],
                   help="first N scored crystals that also get the pc sampler, as N or DATASET=N")
    p.add_argument("--pc-steps", type=int, default=0,
                   help="predictor-corrector steps (0 = conf/sampler/pc.yaml's); fewer only for a quick test")
    p.add_argument("--flow-nfe", nargs="+", type=int, default=[10, 20, 50, 100], help="Euler steps (= NFE)")
    p.add_argument("--flow-extra", nargs="*", default=["midpoint:25", "euler:50:5"],
                   help="more flow samplers as solver:steps[:anneal_slope]")
    p.add_argument("--validity-mode", default="paper", choices=["paper", "pred", "both"])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--no-metre", action="store_true", help="skip METRe (one matcher call per same-composition pair)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample-batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--run-dir", default="runs/bench_flow", help="relative paths are relative to the repository")
    p.add_argument("--name", default="flow_vs_diffusion")
    p.add_argument("--reports-dir", default=None)
    p.add_argument("--discussion", default=None, metavar="MD",
                   help="a markdown file with the reading of the results, appended as 'Discussion'")
    a = p.parse_args(argv)
    for key in ("steps", "n_test", "pc_n"):
        setattr(a, key, per_dataset(getattr(a, key), a.datasets, key))
    return a


def per_dataset(values: list[str], datasets: list[str], name: str) -> dict[str, int]:
    """``["N"]`` or ``["perov5=N", "mp20=M"]`` -> ``{dataset: int}`` for every dataset."""
    out: dict[str, int] = {}
    for v in values:
        if "=" in v:
            ds, n = v.split("=", 1)
            out[ds] = int(n)
        else:
            out.update({ds: int(v) for ds in datasets})
    missing = [ds for ds in datasets if ds not in out]
    if missing:
        raise SystemExit(f"--{name.replace('_', '-')} gives no value for {missing}")
    return out


def main(argv=None) -> int:
    from gencrystal.errors import GencrystalError
    from gencrystal.metrics.validity import crystal_validity
    from gencrystal.reporting import REPORTS_DIR, write_report

    args = parse_args(argv)
    t_start = time.time()
    args.data_root_given = args.data_root is not None
    args.data_root = str(Path(args.data_root) if args.data_root else data_root_default())
    run_root = Path(args.run_dir) if Path(args.run_dir).is_absolute() else REPO / args.run_dir
    (run_root / "samples").mkdir(parents=True, exist_ok=True)
    for ds in args.datasets:
        if not (Path(args.data_root) / DATASETS[ds]["folder"] / "test.csv").is_file():
            raise GencrystalError(f"{DATASETS[ds]['title']} test split not found under {args.data_root!r}")
    records = train_all(args, run_root)
    for rec in records.values():
        rec["final_train_loss"] = final_train_loss(Path(rec["ckpt"]).parent.parent)
    reports = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
    res: dict[str, Any] = {"settings": vars(args), "training": records, "datasets": {}, "run_dir": shown(run_root)}
    for ds in args.datasets:
        refs = select_references(Path(args.data_root) / DATASETS[ds]["folder"] / "test.csv", args.n_test[ds], "random",
                                 args.seed)
        pc_refs = refs[:args.pc_n[ds]]
        d: dict[str, Any] = {"n_ref": len(refs), "pc_n": len(pc_refs), "main": [], "pc_subset": [],
                             "ceiling": sum(crystal_validity(r.structure).valid for r in refs) / len(refs)}
        # offline protocol: each model trains on the val split (minus its hold-out), so val is the training side
        d["leakage"] = {**leakage(refs, [Path(args.data_root) / DATASETS[ds]["folder"] / "val.csv"]), "scope": "scored"}
        for kind in KINDS:
            ckpt = Path(records[f"{ds}/{kind}"]["ckpt"])
            for label, sampler, pc_only in samplers_for(kind, args):
                use = pc_refs if pc_only else refs
                cache = run_root / "samples" / f"{ds}_{label.replace(' ', '_')}.extxyz"
                print(f"[sample] {ds}: {label} on {len(use)} crystals", flush=True)
                frames, meta = sample_references(ckpt, use, sampler, 1, args, cache=cache)
                extra = {"nfe": meta["nfe"], "sampling_wall_s": meta["wall_s"],
                         "wall_per_structure_s": meta["wall_s"] / max(1, meta["n_samples"]),
                         "flagged": meta["flagged"]}
                print(f"[score] {ds}: {label}", flush=True)
                if not pc_only:
                    d["main"].append({**score(refs, frames, args, label), **extra})
                by_id = {a.info["ref_id"]: a for a in frames}
                sub = [by_id[r.id] for r in pc_refs]
                d["pc_subset"].append({**score(pc_refs, sub, args, label), **extra})
        res["datasets"][ds] = d
    res["wall_s"] = round(time.time() - t_start, 1)
    res["plot"] = f"{args.name}.png"
    if args.discussion:
        res["discussion"] = Path(args.discussion).read_text()
    reports.mkdir(parents=True, exist_ok=True)
    plot(res, reports / res["plot"])
    res = strip_machine_paths(res, args.data_root)
    jp, mp = write_report(args.name, res, markdown(res), reports_dir=reports)
    print(f"wrote {mp} and {jp}")
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
