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
PUBLISHED = [  # MP-20 test, one sample per crystal, DiffCSP validity filter (ANCHORS.md §2.5)
    ("CDVAE (published)", 33.90, 0.1045, 5000),
    ("DiffCSP (published)", 51.49, 0.0631, 2000),
    ("FlowMM (published)", 61.39, 0.0566, 1000),
]
# One entry per dataset: data folder, experiment, test-set size, published anchors
# (ANCHORS.md §2.5: (label, match rate %, RMSE, NFE of the model's sampler)).
DATASETS: dict[str, dict[str, Any]] = {
    "mp20": {"title": "MP-20", "folder": "mp_20", "experiment": "mp20_csp", "n_test": 9046, "full_epochs": 1000,
             "published": PUBLISHED,
             "published_k20": [("CDVAE (published)", 66.95, 0.1026, 5000), ("DiffCSP (published)", 77.93, 0.0492, 2000)]},
    "perov5": {"title": "Perov-5", "folder": "perov_5", "experiment": "perov5_csp", "n_test": 3785, "full_epochs": 3000,
               "published": [("CDVAE (published)", 45.31, 0.1138, 5000), ("DiffCSP (published)", 52.02, 0.0760, 2000),
                             ("FlowMM (published)", 53.15, 0.0992, 1000)],
               "published_k20": []},
    "carbon24": {"title": "Carbon-24", "folder": "carbon_24", "experiment": "carbon24_csp", "n_test": 2030,
                 "full_epochs": 4000,
                 "published": [("CDVAE (published)", 17.09, 0.2969, 5000), ("DiffCSP (published)", 17.54, 0.2759, 2000),
                               ("FlowMM (published)", 23.47, 0.4122, 1000)],
                 "published_k20": []},
}


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

    meta_path = cache.with_suffix(".json") if cache is not None else None
    if cache is not None and cache.is_file() and meta_path.is_file():
        from ase.io import read

        frames = read(str(cache), index=":")
        meta = json.loads(meta_path.read_text())
        if len(frames) == len(refs) * k and [a.info.get("ref_id") for a in frames[::k]] == [r.id for r in refs]:
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
    return frames, meta


def same_weights(a: Path, b: Path) -> bool:
    """True when two checkpoints hold bit-identical weights."""
    import torch

    sa = torch.load(str(a), map_location="cpu", weights_only=False)["state_dict"]
    sb = torch.load(str(b), map_location="cpu", weights_only=False)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- scoring
def score(refs, frames_or_entries, args, label: str) -> dict:
    """CSP metrics of samples paired to ``refs`` by ``ref_id``/``material_id``/``id``."""
    from gencrystal.metrics.csp import csp_metrics
    from gencrystal.metrics.io import Entry, pair_predictions
    from gencrystal.structures import to_structure

    preds = []
    for j, x in enumerate(frames_or_entries):
        if isinstance(x, Entry):
            preds.append(x)
            continue
        try:
            s = to_structure(x)
        except Exception:
            s = None
        preds.append(Entry(str(x.info.get("ref_id", j)), s, dict(x.info)))
    cands, unpaired = pair_predictions(refs, preds, mode="id")
    m, _ = csp_metrics(refs, preds, cands, validity_mode=args.validity_mode, workers=args.workers,
                       timeout_s=args.timeout, progress=False)
    w, wo = m["with_validity_filter"], m["without_validity_filter"]
    return {"label": label, "n_ref": m["n_ref"], "n_pred": m["n_pred"], "k": m["protocol"]["k"],
            "match_rate": w["match_rate"], "rmse": w["rmse"], "match_rate_unfiltered": wo["match_rate"],
            "rmse_unfiltered": wo["rmse"], "n_pred_valid": m["n_pred_valid"], "n_ref_valid": m["n_ref_valid"],
            "n_timeouts": m["n_timeouts"], "n_unpaired": len(unpaired)}


# ---------------------------------------------------------------------------- stages
def stagewise(refs, frames, args, run_root: Path) -> dict:
    """Raw -> MLP pre-relaxed (N smallest refs) -> DFT-relaxed (M smallest), same refs per table."""
    from gencrystal.io import write_extxyz

    by_ref: dict[str, list] = {}
    for a in frames:
        by_ref.setdefault(a.info["ref_id"], []).append(a)
    order = sorted(refs, key=lambda e: (e.n_atoms, e.id))
    out: dict[str, Any] = {}
    if args.prerelax_n <= 0:
        return out
    from gencrystal.relax import RelaxGuard, relax_structures

    mlp_refs = order[: args.prerelax_n]
    raw = [a for r in mlp_refs for a in by_ref.get(r.id, [])]
    # samples the Generator flagged (atoms < 0.5 Å apart, volume/atom outside 1-200 Å^3) are not
    # relaxed: degenerate cells can make a potential's neighbour list explode (one such sample
    # held 4.5 GB for 5+ minutes); they stay as sampled and count as they score
    todo = [i for i, a in enumerate(raw) if not a.info.get("flagged")]
    # samples far denser than any 0 GPa crystal (more than --prerelax-max-neighbours atoms within 3 Å, CHGNet's
    # bond-graph cutoff; real crystals have <= ~20) made one CHGNet relaxation take > 15 min and 4 GB (its angle
    # graph grows with the square of that count): the relaxation's input guard rejects them before CHGNet runs;
    # they are kept as sampled, like the flagged ones, and counted
    guard = RelaxGuard(max_neighbors=args.prerelax_max_neighbours or None, neighbor_cutoff=3.0)
    t0 = time.time()
    res = relax_structures([raw[i].copy() for i in todo], 0.0, args.potential, steps=args.relax_steps, fmax=args.fmax,
                           guard=guard, workers=1, progress=True, ids=[f"{raw[i].info['ref_id']}#{i}" for i in todo])
    too_dense = [i for i, r in zip(todo, res) if r.error and "neighbours within" in r.error]
    relaxed = {i: r for i, r in zip(todo, res) if i not in too_dense}
    todo = [i for i in todo if i not in too_dense]
    res = [relaxed[i] for i in todo]
    mlp = []
    for i, a in enumerate(raw):
        b = relaxed[i].atoms.copy() if i in relaxed else a.copy()
        b.info = {"ref_id": a.info["ref_id"], "flagged": bool(a.info.get("flagged"))}
        mlp.append(b)
    write_extxyz(mlp, run_root / "samples_mlp_relaxed.extxyz")
    level = res[0].level_of_theory if res else args.potential
    out["mlp"] = {
        "potential": level, "n_ref": len(mlp_refs), "steps": args.relax_steps, "fmax_eV_per_A": args.fmax,
        "n_relaxed": len(todo), "n_flagged_not_relaxed": len(raw) - len(todo) - len(too_dense),
        "n_too_dense_not_relaxed": len(too_dense), "max_neighbours_3A": args.prerelax_max_neighbours,
        "converged": sum(bool(r.converged) for r in res), "failed": sum(bool(r.error) and not r.converged for r in res),
        "wall_s": round(time.time() - t0, 1),
        "rows": [score(mlp_refs, raw, args, "raw samples"), score(mlp_refs, mlp, args, f"after MLP pre-relax ({level})")],
    }
    if args.dft_n > 0:
        from gencrystal.config import compose  # noqa: F401  (config group resolution below)
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from gencrystal.config import conf_dir

        dft_cfg = OmegaConf.load(conf_dir() / "dft" / f"{args.dft_config}.yaml")
        if "defaults" in dft_cfg:  # resolve a one-level defaults list (e.g. gpaw_test -> gpaw)
            base = OmegaConf.create()
            for d in dft_cfg.defaults:
                if d != "_self_":
                    base = OmegaConf.merge(base, OmegaConf.load(conf_dir() / "dft" / f"{d}.yaml"))
            body = OmegaConf.masked_copy(dft_cfg, [k for k in dft_cfg if k != "defaults"])
            dft_cfg = OmegaConf.merge(base, body)
        backend = instantiate(dft_cfg)
        settings = OmegaConf.to_container(dft_cfg)
        requested = order[: args.dft_n]
        t0 = time.time()
        done: dict[str, list] = {}  # ref id -> [(relaxed Atoms, converged, error, wall_s, cached)]
        stopped_at = None
        for ref in requested:  # smallest first; each result is cached, so a killed run resumes
            todo = [a for a in mlp if a.info["ref_id"] == ref.id and not a.info.get("flagged")]
            rows = []
            for a in todo:
                hit = _dft_cached(run_root, a, settings)
                if hit is None:
                    if args.dft_budget_s and time.time() - t0 > args.dft_budget_s:
                        stopped_at = ref.id
                        break
                    r = backend.relax(niggli_copy(a), 0.0, sid=a.info["ref_id"])
                    hit = _dft_store(run_root, a, settings, r)
                rows.append(hit)
            if stopped_at is not None:
                break
            done[ref.id] = rows
        dft_refs = [r for r in requested if r.id in done]
        ids = {r.id for r in dft_refs}
        raw_d = [a for a in raw if a.info["ref_id"] in ids]
        mlp_d = [a for a in mlp if a.info["ref_id"] in ids and not a.info.get("flagged")]
        flagged_d = [a for a in mlp if a.info["ref_id"] in ids and a.info.get("flagged")]
        dres = [h for r in dft_refs for h in done[r.id]]
        dft = []
        for h in dres:
            b = h["atoms"].copy()
            b.info = {"ref_id": h["ref_id"]}
            dft.append(b)
        dft += [a.copy() for a in flagged_d]  # not computed: kept as sampled
        write_extxyz(dft, run_root / "samples_dft_relaxed.extxyz")
        out["dft"] = {
            "level_of_theory": backend.level_of_theory, "settings": settings, "n_ref": len(dft_refs),
            "n_requested": len(requested), "budget_s": args.dft_budget_s, "stopped_by_budget_before": stopped_at,
            "ref_ids": [r.id for r in dft_refs], "converged": sum(bool(h["converged"]) for h in dres),
            "n_computed": len(dres), "n_cached": sum(bool(h["cached"]) for h in dres),
            "errors": [h["error"] for h in dres if h["error"]],
            "wall_s": round(sum(h["wall_s"] for h in dres), 1), "wall_s_this_invocation": round(time.time() - t0, 1),
            "n_flagged_not_computed": len(flagged_d),
            "rows": [score(dft_refs, raw_d, args, "raw samples"), score(dft_refs, mlp_d + flagged_d, args, "after MLP pre-relax"),
                     score(dft_refs, dft, args, f"after DFT relax ({backend.level_of_theory})")],
        }
    return out


def niggli_copy(atoms):
    """A copy with the Niggli-reduced cell (same crystal). Samples keep skewed cells (angles near 10° seen) that
    make plane-wave DFT need many more grid points and k-points: a 2-atom NdAs sample ran > 25 min in GPAW."""
    from ase.build import niggli_reduce

    b = atoms.copy()
    niggli_reduce(b)
    return b


def _dft_path(run_root: Path, atoms, settings: dict) -> Path:
    from gencrystal.metrics.stability import structure_key

    key = structure_key(atoms, {**settings, "input_cell": "niggli"})  # the DFT input is niggli_copy(atoms)
    return run_root / "dft_cache" / f"{atoms.info['ref_id']}_{key[:16]}.extxyz"


def _dft_cached(run_root: Path, atoms, settings: dict) -> dict | None:
    """A DFT relaxation of ``atoms`` with ``settings`` done by an earlier invocation, or None."""
    path = _dft_path(run_root, atoms, settings)
    if not path.is_file():
        return None
    from ase.io import read

    b = read(str(path))
    return {"atoms": b, "ref_id": atoms.info["ref_id"], "converged": bool(b.info.get("dft_converged")),
            "error": str(b.info.get("dft_error", "")) or None, "wall_s": float(b.info.get("dft_wall_s", 0.0)), "cached": True}


def _dft_store(run_root: Path, atoms, settings: dict, result) -> dict:
    """Write one DFT result atomically to the cache and return it in the cached form."""
    from gencrystal.io import write_extxyz

    b = result.atoms.copy()
    b.info = {"ref_id": atoms.info["ref_id"], "dft_converged": bool(result.converged),
              "dft_wall_s": float(result.wall_s), "level_of_theory": result.level_of_theory}
    if result.error:  # (an empty string does not survive the extxyz comment line)
        b.info["dft_error"] = str(result.error)
    path = _dft_path(run_root, atoms, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_extxyz([b], path)
    return {"atoms": b, "ref_id": atoms.info["ref_id"], "converged": bool(result.converged), "error": result.error,
            "wall_s": float(result.wall_s), "cached": False}


# ---------------------------------------------------------------------------- report
def _pct(x):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _num(x, nd=4):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


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
          "(SMACT-invalid references cannot match)", ""]
    if res.get("training"):
        L += ["## Training", "", f"`experiment={ds['experiment']} model={a['model']}`, {a['epochs']} epochs"
              + (f" of {a['train_batches']} batches" if a.get("train_batches") else "") + "; the checkpoint scored is the "
              "one with the lowest validation loss.", "",
              "| variant (lattice prior) | epochs run | checkpoint epoch (0-based) | optimiser steps | parameters | "
              "training wall time (s) | checkpoint |", "|---|---|---|---|---|---|---|"]
        for t in res["training"]:
            src = f" ({t['wall_s_source']})" if t.get("wall_s_source") and t["wall_s_source"] != "measured around train()" else ""
            L.append(f"| {t['variant']} | {a['epochs']} | {t.get('epochs')} | {t.get('global_step')} | {t.get('parameters')} | "
                     f"{t.get('wall_s')}{src} | `{t['ckpt']}` |")
        L.append("")
    elif res.get("ckpt"):
        c = res["ckpt"]
        L += ["## Model", "", f"- checkpoint `{c.get('path')}`: epochs {c.get('epochs')}, steps {c.get('global_step')}, "
              f"parameters {c.get('parameters')}", ""]
    L += ["## Match rate and RMSE", "",
          "| model / sampler | NFE | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) | sampling wall (s) |",
          "|---|---|---|---|---|---|---|---|"]
    for name, mr, rmse, nfe in ds["published"]:
        L.append(f"| {name} | {nfe} | {n_all} | {mr:.2f} | {rmse:.4f} | – | – | – |")
    for r in res["main"]:
        L.append(f"| {r['label']} | {r.get('nfe', '–')} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                 f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} | {r.get('wall_s', '–')} |")
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
              "| model / protocol | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) |",
              "|---|---|---|---|---|---|"]
        for name, mr, rmse, _ in ds.get("published_k20", []) if mk["k"] == 20 else []:
            L.append(f"| {name}, 20 samples | {n_all} | {mr:.2f} | {rmse:.4f} | – | – |")
        for r in mk["rows"]:
            L.append(f"| {r['label']} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                     f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} |")
        if not ds.get("published_k20"):
            L.append("")
            L.append(f"ANCHORS.md §2.5 lists only 1-sample numbers for {ds['title']}; no published 20-sample row is "
                     "shown here.")
        L.append("")
    st = res.get("stages") or {}
    if st:
        L += ["## What each stage buys", ""]
        if "mlp" in st:
            m = st["mlp"]
            L += [f"MLP pre-relaxation with {m['potential']} at 0 GPa (FIRE, FrechetCellFilter, fmax {m['fmax_eV_per_A']} eV/Å, "
                  f"≤ {m['steps']} steps) of the samples of the {m['n_ref']} smallest scored test crystals: "
                  f"{m.get('n_relaxed')} relaxed ({m['converged']} converged), {m.get('n_flagged_not_relaxed', 0)} flagged by "
                  f"the sampler's checks (distance < 0.5 Å or volume/atom outside 1–200 Å³)"
                  + (f" and {m['n_too_dense_not_relaxed']} with more than {m['max_neighbours_3A']} atoms within 3 Å of one "
                     "atom (far denser than any real crystal; CHGNet's cost grows with the square of that count)"
                     if m.get("n_too_dense_not_relaxed") else "")
                  + f" kept as sampled; {m['wall_s']} s:", "",
                  "| stage | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) |", "|---|---|---|---|---|---|"]
            for r in m["rows"]:
                L.append(f"| {r['label']} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                         f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} |")
            L.append("")
        if "dft" in st:
            d = st["dft"]
            s = d["settings"]
            L += [f"DFT ({d['level_of_theory']}: GPAW PW {s.get('ecut')} eV, {s.get('xc')}, k-point density "
                  f"{s.get('kpt_density')} Å⁻¹, smearing {s.get('smearing')} eV, {s.get('optimizer')} fmax {s.get('fmax')} eV/Å, "
                  f"≤ {s.get('steps')} steps, symmetry {s.get('symmetry')}) on the MLP-relaxed samples of the N = "
                  f"{d['n_ref']} smallest scored test crystals ({', '.join(d['ref_ids'])}); {d['converged']} of "
                  f"{d.get('n_computed', d['n_ref'])} converged, {d['wall_s']} s of DFT"
                  + (f" (N = {d['n_requested']} was asked for; the {d['budget_s']:g} s DFT budget ran out before "
                     f"{d['stopped_by_budget_before']})" if d.get("stopped_by_budget_before") else "")
                  + (f"; errors: {'; '.join(d['errors'])}" if d.get("errors") else "") + ":", "",
                  "| stage | n | match rate % | RMSE | match rate % (no filter) | RMSE (no filter) |", "|---|---|---|---|---|---|"]
            for r in d["rows"]:
                L.append(f"| {r['label']} | {r['n_ref']} | {_pct(r['match_rate'])} | {_num(r['rmse'])} | "
                         f"{_pct(r['match_rate_unfiltered'])} | {_num(r['rmse_unfiltered'])} |")
            L.append("")
    reused = [Path(m["reused"]).name for m in res.get("sample_meta", []) if m.get("reused")]
    L += ["## Timing", "", f"- wall time of this invocation: {res['wall_s']} s"
          + (f" (it re-used cached samples of an earlier invocation of the same command: {', '.join(reused)}; "
             "their sampling wall times are the ones measured when they were drawn)" if reused else ""), "",
          "Reproduce: the command under Provenance; samples and relaxed structures are in "
          f"`{res['run_dir']}` and can be re-scored with `gencrystal evaluate csp pred=... ref=../shared/data/{ds['folder']}/test.csv`."]
    return "\n".join(L)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--ckpt", help="trained checkpoint (skips training)")
    g.add_argument("--pred", nargs="+", help="score existing samples only (no model): extxyz/CIF folder/ASE db")
    g.add_argument("--pred-label", nargs="+", help="labels for --pred (default: file names)")
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--model", default="tiny", help="conf/model/<name>.yaml (tiny for CPU, cspnet for the real run)")
    g.add_argument("--train-batches", type=int, default=0, help="trainer.limit_train_batches (0 = all)")
    g.add_argument("--batch-size", type=int, default=0, help="global training batch (0 = experiment's 256)")
    g.add_argument("--train-override", nargs="*", default=[], help="extra Hydra overrides for training")
    g.add_argument("--lattice-variants", action="store_true", help="also train the constant-c lattice prior")
    g.add_argument("--data-root", default=None)
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
    g.add_argument("--dft-budget-s", type=float, default=0.0,
                   help="stop starting new DFT relaxations after this many seconds (0 = no limit); N shrinks to the "
                        "crystals done, and the report says so")
    g = p.add_argument_group("output")
    g.add_argument("--full", action="store_true",
                   help="the real benchmark: all test crystals, cspnet model, the experiment's epochs, DFT on 10")
    g.add_argument("--name", default=None, help="report name (default <dataset>_csp)")
    g.add_argument("--run-dir", default=None, help="default runs/bench_<dataset>")
    g.add_argument("--reports-dir", default=None)
    g.add_argument("--render-only", default=None, metavar="JSON",
                   help="re-write the markdown of an earlier run from its reports/<name>.json (nothing is recomputed)")
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
    from gencrystal.io import write_extxyz
    from gencrystal.reporting import REPORTS_DIR, write_report

    args = parse_args(argv)
    if args.render_only:  # re-write the markdown from a saved JSON (its provenance is kept as it was)
        res = json.loads(Path(args.render_only).read_text())
        reports = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
        jp, mp = write_report(res["settings"]["name"], res, markdown(res), reports_dir=reports)
        print(f"re-rendered {mp} from {args.render_only}")
        return 0
    t_start = time.time()
    data_root = Path(args.data_root) if args.data_root else data_root_default()
    args.data_root = str(data_root)
    ds = DATASETS[args.dataset]
    test_csv = data_root / ds["folder"] / "test.csv"
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
                       f"hold-out (validation), scored on {t} test (see ../shared/data/README.md)")
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
    res["reduced"] = bool(reasons)
    res["reduced_because"] = reasons
    res["wall_s"] = round(time.time() - t_start, 1)
    reports = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
    if res["nfe_sweep"]:
        reports.mkdir(parents=True, exist_ok=True)
        plot_nfe(res["nfe_sweep"], reports / f"{args.name}_nfe.png", args.dataset)
    jp, mp = write_report(args.name, res, markdown(res), reports_dir=reports)
    print(f"wrote {mp} and {jp}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    try:
        raise SystemExit(main())
    except Exception as exc:  # one line for the user, like the CLI
        from gencrystal.errors import GencrystalError

        if isinstance(exc, GencrystalError):
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2)
        raise
