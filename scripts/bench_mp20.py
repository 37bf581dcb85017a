#!/usr/bin/env python
"""CSP benchmark on MP-20, Perov-5 or Carbon-24 (``--dataset``): train (or load) a model,
sample the test set, score it, write ``reports/<dataset>_csp.{md,json}`` (+ ``_nfe.png``).

What it measures (docs/metrics.md for the definitions):

1. match rate / RMSE of the standard predictor–corrector sampler (``pc``) and the fast
   sampler, beside the published CDVAE / DiffCSP / FlowMM numbers;
2. match rate against network evaluations (NFE): the fast sampler at several step
   counts, plus ``pc``;
3. the lattice-prior variants: pressure-aware c(P) (``murnaghan``, the default) and a
   constant c — one model each (``--lattice-variants``);
4. what each pipeline stage buys: raw samples -> MLP pre-relaxed (``--prerelax-n``
   smallest test crystals) -> DFT-relaxed (``--dft-n`` smallest), scored on the same
   references at each stage.

Protocol: the train splits are not on these machines, so the model trains on the
dataset's **val** split (minus a seeded hold-out used for validation; ``data.protocol=auto``
-> ``offline``) and is scored on its **test** split. The report states it, and states when
the run is reduced (a subset of the test set, few epochs, a tiny model — the CPU default).
``--multi-k 20 --multi-n N`` adds the k-sample protocol (k samples per crystal, a match if
any matches) on the first N scored crystals.

    # reduced CPU run (the defaults): train 2 epochs of the tiny model, 100 test crystals
    python scripts/bench_mp20.py
    # Perov-5 / Carbon-24 (val as train, test as test), fast sampler, 20-sample protocol on 100
    python scripts/bench_mp20.py --dataset perov5 --samplers fast --multi-k 20 --multi-n 100
    # the real benchmark on a GPU
    python scripts/bench_mp20.py --full --device cuda
    # a trained checkpoint
    python scripts/bench_mp20.py --ckpt runs/mp20_csp/checkpoints/best.ckpt --n-test 0
    # score existing samples only (any model; extxyz/CIF folder/ASE db with ref_id/material_id)
    python scripts/bench_mp20.py --pred samples.extxyz --pred-label "my model" --n-test 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parent.parent


def load_datasets() -> dict[str, dict[str, Any]]:
    """``conf/bench/csp.yaml``: per dataset its data folder, experiment, test-set size, full epochs and the
    published anchors as ``(label, match rate %, RMSE, NFE)`` tuples."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "bench" / "csp.yaml"))["datasets"]
    out = {}
    for name, d in raw.items():
        d = dict(d)
        for key in ("published", "published_k20"):
            d[key] = [(r["label"], float(r["match_rate"]), float(r["rmse"]), int(r["nfe"])) for r in d.get(key) or []]
        out[name] = d
    return out


DATASETS: dict[str, dict[str, Any]] = load_datasets()


# ---------------------------------------------------------------------------- inputs
def data_root_default() -> Path:
    """``$GENCRYSTAL_DATA`` or ``../shared/data`` (the rule the tests use)."""
    return Path(os.environ.get("GENCRYSTAL_DATA", REPO.parent / "shared" / "data")).resolve()


def select_references(test_csv: Path, n_test: int, subset: str, seed: int):
    """The scored test crystals: all (n_test <= 0), or ``first``/``random``/``smallest`` n.

    Rows are chosen from the CSV first (``smallest`` by the cell formula's atom count), so
    only the chosen CIFs are parsed.
    """
    import numpy as np
    import pandas as pd
    from pymatgen.core import Composition

    from gencrystal.metrics.io import read_cdvae_csv

    df = pd.read_csv(test_csv, usecols=lambda c: c in ("material_id", "formula"))
    n_all = len(df)
    if n_test <= 0 or n_test >= n_all:
        return read_cdvae_csv(test_csv)
    if subset == "first":
        rows = list(range(n_test))
    elif subset == "smallest":
        sizes = [int(Composition(f).num_atoms) for f in df["formula"]]
        rows = sorted(range(n_all), key=lambda i: (sizes[i], str(df["material_id"][i])))[:n_test]
    else:
        rows = np.random.default_rng(seed).choice(n_all, size=n_test, replace=False).tolist()
    keep = set(rows)
    full = pd.read_csv(test_csv, skiprows=lambda i: i > 0 and (i - 1) not in keep)
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        full.to_csv(fh, index=False)
        tmp = fh.name
    try:
        return read_cdvae_csv(tmp)
    finally:
        os.unlink(tmp)


def cell_composition(entry) -> dict[str, int]:
    return {str(el): int(round(n)) for el, n in entry.structure.composition.items()}


# ---------------------------------------------------------------------------- training
def train_variant(variant: str, args, run_root: Path) -> tuple[Path, dict]:
    """Train the dataset's ``experiment=<dataset>_csp`` with one lattice-prior variant (resumes a finished/killed run)."""
    from gencrystal.config import compose
    from gencrystal.model.train import train

    out = run_root / f"train_{variant}"
    overrides = [
        f"experiment={DATASETS[args.dataset]['experiment']}", f"out={out}", f"trainer.max_epochs={args.epochs}", f"model={args.model}",
        f"model.lattice_prior.volume_model={variant}", "logger=csv", f"seed={args.seed}",
        f"resume={'true' if (out / 'checkpoints' / 'last.ckpt').is_file() else 'false'}",
        "trainer.enable_progress_bar=false",
    ]
    if args.device.startswith("cuda"):
        overrides.append("trainer=gpu")
    if args.split_scheme != "standard":
        overrides.append(f"data.split_scheme={args.split_scheme}")
    if args.train_batches:
        overrides.append(f"+trainer.limit_train_batches={args.train_batches}")
    if args.batch_size:
        overrides.append(f"batch_size={args.batch_size}")
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    overrides += args.train_override
    cfg = compose("train", overrides)
    record = out / "bench_train.json"
    resumed = (out / "checkpoints" / "last.ckpt").is_file()
    t0 = time.time()
    ckpt = train(cfg)
    wall = round(time.time() - t0, 1)
    info = {"variant": variant, "overrides": overrides, "ckpt": str(ckpt), "wall_s": wall, "resumed": resumed}
    if record.is_file():  # an earlier invocation trained it: report that run's training time
        info.update({k: v for k, v in json.loads(record.read_text()).items() if k in ("wall_s", "wall_s_source")})
        info["wall_s_this_invocation"] = wall
    elif resumed:  # trained by an invocation that predates the record: measure from file times
        start = (out / "config.yaml").stat().st_mtime
        best = Path(ckpt).stat().st_mtime
        info["wall_s"] = round(best - start, 1)
        info["wall_s_source"] = "file times: config.yaml (start) -> best checkpoint (a lower bound)"
        info["wall_s_this_invocation"] = wall
    else:
        from gencrystal.io import write_json

        write_json({"wall_s": wall, "wall_s_source": "measured around train()"}, record)
    info.update(checkpoint_facts(ckpt))
    return ckpt, info


def checkpoint_facts(ckpt: Path) -> dict:
    """Epochs/steps/model size/protocol recorded in a checkpoint."""
    import torch

    try:
        d = torch.load(str(ckpt), map_location="cpu", weights_only=False)
    except Exception as exc:  # pragma: no cover - reported, not fatal
        return {"ckpt_error": str(exc).splitlines()[0]}
    hp = d.get("hyper_parameters", {}) or {}
    facts: dict[str, Any] = {"epochs": d.get("epoch"), "global_step": d.get("global_step")}
    n_params = sum(v.numel() for k, v in d.get("state_dict", {}).items() if not k.startswith("ema"))
    facts["parameters"] = int(n_params)
    cfg = hp.get("cfg") or hp.get("config")
    try:
        from omegaconf import OmegaConf

        c = OmegaConf.create(cfg) if cfg is not None else None
        if c is not None:
            facts["data_protocol"] = str(OmegaConf.select(c, "data.protocol", default="?"))
            facts["lattice_prior"] = OmegaConf.to_container(OmegaConf.select(c, "model.lattice_prior", default={}) or {})
            facts["hidden_dim"] = OmegaConf.select(c, "model.denoiser.hidden_dim", default=None)
            facts["num_layers"] = OmegaConf.select(c, "model.denoiser.num_layers", default=None)
    except Exception:
        pass
    prior = hp.get("lattice_prior")
    if isinstance(prior, dict):
        facts["fitted_lattice_prior"] = {k: v for k, v in prior.items() if isinstance(v, (int, float, str))}
    return facts


# ---------------------------------------------------------------------------- sampling
def sampler_config(name: str, num_steps: int | None):
    """A sampler by name, or ``conf/sampler/<name>.yaml`` with ``num_steps`` changed."""
    if num_steps is None:
        return name
    from omegaconf import OmegaConf

    from gencrystal.config import conf_dir

    cfg = OmegaConf.load(conf_dir() / "sampler" / f"{name}.yaml")
    cfg.num_steps = int(num_steps)
    return cfg


def sample_references(ckpt: Path, refs, sampler, k: int, args, cache: Path | None = None) -> tuple[list, dict]:
    """``k`` samples per reference (its cell composition, 0 GPa); frames carry ``ref_id``.

    With ``cache`` (an extxyz path) the frames and their metadata (``<cache>.json``) are
    written, and re-used by a re-run of the same command (resumable benchmark)."""
    from gencrystal.io import write_extxyz, write_json
    from gencrystal.sampling import Generator, expand_request

    def read_back(path: Path) -> list:
        from ase.io import read

        frames = read(str(path), index=":")
        for a in frames:  # (extxyz reads a numeric id back as an int; the references' ids are strings)
            if "ref_id" in a.info:
                a.info["ref_id"] = str(a.info["ref_id"])
        return frames

    meta_path = cache.with_suffix(".json") if cache is not None else None
    if cache is not None and cache.is_file() and meta_path.is_file():
        frames = read_back(cache)
        meta = json.loads(meta_path.read_text())
        if len(frames) == len(refs) * k and [str(a.info.get("ref_id")) for a in frames[::k]] == [r.id for r in refs]:
            meta["reused"] = str(cache)
            return frames, meta
    gen = Generator(str(ckpt), device=args.device, sampler=sampler, batch_size=args.sample_batch, progress=True)
    requests = [r for ref in refs for r in expand_request(cell_composition(ref), 0.0, k)]
    run = gen.run(requests, seed=args.seed)
    frames = run.frames
    for i, a in enumerate(frames):
        a.info["ref_id"] = refs[i // k].id
    meta = {"sampler": gen.sampler_name if isinstance(sampler, str) else f"{sampler.get('_target_', '').split('.')[-1]}"
            f"[{sampler.get('num_steps')} steps]", "nfe": run.nfe_per_sample, "wall_s": round(run.wall_time_s, 1),
            "n_samples": len(frames), "flagged": len(run.flagged), "ckpt": str(ckpt), "seed": args.seed}
    if cache is not None:
        write_extxyz(frames, cache)
        write_json(meta, meta_path)
        # the frames as a re-run reads them: the stages' per-structure caches key on the positions (1e-6 Å), and
        # extxyz's text rounding moves some of them across that grid, so a resumed run would relax them again
        frames = read_back(cache)
    return frames, meta


def same_weights(a: Path, b: Path) -> bool:
    """True when two checkpoints hold bit-identical weights."""
    import torch

    sa = torch.load(str(a), map_location="cpu", weights_only=False)["state_dict"]
    sb = torch.load(str(b), map_location="cpu", weights_only=False)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- scoring
def score(refs, frames_or_entries, args, label: str) -> dict:
    """One table row (:func:`gencrystal.metrics.pipeline.score`): match rate/RMSE/cRMSE with and without
    the validity filter, METRe and its cRMSE."""
    from gencrystal.metrics.pipeline import score as score_row

    return score_row(refs, frames_or_entries, label, validity_mode=args.validity_mode, workers=args.workers,
                     timeout_s=args.timeout, metre=not args.no_metre)


# ---------------------------------------------------------------------------- stages
def stagewise(refs, frames, args, run_root: Path) -> dict:
    """Raw -> MLP pre-relaxed (N smallest refs) -> DFT-relaxed (M smallest): :func:`gencrystal.metrics.pipeline.run_stages`."""
    from gencrystal.config import compose
    from gencrystal.metrics.pipeline import StageSettings, run_stages

    settings = StageSettings(potential=args.potential, relax_steps=args.relax_steps, fmax=args.fmax,
                             max_neighbours=args.prerelax_max_neighbours, mlp_n=args.prerelax_n, dft_n=args.dft_n,
                             dft_budget_s=args.dft_budget_s, validity_mode=args.validity_mode, workers=args.workers,
                             timeout_s=args.timeout, metre=not args.no_metre, cutoff_check=args.cutoff_check)
    dft = compose("evaluate_pipeline", [f"dft={args.dft_config}"]).dft if args.dft_n > 0 else None
    return run_stages(refs, frames, run_root, settings, dft=dft)


# ---------------------------------------------------------------------------- leakage
def split_files(args, data_root: Path) -> tuple[Path, list[Path]]:
    """(test file, training files) of the run's split: the dataset folder (offline protocol: the model trains on
    val) or the ``--split-scheme`` folder written by ``gencrystal data split``."""
    from gencrystal.errors import GencrystalError

    ds = DATASETS[args.dataset]
    if args.split_scheme == "standard":
        folder = data_root / ds["folder"]
        train = [folder / "train.csv"] if (folder / "train.csv").is_file() else [folder / "val.csv"]
        return folder / "test.csv", train
    from gencrystal.data.splits import split_dir

    folder = split_dir({"folder": ds["folder"]}, data_root, args.split_scheme)
    if not (folder / "split.json").is_file():
        raise GencrystalError(f"no {args.split_scheme} split in {str(folder)!r}; run `gencrystal data split "
                              f"data={args.dataset} by=composition` first")
    return folder / "test.csv", [folder / "train.csv", folder / "val.csv"]


def leakage(refs, train_files: Sequence[Path]) -> dict:
    """Scored test crystals whose composition / structure also occurs in the training files."""
    from gencrystal.metrics.io import read_cdvae_csv
    from gencrystal.metrics.leakage import leakage_report

    pool = [e.structure for f in train_files for e in read_cdvae_csv(f)]
    rep = leakage_report([r.structure for r in refs], {"training": pool})
    rep["training_files"] = [f.name for f in train_files]
    return rep


# ---------------------------------------------------------------------------- report
def _pct(x):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _num(x, nd=4):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _rel(path) -> str:
    """A path without the machine's part (reports carry no machine paths): relative to the repository when
    inside it, ``data/...`` for the shared data root, from ``runs/``/``checkpoints/``/``reports/`` on for another
    checkout's outputs, else the file name."""
    p = str(path)
    if not os.path.isabs(p):
        return p
    path_ = Path(p)
    try:
        return str(path_.relative_to(REPO))
    except ValueError:
        pass
    parts = path_.parts
    if "shared" in parts and parts[parts.index("shared") + 1:][:1] == ("data",):  # the data root, as the docs name it
        return str(Path(*parts[parts.index("shared") + 1:]))
    for anchor in ("runs", "checkpoints", "reports"):
        if anchor in parts:
            return str(Path(*parts[parts.index(anchor):]))
    return path_.name


METRIC_HEAD = ("| match rate % | RMSE | cRMSE | match rate % (no filter) | RMSE (no filter) | cRMSE (no filter) | "
               "METRe % | METRe cRMSE |")
METRIC_SEP = "|---|---|---|---|---|---|---|---|"


def _crmse(r: dict, suffix: str = "") -> float | None:
    """The row's cRMSE; for rows scored before it was recorded, the same number from its definition:
    match rate x RMSE + (1 - match rate) x stol (stol = 0.5)."""
    if r.get(f"crmse{suffix}") is not None:
        return r[f"crmse{suffix}"]
    mr, rmse = r.get(f"match_rate{suffix}"), r.get(f"rmse{suffix}")
    if mr is None or (isinstance(mr, float) and math.isnan(mr)):
        return None
    return 0.5 if not mr or rmse is None else mr * rmse + (1 - mr) * 0.5


def _cells(r: dict) -> str:
    """The eight metric cells of a row (standard with/without filter, METRe)."""
    return (f"{_pct(r['match_rate'])} | {_num(r['rmse'])} | {_num(_crmse(r))} | {_pct(r['match_rate_unfiltered'])} | "
            f"{_num(r['rmse_unfiltered'])} | {_num(_crmse(r, '_unfiltered'))} | {_pct(r.get('metre'))} | "
            f"{_num(r.get('metre_crmse'))} |")


def counted(lines: Sequence[str]) -> str:
    """Distinct messages in first-seen order, each prefixed by its count when it repeats ("9 × not converged")."""
    from collections import Counter

    n = Counter(lines)
    return "; ".join(f"{n[m]} × {m}" if n[m] > 1 else m for m in dict.fromkeys(lines))


def _leakage_lines(lk: dict | None, split: str) -> list[str]:
    if not lk:
        return []
    c = lk["against"]["training"]
    scope = lk.get("scope", "scored")
    return [f"- leakage of the {split} split (`gencrystal data info ... leakage=`): {c['n_compositions_shared']:,} of "
            f"{lk['n_test_compositions']:,} {scope} test compositions ({_pct(c['fraction_test_compositions_shared'])} %) "
            f"also occur in the training files ({', '.join(lk['training_files'])}), carried by "
            f"{c['n_test_structures_with_shared_composition']:,} of {lk['n_test']:,} {scope} crystals; "
            f"{c.get('n_test_structures_duplicated', '–')} {scope} crystals are StructureMatcher duplicates of a training "
            f"structure ({lk['matcher']} matcher: ltol 0.2, stol 0.3, angle_tol 5)" + (f"; {lk['source']}" if lk.get("source") else "")]


def plot_nfe(rows: Sequence[dict], path: Path, dataset: str = "mp20") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    pts = sorted((r["nfe"], r["match_rate"], r["match_rate_unfiltered"], r["label"]) for r in rows)
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label="with validity filter")
    ax.plot([p[0] for p in pts], [100 * p[2] for p in pts], "s--", label="without validity filter")
    for name, mr, _, nfe in DATASETS[dataset]["published"]:
        ax.plot([nfe], [mr], "k^", ms=5)
        ax.annotate(name.replace(" (published)", ""), (nfe, mr), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample (NFE)")
    ax.set_ylabel("match rate (%)")
    ax.set_title(f"{DATASETS[dataset]['title']} CSP match rate vs NFE")
    ax.legend(fontsize=8)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def markdown(res: dict) -> str:
    a = res["settings"]
    ds = DATASETS[a.get("dataset", "mp20")]
    n_all = ds["n_test"]
    reduced = res["reduced"]
    L = [f"# {ds['title']} CSP benchmark" + (" — REDUCED RUN" if reduced else ""), ""]
    if reduced:
        L += [f"**This is a reduced run** ({'; '.join(res['reduced_because'])}). Its numbers show that the pipeline "
              "runs end to end and what each stage does; they are **not** comparable with the published rows, which "
              f"come from fully trained models on all {n_all:,} test crystals.", ""]
    L += ["## Protocol", "",
          f"- data: {res['protocol']}",
          f"- scored: {res['n_ref']} of {n_all:,} {ds['title']} test crystals (selection: `{a['subset']}`, seed {a['seed']}); "
          + (f"{a['k']} sample(s) per crystal at 0 GPa with the crystal's own cell composition" if not a.get("pred")
             else "samples paired to references by their ref_id/material_id/id"),
          "- matcher: pymatgen StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10); RMSE = get_rms_dist()[0] "
          "normalised by (V/N)^1/3, mean over matched crystals; match rate over all scored crystals",
          f"- validity filter: `{a['validity_mode']}` (DiffCSP/FlowMM rule: 1-sample needs prediction and reference "
          "valid; SMACT `smact14`, 0.5 Å, 0.1 Å³); numbers without the filter are given beside",
          f"- a perfect model scores {_pct(res.get('ceiling'))} % with the filter on this selection "
          "(SMACT-invalid references cannot match)",
          "- cRMSE: mean over all scored crystals of the RMSE, a miss counting as stol = 0.5; METRe: every sample "
          "compared with every scored crystal of its reduced composition, a crystal matched when any sample matches "
          "(no validity filter), its cRMSE likewise (docs/metrics.md)",
          *_leakage_lines(res.get("leakage"), a.get("split_scheme", "standard")), ""]
    if res.get("training"):
        L += ["## Training", "", f"`experiment={ds['experiment']} model={a['model']}`, {a['epochs']} epochs"
              + (f" of {a['train_batches']} batches" if a.get("train_batches") else "") + "; the checkpoint scored is the "
              "one with the lowest validation loss.", "",
              "| variant (lattice prior) | epochs run | checkpoint epoch (0-based) | optimiser steps | parameters | "
              "training wall time (s) | checkpoint |", "|---|---|---|---|---|---|---|"]
        for t in res["training"]:
            src = f" ({t['wall_s_source']})" if t.get("wall_s_source") and t["wall_s_source"] != "measured around train()" else ""
            L.append(f"| {t['variant']} | {a['epochs']} | {t.get('epochs')} | {t.get('global_step')} | {t.get('parameters')} | "
                     f"{t.get('wall_s')}{src} | `{_rel(t['ckpt'])}` |")
        L.append("")
    elif res.get("ckpt"):
        c = res["ckpt"]
        L += ["## Model", "", f"- checkpoint `{_rel(c.get('path'))}`: epochs {c.get('epochs')}, steps {c.get('global_step')}, "
              f"parameters {c.get('parameters')}" + (f"; {c['note']}" if c.get("note") else ""), ""]
    L += ["## Match rate and RMSE", "",
          "| model / sampler | NFE | n " + METRIC_HEAD + " sampling wall (s) |", "|---|---|---" + METRIC_SEP + "---|"]
    for name, mr, rmse, nfe in ds["published"]:
        L.append(f"| {name} | {nfe} | {n_all} | {mr:.2f} | {rmse:.4f} | – | – | – | – | – | – | – |")
    for r in res["main"]:
        L.append(f"| {r['label']} | {r.get('nfe', '–')} | {r['n_ref']} | {_cells(r)} {r.get('wall_s', '–')} |")
    L += ["", "The published rows are the papers' standard match rate and RMSE on the standard random test split "
          "(ANCHORS.md §2.5); none reports cRMSE or METRe.", ""]
    if res["main"] and not any("metre" in r for r in res["main"]):
        L += ["**This run predates METRe** (docs/metrics.md): its samples were not kept, so the METRe columns are "
              "empty (–); re-running the command under Provenance fills them. Its cRMSE follows from its match rate "
              "and RMSE (match rate × RMSE + (1 − match rate) × 0.5)"
              + ("" if res.get("leakage") else ", and the leakage of its split was not measured") + ".", ""]
    if ds.get("note"):
        L += [f"Split: {ds['note']}", ""]
    cmp_ = res.get("comparison")
    if cmp_:
        L += [f"## The same protocol on the {cmp_['split_scheme']} split", "",
              f"`{cmp_['command']}` — the {cmp_['split_scheme']} split from `gencrystal data split` (every composition "
              "whole in one split), same model size, training budget and sampler:", "",
              *_leakage_lines(cmp_.get("leakage"), cmp_["split_scheme"]), "",
              "| split | model / sampler | n " + METRIC_HEAD, "|---|---|---" + METRIC_SEP]
        for r in res["main"]:
            L.append(f"| {a.get('split_scheme', 'standard')} (random) | {r['label']} | {r['n_ref']} | {_cells(r)}")
        for r in cmp_["main"]:
            L.append(f"| {cmp_['split_scheme']} | {r['label']} | {r['n_ref']} | {_cells(r)}")
        r0 = (res["main"] or [{}])[0]
        if r0.get("match_rate_unfiltered") is not None and r0.get("n_ref"):
            p_, n_ = r0["match_rate_unfiltered"], r0["n_ref"]
            L += ["", f"Sampling noise: the binomial standard error of a match rate near {100 * p_:.1f} % on {n_:,} "
                  f"crystals is ±{100 * math.sqrt(p_ * (1 - p_) / n_):.1f} percentage points; the two models are "
                  "independent trainings, so differences of that size are not evidence either way."]
        if cmp_.get("training"):
            t = cmp_["training"]
            L += ["", f"Its model: {t.get('epochs')} epochs (checkpoint epoch), {t.get('global_step')} steps, "
                  f"{t.get('parameters')} parameters" + (f"; {t['note']}" if t.get("note") else "") + "."]
        L.append("")
    for r in res["main"]:
        if r.get("n_pred_valid") is not None:
            L.append(f"- {r['label']}: {r['n_pred_valid']} of {r['n_pred']} samples valid (SMACT, atoms ≥ 0.5 Å apart, "
                     f"volume ≥ 0.1 Å³)" + (f"; {r['flagged']} flagged by the sampler's checks" if r.get("flagged") is not None
                                            else "") + f"; {r.get('n_timeouts', 0)} matcher time-outs")
    L.append("")
    if res.get("nfe_sweep"):
        L += ["## Match rate vs NFE", "", f"![match rate vs NFE]({a.get('name', 'mp20_csp')}_nfe.png)", "",
              "| sampler | NFE | match rate % | RMSE | match rate % (no filter) | sampling wall (s) |", "|---|---|---|---|---|---|"]
        for r in sorted(res["nfe_sweep"], key=lambda r: r["nfe"]):
            L.append(f"| {r['label']} | {r['nfe']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                     f"{_pct(r['match_rate_unfiltered'])} | {r.get('wall_s', '–')} |")
        L.append("")
    if res.get("variants"):
        L += ["## Lattice-prior variants", "",
              f"{ds['title']} is all at 0 GPa in its data files, so the pressure-aware c(P) fit has a single pressure "
              "and falls back to a "
              "constant c: the two variants can differ only by training noise here. The comparison matters on "
              "pressure-labelled data.", "",
              "| lattice prior | fitted prior | match rate % | RMSE | match rate % (no filter) |", "|---|---|---|---|---|"]
        for v in res["variants"]:
            L.append(f"| {v['variant']} | `{json.dumps(v.get('prior', {}))[:120]}` | {_pct(v['match_rate'])} | "
                     f"{_num(v['rmse'])} | {_pct(v['match_rate_unfiltered'])} |")
        if any(v.get("weights_identical_to_main") for v in res["variants"]):
            L += ["", "The constant-c run produced **bit-identical weights** to the c(P) run (same seed, same fitted "
                  "prior), so its samples are the same and were not drawn twice."]
        L.append("")
    mk = res.get("multi_k")
    if mk:
        L += [f"## {mk['k']}-sample protocol", "",
              f"{mk['k']} samples per crystal ({mk['sampler']} sampler, NFE {mk['nfe']}) for the first {mk['n_ref']} scored "
              "test crystals; a crystal counts as matched when any of its samples matches (validity filter: prediction "
              f"valid), RMSE = the smallest among its matches; sampling took {mk['wall_s']} s. The 1-sample row scores "
              "the main run's samples of the same crystals.", "",
              "| model / protocol | n " + METRIC_HEAD, "|---|---" + METRIC_SEP]
        for name, mr, rmse, _ in ds.get("published_k20", []) if mk["k"] == 20 else []:
            L.append(f"| {name}, 20 samples | {n_all} | {mr:.2f} | {rmse:.4f} | – | – | – | – | – | – |")
        for r in mk["rows"]:
            L.append(f"| {r['label']} | {r['n_ref']} | {_cells(r)}")
        if not ds.get("published_k20"):
            L.append("")
            L.append(f"ANCHORS.md §2.5 lists only 1-sample numbers for {ds['title']}; no published 20-sample row is "
                     "shown here.")
        L.append("")
    st = res.get("stages") or {}
    if "mlp" in st or "dft" in st:
        L += ["## What each stage buys", ""]
        if res.get("stages_command"):
            L += [f"Stage table from `{res['stages_command']}` on this run's samples and scored crystals.", ""]
        if "mlp" in st:
            m = st["mlp"]
            L += [f"MLP pre-relaxation with {m['potential']} at 0 GPa (FIRE, FrechetCellFilter, fmax {m['fmax_eV_per_A']} eV/Å, "
                  f"≤ {m['steps']} steps) of the samples of the {m['n_ref']} smallest scored test crystals: "
                  f"{m.get('n_relaxed')} relaxed ({m['converged']} converged), {m.get('n_flagged_not_relaxed', 0)} flagged by "
                  f"the sampler's checks (distance < 0.5 Å or volume/atom outside 1–200 Å³)"
                  + (f" and {m['n_too_dense_not_relaxed']} with more than {m['max_neighbours_3A']} atoms within 3 Å of one "
                     "atom (far denser than any real crystal; CHGNet's cost grows with the square of that count)"
                     if m.get("n_too_dense_not_relaxed") else "")
                  + f" kept as sampled; {m['wall_s']} s of relaxation (sum over structures"
                  + (f", {m['n_cached']} from the per-structure cache" if m.get("n_cached") else "") + "):", "",
                  "| stage | n " + METRIC_HEAD + " stage wall (s) |", "|---|---" + METRIC_SEP + "---|"]
            walls = [res.get("main_sampling_wall_s", "–"), m["wall_s"]]
            for r, w in zip(m["rows"], walls):
                L.append(f"| {r['label']} | {r['n_ref']} | {_cells(r)} {w} |")
            L.append("")
        if "dft" in st:
            d = st["dft"]
            s = d["settings"]
            L += [f"DFT ({d['level_of_theory']}: GPAW PW {s.get('ecut')} eV, {s.get('xc')}, k-point density "
                  f"{s.get('kpt_density')} Å⁻¹, smearing {s.get('smearing')} eV, {s.get('optimizer')} fmax {s.get('fmax')} eV/Å, "
                  f"≤ {s.get('steps')} steps, symmetry {s.get('symmetry')}) on the MLP-relaxed samples of the N = "
                  f"{d['n_ref']} {'smallest ' if not d.get('left_out_by_budget') else ''}scored test crystals ({', '.join(d['ref_ids'])}); {d['converged']} of "
                  f"{d.get('n_computed', d['n_ref'])} converged, {d['wall_s']} s of DFT"
                  + (f" (the {d['n_requested']} smallest were asked for; the {d['budget_s']:g} s DFT budget ran out "
                     f"before {', '.join(d.get('left_out_by_budget') or [d['stopped_by_budget_before']])}, left out; "
                     "a re-run with a larger budget continues from the cache)" if d.get("stopped_by_budget_before") else "")
                  + (f"; errors: {counted(d['errors'])}" if d.get("errors") else "") + ":", "",
                  *([f"Cutoff check on {c['formula']} ({c['ref_id']}, DFT-relaxed): stress pressure "
                     f"{c['pressure_low_gpa']:+.2f} GPa at {c['ecut_low_ev']:g} eV vs {c['pressure_high_gpa']:+.2f} GPa at "
                     f"{c['ecut_high_ev']:g} eV (ΔP = {c['delta_gpa']:+.2f} GPa; energy {c['energy_low_ev_per_atom']:.4f} vs "
                     f"{c['energy_high_ev_per_atom']:.4f} eV/atom).", ""]
                    if (c := d.get("cutoff_check")) and "delta_gpa" in c else
                    ([f"Cutoff check failed: {c['error']}", ""] if c else [])),
                  "| stage | n " + METRIC_HEAD, "|---|---" + METRIC_SEP]
            for r in d["rows"]:
                L.append(f"| {r['label']} | {r['n_ref']} | {_cells(r)}")
            L.append("")
        if "mlp" in st and "dft" not in st:
            L += ["No DFT stage in this run: on the shared 2-core machine the MLP stage alone took "
                  f"{st['mlp']['wall_s']} s, and no DFT budget was left (`gencrystal evaluate pipeline ... dft_n=20 "
                  "dft=gpaw dft_budget_s=...` adds it, resuming from the cached MLP relaxations).", ""]
    reused = [Path(m["reused"]).name for m in res.get("sample_meta", []) if m.get("reused")]
    L += ["## Timing", "", f"- wall time of this invocation: {res['wall_s']} s"
          + (f" (it re-used cached samples of an earlier invocation of the same command: {', '.join(reused)}; "
             "their sampling wall times are the ones measured when they were drawn)" if reused else ""), "",
          "Reproduce: the command under Provenance; samples and relaxed structures are in "
          f"`{_rel(res['run_dir'])}` and can be re-scored with `gencrystal evaluate csp pred=... "
          f"ref=data/{ds['folder']}/test.csv protocol=metre`; the stage table alone with "
          "`gencrystal evaluate pipeline pred=... ref=...`."]
    return "\n".join(L)


def comparison(path: str) -> dict:
    """The rows, leakage and model of another run's report JSON (the same protocol on another split)."""
    other = json.loads(Path(path).read_text())
    ck = other.get("ckpt") or {}
    return {"split_scheme": other["settings"].get("split_scheme", "standard"),
            "command": other.get("metadata", {}).get("command", ""), "main": other["main"],
            "leakage": other.get("leakage"), "protocol": other.get("protocol"),
            "training": {k: ck.get(k) for k in ("epochs", "global_step", "parameters", "note")}}


def relative_paths(obj):
    """``obj`` with every absolute path string made relative to the repository (reports carry no machine paths)."""
    if isinstance(obj, dict):
        return {k: relative_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [relative_paths(v) for v in obj]
    if isinstance(obj, str) and "../shared/data/" in obj:  # (text of runs before the reports named the data root data/)
        obj = obj.replace("../shared/data/", "data/")
    if isinstance(obj, str) and " " not in obj and "\n" not in obj:
        key, eq, value = obj.rpartition("=")
        if os.path.isabs(value):  # a path, or a key=path override
            return f"{key}{eq}{_rel(value)}"
    return obj


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--ckpt", help="trained checkpoint (skips training)")
    g.add_argument("--ckpt-note", default="", help="how the --ckpt model was trained (shown in the report)")
    g.add_argument("--pred", nargs="+", help="score existing samples only (no model): extxyz/CIF folder/ASE db")
    g.add_argument("--pred-label", nargs="+", help="labels for --pred (default: file names)")
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--model", default="tiny", help="conf/model/<name>.yaml (tiny for CPU, cspnet for the real run)")
    g.add_argument("--train-batches", type=int, default=0, help="trainer.limit_train_batches (0 = all)")
    g.add_argument("--batch-size", type=int, default=0, help="global training batch (0 = experiment's 256)")
    g.add_argument("--train-override", nargs="*", default=[], help="extra Hydra overrides for training")
    g.add_argument("--lattice-variants", action="store_true", help="also train the constant-c lattice prior")
    g.add_argument("--data-root", default=None)
    g.add_argument("--split-scheme", choices=["standard", "polymorph", "unique"], default="standard",
                   help="standard: the dataset's own files; polymorph/unique: the re-split of `gencrystal data split` "
                        "(trains with data.split_scheme=..., scores its test file)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--dataset", choices=sorted(DATASETS), default="mp20",
                   help="mp20 | perov5 | carbon24 (data folder, experiment and published anchors)")
    g.add_argument("--n-test", type=int, default=100, help="test crystals scored (0 = all)")
    g.add_argument("--subset", choices=["random", "first", "smallest"], default="random")
    g.add_argument("--k", type=int, default=1, help="samples per test crystal")
    g.add_argument("--samplers", nargs="+", default=["pc", "fast"])
    g.add_argument("--multi-k", type=int, default=0, help="k of the k-sample protocol (0 = skip), first sampler")
    g.add_argument("--multi-n", type=int, default=100, help="scored crystals that get --multi-k samples")
    g.add_argument("--nfe-sweep", nargs="*", type=int, default=[10, 25, 50],
                   help="fast-sampler step counts for match rate vs NFE (NFE = 2 x steps with one corrector step)")
    g.add_argument("--validity-mode", default="paper", choices=["paper", "pred", "both"])
    g.add_argument("--workers", type=int, default=2)
    g.add_argument("--timeout", type=float, default=30.0)
    g.add_argument("--no-metre", action="store_true", help="skip METRe (one matcher call per same-composition pair)")
    g.add_argument("--no-leakage", action="store_true", help="skip the leakage count of the scored crystals")
    g.add_argument("--compare-with", default=None, metavar="JSON",
                   help="a report JSON of the same protocol on another split (e.g. reports/perov5_polymorph_csp.json): "
                        "its rows and leakage are shown beside this run's")
    g.add_argument("--device", default="auto")
    g.add_argument("--sample-batch", type=int, default=128)
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("pipeline stages")
    g.add_argument("--prerelax-n", type=int, default=20, help="MLP pre-relax samples of the N smallest scored crystals")
    g.add_argument("--potential", default="chgnet")
    g.add_argument("--relax-steps", type=int, default=300)
    g.add_argument("--prerelax-max-neighbours", type=int, default=60,
                   help="skip MLP relaxation of samples with more atoms than this within 3 Å of one atom (0 = never)")
    g.add_argument("--fmax", type=float, default=0.05)
    g.add_argument("--dft-n", type=int, default=2, help="DFT-relax samples of the N smallest scored crystals (0 = skip)")
    g.add_argument("--dft-config", default="gpaw_test", help="conf/dft/<name>.yaml")
    g.add_argument("--cutoff-check", type=float, default=2.0,
                   help="stress of the first DFT-relaxed structure at this multiple of the DFT cutoff too (0 = skip)")
    g.add_argument("--dft-budget-s", type=float, default=0.0,
                   help="bound the DFT stage to this many seconds, a running relaxation included (0 = no limit); N shrinks to the "
                        "crystals done, and the report says so")
    g = p.add_argument_group("output")
    g.add_argument("--full", action="store_true",
                   help="the real benchmark: all test crystals, cspnet model, the experiment's epochs, DFT on 10")
    g.add_argument("--name", default=None, help="report name (default <dataset>_csp)")
    g.add_argument("--run-dir", default=None, help="default runs/bench_<dataset>")
    g.add_argument("--reports-dir", default=None)
    g.add_argument("--render-only", default=None, metavar="JSON",
                   help="re-write the markdown of an earlier run from its reports/<name>.json (nothing is recomputed)")
    g.add_argument("--stages-json", default=None, metavar="JSON",
                   help="with --render-only: take the stage table from this `gencrystal evaluate pipeline` stages.json "
                        "(run on this report's samples and scored crystals)")
    g.add_argument("--stages-command", default="", help="the `gencrystal evaluate pipeline` command that wrote --stages-json")
    a = p.parse_args(argv)
    a.name = a.name or f"{a.dataset}_csp"
    a.run_dir = a.run_dir or str(REPO / "runs" / f"bench_{a.dataset}")
    if a.full:
        a.n_test, a.model, a.epochs, a.subset = 0, "cspnet", DATASETS[a.dataset]["full_epochs"], "first"
        a.dft_n = max(a.dft_n, 10)
        a.prerelax_n = max(a.prerelax_n, 200)
        a.nfe_sweep = a.nfe_sweep or [10, 25, 50, 100, 250]
    return a


def main(argv=None) -> int:
    from gencrystal.errors import GencrystalError
    from gencrystal.reporting import REPORTS_DIR, write_report

    args = parse_args(argv)
    if args.render_only:  # re-write the markdown from a saved JSON (its provenance is kept as it was)
        res = json.loads(Path(args.render_only).read_text())
        if args.compare_with:  # add (or refresh) the other split's rows; the run's own numbers are untouched
            res["comparison"] = comparison(args.compare_with)
        if args.stages_json:  # the stage table of `gencrystal evaluate pipeline` on this run's samples and references
            res["stages"] = {k: v for k, v in json.loads(Path(args.stages_json).read_text()).items() if k in ("mlp", "dft")}
            res["stages_command"] = args.stages_command
        res = {**relative_paths({k: v for k, v in res.items() if k != "metadata"}), "metadata": res.get("metadata")}
        reports = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
        jp, mp = write_report(res["settings"]["name"], res, markdown(res), reports_dir=reports)
        print(f"re-rendered {mp} from {args.render_only}")
        return 0
    t_start = time.time()
    data_root = Path(args.data_root) if args.data_root else data_root_default()
    args.data_root = str(data_root)
    ds = DATASETS[args.dataset]
    test_csv, train_files = split_files(args, data_root)
    if not test_csv.is_file():
        raise GencrystalError(f"{ds['title']} test split not found at {str(test_csv)!r} (set --data-root or GENCRYSTAL_DATA)")
    run_root = Path(args.run_dir)
    run_root.mkdir(parents=True, exist_ok=True)
    refs = select_references(test_csv, args.n_test, args.subset, args.seed)
    from gencrystal.metrics.validity import crystal_validity

    ceiling = sum(crystal_validity(r.structure).valid for r in refs) / len(refs)
    res: dict[str, Any] = {"settings": vars(args), "n_ref": len(refs), "ceiling": ceiling, "run_dir": str(run_root),
                           "main": [], "nfe_sweep": [], "variants": [], "training": []}
    has_train = (data_root / ds["folder"] / "train.csv").is_file() or (data_root / ds["folder"] / "train.feather").is_file()
    t = ds["title"]
    res["protocol"] = (f"standard: trained on {t} train, validated on val, scored on test" if has_train else
                       f"offline: {t} train is not on this machine -> trained on {t} val minus a seeded 10 % "
                       f"hold-out (validation), scored on {t} test (see data/README.md)")
    if args.split_scheme != "standard":
        man = json.loads((test_csv.parent / "split.json").read_text())
        pooled = " + ".join(f"{k} ({v['rows']:,})" for k, v in man["pooled"].items())
        res["protocol"] = (f"{args.split_scheme} split (`gencrystal data split data={args.dataset} by={man['by']} "
                           f"seed={man['seed']}`): {t} {pooled} pooled and re-split with every "
                           + ("composition" if man["by"] == "composition" else "group of duplicates")
                           + f" in one split -> train {man['sizes']['train']:,} / val {man['sizes']['val']:,} / test "
                           f"{man['sizes']['test']:,}; trained on its train, validated on its val, scored on its test")
        res["split_manifest"] = {k: man[k] for k in ("by", "seed", "sizes", "target_sizes", "pooled", "dedupe")}
    if not args.no_leakage:
        res["leakage"] = leakage(refs, train_files)
    reasons = []
    if len(refs) < ds["n_test"]:
        reasons.append(f"{len(refs)} of {ds['n_test']:,} test crystals")
    if args.pred:
        labels = args.pred_label or [Path(p).name for p in args.pred]
        from gencrystal.metrics.io import read_entries

        for path, label in zip(args.pred, labels):
            r = score(refs, read_entries(path), args, label)
            res["main"].append(r)
        res["protocol"] = f"existing samples scored ({', '.join(args.pred)}); training protocol of the model not known here"
    else:
        if args.ckpt:
            ckpts = {"given": Path(args.ckpt)}
            res["ckpt"] = {"path": args.ckpt, **checkpoint_facts(Path(args.ckpt))}
            if args.ckpt_note:
                res["ckpt"]["note"] = args.ckpt_note
            if args.model != "cspnet" and (res["ckpt"].get("parameters") or 0) < 5e6:
                reasons.append(f"a small model ({res['ckpt'].get('parameters'):,} parameters; DiffCSP's cspnet is larger)")
            if (res["ckpt"].get("epochs") or 0) + 1 < ds["full_epochs"]:
                reasons.append(f"{(res['ckpt'].get('epochs') or 0) + 1} training epochs (checkpoint) instead of "
                               f"{ds['full_epochs']}")
        else:
            ckpts = {}
            for variant in (["murnaghan", "constant"] if args.lattice_variants else ["murnaghan"]):
                ck, info = train_variant(variant, args, run_root)
                ckpts[variant] = ck
                res["training"].append(info)
            if args.epochs < ds["full_epochs"]:
                reasons.append(f"{args.epochs} training epochs instead of {ds['full_epochs']}")
            if args.model != "cspnet":
                reasons.append(f"model `{args.model}` instead of the DiffCSP-size cspnet")
            if args.train_batches:
                reasons.append(f"{args.train_batches} training batches per epoch")
        main_variant = next(iter(ckpts))
        main_ckpt = ckpts[main_variant]
        main_frames = None
        for s in args.samplers:
            frames, info = sample_references(main_ckpt, refs, s, args.k, args, cache=run_root / f"samples_{s}.extxyz")
            res.setdefault("sample_meta", []).append(info)
            r = score(refs, frames, args, f"gencrystal ({s} sampler)")
            r.update(nfe=info["nfe"], wall_s=info["wall_s"], flagged=info["flagged"])
            res["main"].append(r)
            res["nfe_sweep"].append(dict(r))
            if main_frames is None:
                main_frames = frames
        for steps in args.nfe_sweep:
            frames, info = sample_references(main_ckpt, refs, sampler_config("fast", steps), args.k, args,
                                             cache=run_root / f"samples_fast_{steps}steps.extxyz")
            res.setdefault("sample_meta", []).append(info)
            r = score(refs, frames, args, f"fast, {steps} steps")
            r.update(nfe=info["nfe"], wall_s=info["wall_s"])
            res["nfe_sweep"].append(r)
        if len(ckpts) > 1 or args.lattice_variants:
            for variant, ck in ckpts.items():
                identical = variant != main_variant and same_weights(ck, main_ckpt)
                if variant == main_variant or identical:
                    r = dict(res["main"][0])  # same weights -> same samples -> same scores
                    r["label"] = variant
                else:
                    frames, _ = sample_references(ck, refs, args.samplers[0], args.k, args,
                                                  cache=run_root / f"samples_{args.samplers[0]}_{variant}.extxyz")
                    r = score(refs, frames, args, variant)
                r["weights_identical_to_main"] = bool(identical)
                facts = next((t for t in res["training"] if t["variant"] == variant), {})
                r.update(variant=variant, prior=facts.get("fitted_lattice_prior", {}))
                res["variants"].append(r)
        if args.multi_k > 1 and args.multi_n > 0:
            sub = refs[: args.multi_n]
            s = args.samplers[0]
            frames, info = sample_references(main_ckpt, sub, s, args.multi_k, args,
                                             cache=run_root / f"samples_{s}_k{args.multi_k}_n{len(sub)}.extxyz")
            res.setdefault("sample_meta", []).append(info)
            ids = {r.id for r in sub}
            one = [a for a in (main_frames or []) if a.info.get("ref_id") in ids]
            rows = [score(sub, one, args, f"gencrystal ({s} sampler), 1 sample")] if one else []
            rows.append(score(sub, frames, args, f"gencrystal ({s} sampler), {args.multi_k} samples"))
            res["multi_k"] = {"k": args.multi_k, "n_ref": len(sub), "sampler": s, "nfe": info["nfe"],
                              "wall_s": info["wall_s"], "rows": rows}
        if main_frames is not None:
            res["stages"] = stagewise(refs, main_frames, args, run_root)
            m = res["stages"].get("mlp")
            if m and res.get("sample_meta"):  # the raw stage's wall time: sampling, prorated to the stage's samples
                first = res["sample_meta"][0]
                res["main_sampling_wall_s"] = (f"≈{first['wall_s'] * m['n_samples'] / max(1, first['n_samples']):.1f} "
                                               "(sampling, prorated)")
    if args.compare_with:
        res["comparison"] = comparison(args.compare_with)
    res["reduced"] = bool(reasons)
    res["reduced_because"] = reasons
    res["wall_s"] = round(time.time() - t_start, 1)
    reports = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
    if res["nfe_sweep"]:
        reports.mkdir(parents=True, exist_ok=True)
        plot_nfe(res["nfe_sweep"], reports / f"{args.name}_nfe.png", args.dataset)
    res = relative_paths(res)
    jp, mp = write_report(args.name, res, markdown(res), reports_dir=reports)
    print(f"wrote {mp} and {jp}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from gencrystal.errors import run_script

    run_script(main)
