#!/usr/bin/env python
"""Recipe of the shipped default model ``checkpoints/gencrystal-hp-csp-small.ckpt``, end to end.

    python scripts/train_default.py            # every stage, in order (resumable)
    python scripts/train_default.py db train   # chosen stages only

Stages (each resumable: re-run the same command after a kill, finished work is skipped):

``seeds``
    ``data/fixtures/hp_seeds.extxyz``: 14 known Li/Si/SiO2/B prototypes plus 10 seeded
    pyxtal random crystals (:func:`gencrystal.demo.seed_structures`); written only when missing.
``randomseeds``
    ``data/fixtures/hp_random_seeds.extxyz``: ``--random-seeds`` pyxtal random crystals per
    composition and cell size of :data:`RANDOM_SEED_SPECS` (Li, Si, SiO2, B at the known
    phases' cell sizes), seeded; written only when missing (committed, so every training id
    resolves to its source). Relaxed with the trusted committee, they give the model the
    density of these systems under pressure while the known phases themselves are held out.
``mp20seeds``
    ``<work>/mp20_seeds.extxyz``: the first ``--mp20-seeds`` MP-20 val structures with at
    most ``--mp20-seed-max-atoms`` atoms (high-pressure relaxation seeds).
``db``
    ``gencrystal db build`` of the seeds, then of the MP-20 seeds (if any; ``--db-sources``
    orders and chooses ``seeds``, ``random`` and ``mp20``), at 50, 100, 25
    and 0 GPa (``--pressures``, most wanted first) with the trusted committee
    ``hp_committee`` where its DFT labels cover the structure (Li, Si, SiO2, B) and CHGNet
    for the rest (``--potential``, ``--fallback-potential``; fmax 0.1 eV/Å, ≤ 200 FIRE
    steps; every row keeps its ``level_of_theory``) into ``<work>/hp.db``; the build's task ledger makes it resumable, and
    ``--db-minutes`` caps its wall time on a busy machine.
``mp20``
    MP-20 val (all rows, split ``train``) and the first ``--mp20-val`` + ``--mp20-test``
    MP-20 *test* rows (split ``val`` / ``test``) at 0 GPa, DFT (PBE) labels as published,
    written unrelaxed (skipped by ``source`` when already present).
``splits``
    a seed relaxed at one pressure by more than one build (an earlier potential, e.g. CHGNet
    before the committee covered it) keeps only its latest row; the relaxed rows get a
    ``split`` key grouped by the seed they came from (every pressure of one seed in the same
    split; 80/10/10 by a seeded hash of the seed's id, so adding seeds moves no earlier row);
    a seed that the ``--init-from`` checkpoint (or its lineage) trained on always trains, so
    fine-tuning never validates or tests on rows its starting weights saw.
``holdout``
    the known phases out of the training data: every row (any split, MP-20 rows included)
    that StructureMatcher (stol 0.5, ltol 0.3, angle_tol 10°) equates with a known-phase
    benchmark target or a seed prototype (:mod:`gencrystal.search.holdout`), and every relaxed
    row whose *seed* it equates with one (``matched: source``; a random seed can be a known
    phase even when its relaxation at P moved away from it), gets
    ``split=heldout_known`` and a ``known_phase`` key, so no split selects it; the list goes
    to ``<work>/holdout.json`` (``splits`` leaves such rows alone).
``train``
    ``gencrystal train experiment=default_model resume=true`` (``trainer.max_time`` caps it;
    ``--init-from CKPT`` starts from another checkpoint's weights, priors refit on this data).
``ship``
    best (lowest EMA val/loss) checkpoint → ``checkpoints/gencrystal-hp-csp-small.ckpt``
    (``--ship-as PATH``: elsewhere, e.g. a benchmark model beside the demo's),
    without optimizer/loop state (model + EMA weights, config, data statistics), with the
    training rows' ids (``gencrystal_training_ids``: ``<source>@<P>GPa`` of every
    ``split=train`` row of the database at ship time) and the hold-out record
    (``gencrystal_holdout``) that ``tests/test_holdout.py`` scans.
``evaluate``
    one sample per held-out ``test`` row (MP-20 test at 0 GPa and held-out relaxed rows at
    their pressure; rows among the checkpoint's recorded training ids are left out and
    counted) → ``gencrystal evaluate csp``; metrics and the validation loss go to
    ``reports/default_model.{json,md}``.

Pressures in GPa. Work folder (git-ignored): ``runs/default_model``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "data" / "fixtures" / "hp_seeds.extxyz"
RANDOM_SEEDS = ROOT / "data" / "fixtures" / "hp_random_seeds.extxyz"
#: (reduced formula, formula units Z) of the random seeds: the cell sizes of the known phases
#: (bcc/fcc/cI16 Li, diamond/beta-Sn Si, rutile/CaCl2/alpha-PbO2/pyrite SiO2, alpha-Ga/alpha-B12 B) and their neighbours
RANDOM_SEED_SPECS: tuple[tuple[str, int], ...] = (
    ("Li", 2), ("Li", 4), ("Li", 8), ("Si", 2), ("Si", 4), ("Si", 8),
    ("SiO2", 2), ("SiO2", 3), ("SiO2", 4), ("B", 4), ("B", 8), ("B", 12),
)
SHIPPED = ROOT / "checkpoints" / "gencrystal-hp-csp-small.ckpt"
STAGES = ["seeds", "randomseeds", "mp20seeds", "db", "mp20", "splits", "holdout", "train", "ship", "evaluate"]
#: evaluation subsets of the held-out test rows: (name, level-of-theory prefix; None: all)
SUBSETS = (("all", None), ("mp20_test_0GPa", "mp20"), ("chgnet_highP", "chgnet"), ("committee_highP", "hp-committee"))
GC = [sys.executable, "-m", "gencrystal"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(fn):
    def wrap(args):
        t0 = time.time()
        fn(args)
        times_file = Path(args.work) / "stage_times.json"
        times = json.loads(times_file.read_text()) if times_file.is_file() else {}
        times[fn.__name__.replace("stage_", "")] = times.get(fn.__name__.replace("stage_", ""), 0.0) + time.time() - t0
        times_file.write_text(json.dumps(times, indent=1))
    return wrap


def sh(cmd: list[str]) -> None:
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)


def mp20_config(protocol: str = "standard"):
    from gencrystal.config import compose

    cfg = compose("data/mp20").data
    cfg.protocol = protocol
    cfg.progress = False
    return cfg


@timed
def stage_seeds(args) -> None:
    if SEEDS.is_file():
        log(f"{SEEDS.relative_to(ROOT)} exists")
        return
    from gencrystal.demo import seed_structures
    from gencrystal.io import write_extxyz

    frames = seed_structures(seed=0)
    SEEDS.parent.mkdir(parents=True, exist_ok=True)
    write_extxyz(frames, SEEDS)
    log(f"wrote {len(frames)} seeds to {SEEDS.relative_to(ROOT)}")


def stage_randomseeds(args) -> None:
    if RANDOM_SEEDS.is_file() or args.random_seeds <= 0:
        if RANDOM_SEEDS.is_file():
            log(f"{RANDOM_SEEDS.relative_to(ROOT)} exists")
        return
    from gencrystal.demo import random_structures
    from gencrystal.io import write_extxyz

    frames = random_structures([(f, z, args.random_seeds) for f, z in RANDOM_SEED_SPECS], seed=args.seed + 1)
    write_extxyz(frames, RANDOM_SEEDS)
    log(f"wrote {len(frames)} random seeds to {RANDOM_SEEDS.relative_to(ROOT)}")


def seed_files(args) -> list[Path]:
    """The seed files whose rows the database may hold: the seed set, the random seeds (when
    written) and the work folder's MP-20 seeds (when written)."""
    extra = [RANDOM_SEEDS, Path(args.work) / "mp20_seeds.extxyz"]
    return [SEEDS] + [f for f in extra if f.is_file()]


@timed
def stage_mp20seeds(args) -> None:
    out = Path(args.work) / "mp20_seeds.extxyz"
    if out.is_file() or args.mp20_seeds <= 0:
        return
    from gencrystal.data.convert import data_to_atoms
    from gencrystal.data.dataset import load_split
    from gencrystal.io import write_extxyz

    ds = load_split(mp20_config(), "val", data_root=args.data_root)
    frames = []
    for i in range(len(ds)):
        atoms = data_to_atoms(ds[i])
        if len(atoms) <= args.mp20_seed_max_atoms:
            atoms.info = {"id": f"mp20val-{ds.table['material_id'].iloc[i]}"}
            frames.append(atoms)
        if len(frames) >= args.mp20_seeds:
            break
    write_extxyz(frames, out)
    log(f"wrote {len(frames)} MP-20 val seeds to {out}")


@timed
def stage_db(args) -> None:
    """One resumable ``gencrystal db build`` per (source, pressure): the MP-20 seeds at every
    pressure of ``--pressures`` (in that order, the most wanted first), then the Li/Si/SiO2/B
    seeds; with ``--db-minutes`` the stage stops when that wall time is spent (a
    build cut short loses only its chunk in flight and is completed by the next run)."""
    db = str(Path(args.work) / "hp.db")
    common = [f"potential={args.potential}"] + ([f"potential@fallback_potential={args.fallback_potential}"]
              if args.fallback_potential else []) + [f"db={db}", f"relax.fmax={args.fmax}", f"relax.steps={args.steps}",
              f"chunk_size={2 * max(1, args.workers)}", f"cluster.workers={args.workers}", "progress=false"]
    deadline = time.time() + 60 * args.db_minutes if args.db_minutes else None
    mp20 = Path(args.work) / "mp20_seeds.extxyz"
    # --db-sources orders them: the Li/Si/SiO2/B seeds (the chemistry of the known-phase
    # benchmark, whose random crystals stay in training when the prototypes are held out) and
    # the small MP-20 seeds (diverse chemistry, which the model's response to pressure needs
    # most); each source at every pressure before the next source
    by_name = {"seeds": SEEDS, "mp20": mp20, "random": RANDOM_SEEDS}
    sources = [by_name[n] for n in args.db_sources.split(",") if by_name[n].is_file()]
    jobs = [(src, float(x)) for src in sources for x in args.pressures.split(",")]
    for src, p in jobs:
        cmd = GC + ["db", "build", f"source={src}", f"pressures=[{p:g}]"] + common
        if deadline is None:
            sh(cmd)
            continue
        left = deadline - time.time()
        if left < 60:
            log(f"db stage: --db-minutes={args.db_minutes} spent; stopping before {src.name} at {p:g} GPa")
            return
        log("$ " + " ".join(cmd) + f"  (time limit {left:.0f} s)")
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the build and its Dask workers (own process group)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log(f"db stage: time limit reached during {src.name} at {p:g} GPa (resume: run the db stage again)")
            return
        if rc != 0:
            raise SystemExit(f"db build failed (exit {rc})")


@timed
def stage_mp20(args) -> None:
    from gencrystal.data.asedb import write_structures
    from gencrystal.data.dataset import load_split

    db = str(Path(args.work) / "hp.db")
    val = load_split(mp20_config(), "val", data_root=args.data_root)
    test = load_split(mp20_config(), "test", data_root=args.data_root)
    for ds, rows, split in ((val, range(len(val)), "train"),
                            (test, range(args.mp20_val), "val"),
                            (test, range(args.mp20_val, args.mp20_val + args.mp20_test), "test")):
        atoms = [ds.to_atoms(i) for i in rows]
        for a in atoms:
            a.info = {}
        table = ds.table.iloc[list(rows)]
        ids = write_structures(
            db, atoms, pressures_gpa=0.0, level_of_theory="mp20-dft-pbe",
            sources=[f"mp20:{ds.split}:{m}" for m in table["material_id"]],
            key_values=[{"material_id": str(m), "formula": f} for m, f in zip(table["material_id"], table["formula"])
                        ] if "formula" in table else [{"material_id": str(m)} for m in table["material_id"]],
            split=split)
        log(f"MP-20 {ds.split} -> split {split}: {len(ids)} new rows")


@timed
def stage_splits(args) -> None:
    from ase.io import read

    from gencrystal.db.schema import connect

    db = connect(str(Path(args.work) / "hp.db"))
    # rows of seeds that are no longer in the seed files (a corrected seed gets a new id) go
    seed_ids = {f"{f.stem}:{a.info['id']}" for f in seed_files(args) for a in read(str(f), index=":")}
    orphans = [r.id for r in db.select() if not str(r.get("level_of_theory", "")).startswith("mp20")
               and str(r.get("material_id")) not in seed_ids]
    if orphans:
        db.delete(orphans)
        log(f"removed {len(orphans)} rows of seeds no longer in the seed files")
    superseded = superseded_rows(db)
    if superseded:
        db.delete(superseded)
        log(f"removed {len(superseded)} rows superseded by a later relaxation of the same seed at the same pressure")
    from gencrystal.search.holdout import HELDOUT_SPLIT

    rows = [r for r in db.select() if not str(r.get("level_of_theory", "")).startswith("mp20")
            and r.get("split") != HELDOUT_SPLIT]
    groups = sorted({str(r.get("material_id", r.id)) for r in rows})
    # a seed the starting weights (--init-from and its lineage) trained on cannot be held out
    trained = {i.rsplit("@", 1)[0] for i in parent_training_ids(args)}
    parent_groups = {str(r.get("material_id", r.id)) for r in rows if str(r.get("source", "")) in trained}
    split_of = {g: "train" if g in parent_groups else group_split(g, args.seed) for g in groups}
    # the demo's known phases always train: Li and SiO2 prototypes are never held out
    for g in groups:
        if g.split(":")[-1].startswith(("Li-", "SiO2-")):
            split_of[g] = "train"
    counts: dict[str, int] = {}
    with db:
        for r in rows:
            s = split_of[str(r.get("material_id", r.id))]
            counts[s] = counts.get(s, 0) + 1
            if r.get("split") != s:
                db.update(r.id, split=s)
    log(f"relaxed rows by split: {counts} ({len(groups)} seed groups)")


def group_split(group: str, seed: int = 0) -> str:
    """The split of one seed group, ``val`` / ``test`` / ``train`` with odds 1 : 1 : 8 from a hash
    of ``seed`` and the group's id: the same group always lands in the same split, whichever
    other groups the database holds (so a later build does not move earlier rows between splits)."""
    digit = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest(), 16) % 10
    return "val" if digit == 0 else "test" if digit == 1 else "train"


def parent_training_ids(args) -> set[str]:
    """The recorded training ids (``<source>@<P>GPa``) of the ``--init-from`` checkpoint (its
    lineage included); empty without ``--init-from``."""
    if not getattr(args, "init_from", None):
        return set()
    import torch

    init = torch.load(ROOT / args.init_from, map_location="cpu", weights_only=False)  # absolute paths pass through
    if "gencrystal_training_ids" not in init:
        raise SystemExit(f"--init-from {args.init_from} records no training ids: its training data cannot be "
                         "kept out of the validation and test splits")
    return set(init["gencrystal_training_ids"])


def superseded_rows(db) -> list[int]:
    """Row ids of relaxed rows whose seed (``material_id``) was relaxed again at the same
    pressure (GPa) by a later build: only the latest row (highest id) of each pair stays, so a
    seed relabelled by the trusted committee does not keep its earlier CHGNet row."""
    latest: dict[tuple[str, float], int] = {}
    out: list[int] = []
    for r in db.select():
        if str(r.get("level_of_theory", "")).startswith("mp20"):
            continue
        key = (str(r.get("material_id", r.id)), round(float(r.get("pressure_gpa", 0.0)), 6))
        if key in latest:
            out.append(min(latest[key], r.id))
            latest[key] = max(latest[key], r.id)
        else:
            latest[key] = r.id
    return sorted(out)


@timed
def stage_holdout(args) -> None:
    """Known phases out of every split (see the module docstring); idempotent."""
    from gencrystal.db.schema import connect
    from gencrystal.io import write_json
    from gencrystal.matching import MATCHER_SETTINGS
    from gencrystal.search.holdout import HELDOUT_SPLIT, find_known_phases, known_phase_structures, training_sources

    db = connect(str(Path(args.work) / "hp.db"))
    rows = list(db.select())
    refs = known_phase_structures()
    found = find_known_phases(((str(r.id), r.toatoms()) for r in rows), refs)
    # a relaxed row also goes when the seed it was relaxed from is a known phase (the relaxation
    # may have moved it away at this pressure, but the recorded training id names that seed)
    sources, _ = training_sources({str(r.get("source", "")) + "@0GPa" for r in rows
                                   if not str(r.get("level_of_theory", "")).startswith("mp20")},
                                  seed_files(args), getattr(args, "data_root", None))
    known_sources = find_known_phases(sources, refs)
    matched_by = {sid: "row" for sid in found}
    for r in rows:
        src = str(r.get("source", ""))
        if str(r.id) not in found and src in known_sources:
            found[str(r.id)] = known_sources[src]
            matched_by[str(r.id)] = "source"
    removed = []
    with db:
        for r in rows:
            if str(r.id) not in found:
                continue
            removed.append({"source": str(r.get("source", "")), "pressure_gpa": float(r.get("pressure_gpa", 0.0)),
                            "split_before": str(r.get("split", "")), "known_phase": found[str(r.id)],
                            "matched": matched_by[str(r.id)]})
            if r.get("split") != HELDOUT_SPLIT:
                db.update(r.id, split=HELDOUT_SPLIT, known_phase=found[str(r.id)])
    record = {"matcher": MATCHER_SETTINGS["csp"], "references": sorted(refs), "n_rows_scanned": len(rows),
              "removed": sorted(removed, key=lambda x: (x["source"], x["pressure_gpa"]))}
    write_json(record, Path(args.work) / "holdout.json")
    log(f"holdout: {len(removed)} of {len(rows)} rows equal a known phase ({len(refs)} references) -> split={HELDOUT_SPLIT}")


def training_record(args) -> dict:
    """The ids of the training rows (``<source>@<P>GPa`` of every ``split=train`` row) and the
    hold-out record of the work folder, as stored in the shipped checkpoint."""
    from gencrystal.db.schema import connect

    db = connect(str(Path(args.work) / "hp.db"))
    ids = {f"{r.get('source', r.id)}@{float(r.get('pressure_gpa', 0.0)):g}GPa" for r in db.select(split="train")}
    lineage = []
    if getattr(args, "init_from", None):  # the weights started from another checkpoint: its training data is this one's too
        import torch

        init = torch.load(ROOT / args.init_from, map_location="cpu", weights_only=False)  # absolute paths pass through
        if "gencrystal_training_ids" not in init:
            raise SystemExit(f"--init-from {args.init_from} records no training ids: its training data cannot be "
                             "checked for known phases")
        ids.update(init["gencrystal_training_ids"])
        lineage = [{"init_from": str(args.init_from), "shipped": init.get("gencrystal_shipped"),
                    "n_training_ids": len(init["gencrystal_training_ids"])}, *init.get("gencrystal_lineage", [])]
    hold = Path(args.work) / "holdout.json"
    return {"gencrystal_training_ids": sorted(ids), "gencrystal_lineage": lineage,
            "gencrystal_holdout": json.loads(hold.read_text()) if hold.is_file() else None}


@timed
def stage_train(args) -> None:
    extra = [f"init_from={args.init_from}"] if args.init_from else []  # relative to the repository (the stage runs there)
    sh(GC + ["train", "experiment=default_model", "resume=true", f"trainer.max_time={args.max_time}",
             f"data.url={Path(args.work) / 'hp.db'}", f"out={Path(args.work) / 'train'}"] + extra)


def best_checkpoint(args) -> Path:
    ck = Path(args.work) / "train" / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        if (ck / name).is_file():
            return ck / name
    raise SystemExit(f"no checkpoint under {ck}; run the train stage first")


@timed
def stage_ship(args) -> None:
    import torch

    from gencrystal.io import atomic_write

    src = best_checkpoint(args)
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    keep = {k: ckpt[k] for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
            if k in ckpt}
    for k in ckpt:  # datamodule statistics (Lightning stores them under the class name)
        if k.endswith("DataModule") or k == "datamodule_hyper_parameters":
            keep[k] = ckpt[k]
    keep.update(training_record(args))
    if keep["gencrystal_holdout"] is None:
        raise SystemExit("no holdout.json in the work folder: run the holdout stage before shipping")
    keep["gencrystal_shipped"] = {"source": str(src.relative_to(ROOT)) if src.is_relative_to(ROOT) else str(src),
                                  "shipped_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = Path(args.ship_as) if args.ship_as else SHIPPED
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as fh:
        torch.save(keep, fh)
    size = target.stat().st_size / 2**20
    log(f"shipped {src} (epoch {ckpt.get('epoch')}, step {ckpt.get('global_step')}) -> {target} ({size:.1f} MiB)")
    if size > 25:
        raise SystemExit(f"{target} is {size:.1f} MiB > 25 MiB")
    from gencrystal.model.module import CrystalDiffusionModule

    CrystalDiffusionModule.load_checkpoint(target)


def volume_errors(refs, preds) -> dict:
    """Relative error of the sampled volume per atom against its reference at the same
    pressure, ``V_pred/V_ref − 1`` (StructureMatcher rescales volumes before matching, so
    the match rate alone is blind to the pressure → volume response): median of |err| and mean."""
    import numpy as np

    by_id = {a.info["material_id"]: a for a in refs}
    err = np.array([(p.get_volume() / len(p)) / (by_id[p.info["ref_id"]].get_volume() / len(by_id[p.info["ref_id"]])) - 1
                    for p in preds])
    if not len(err):
        return {}
    return {"volume_err_median_abs": float(np.median(np.abs(err))), "volume_err_mean": float(err.mean())}


def dft_volume_references(path: Path, known: set[str]) -> list[dict]:
    """The known phases' GPAW-PBE equilibrium volumes (Å³/atom) at each pressure (GPa) from the
    shipped committee's EOS table (``reports/active_learning.json``, ``shipped``): one reference per
    phase and pressure, ``{"phase", "formula", "pressure_gpa", "volume_per_atom", "held_out"}``;
    ``held_out``: the phase (``known_id``) is one of the hold-out's references (``known``:
    ``known:<id>`` of ``holdout.json``), so no structure of it reached the training data."""
    if not path.is_file():
        return []
    shipped = json.loads(path.read_text()).get("shipped", {})
    out = []
    for system in shipped.values():
        for phase, res in system.get("phases", {}).items():
            if "formula" not in res:
                continue
            for p_gpa, row in res["eos"].items():
                if row.get("dft_converged", True):
                    out.append({"phase": phase, "formula": res["formula"], "pressure_gpa": float(p_gpa),
                                "volume_per_atom": float(row["dft"]),
                                "held_out": f"known:{res.get('known_id')}" in known})
    return out


def known_phase_volume_errors(gen, refs: list[dict], samples: int, seed: int) -> dict:
    """Sample each reference's composition at its pressure ``samples`` times and compare the
    volume per atom with the DFT one (V_pred/V_DFT − 1): median |err| over every sample, mean, and
    the median per phase and pressure."""
    import numpy as np
    from pymatgen.core import Composition

    from gencrystal.sampling.requests import SampleRequest

    reqs = [SampleRequest(composition=Composition(r["formula"]), pressure_gpa=r["pressure_gpa"], num_samples=samples,
                          formula=r["formula"]) for r in refs]
    run = gen.run(reqs, seed=seed)
    errs: dict[int, list[float]] = {}
    for a in run.frames:
        i = int(a.info["request_index"])
        errs.setdefault(i, []).append((a.get_volume() / len(a)) / refs[i]["volume_per_atom"] - 1)
    flat = np.array([e for v in errs.values() for e in v])
    rows = [{**refs[i], "median_err": float(np.median(v)), "n": len(v)} for i, v in sorted(errs.items())]
    return {"n_refs": len(refs), "n_samples": int(flat.size), "volume_err_median_abs": float(np.median(np.abs(flat))),
            "volume_err_mean": float(flat.mean()), "all_held_out": all(r["held_out"] for r in refs), "rows": rows}


@timed
def stage_evaluate(args) -> None:
    from pymatgen.core import Composition

    from gencrystal.db.schema import connect
    from gencrystal.io import write_extxyz
    from gencrystal.reporting import write_report
    from gencrystal.sampling import Generator
    from gencrystal.sampling.requests import SampleRequest

    work = Path(args.work)
    ev = work / "evaluate"
    db = connect(str(work / "hp.db"))
    refs = []
    for r in db.select("split=test"):
        a = r.toatoms()
        rid = f"{r.get('source')}@{float(r.pressure_gpa):g}GPa"  # one seed appears at several pressures
        a.info = {"id": rid, "material_id": rid, "pressure_gpa": float(r.pressure_gpa),
                  "level_of_theory": str(r.level_of_theory)}
        refs.append(a)
    refs.sort(key=lambda a: a.info["material_id"])
    if args.eval_limit is not None:  # every CHGNet (high-pressure) reference, then MP-20 ones up to the limit
        hp = [a for a in refs if not a.info["level_of_theory"].startswith("mp20")]
        refs = hp + [a for a in refs if a.info["level_of_theory"].startswith("mp20")][: max(0, args.eval_limit - len(hp))]
    ckpt = Path(args.ckpt) if args.ckpt else SHIPPED
    import torch

    seen = set(torch.load(ckpt, map_location="cpu", weights_only=False).get("gencrystal_training_ids", []))
    n_all = len(refs)
    refs = [a for a in refs if a.info["id"] not in seen]  # rows its weights (or its parents') trained on
    if len(refs) < n_all:
        log(f"evaluate: {n_all - len(refs)} test rows are among {ckpt.name}'s training ids and are left out")
    gen = Generator(str(ckpt), device="cpu", sampler=args.sampler, batch_size=64, progress=False)
    reqs = [SampleRequest(composition=Composition(a.get_chemical_formula(mode="metal")),
                          pressure_gpa=a.info["pressure_gpa"], num_samples=1, formula=a.get_chemical_formula(mode="metal"))
            for a in refs]
    t0 = time.time()
    run = gen.run(reqs, seed=args.seed)
    sample_s = time.time() - t0
    preds = []
    for a in run.frames:
        ref = refs[int(a.info["request_index"])]
        a.info["ref_id"] = ref.info["material_id"]
        preds.append(a)
    ev.mkdir(parents=True, exist_ok=True)
    write_extxyz(refs, ev / "refs.extxyz")
    write_extxyz(preds, ev / "preds.extxyz")
    if (ev / "csp").exists():
        shutil.rmtree(ev / "csp")
    results: dict = {"sample_wall_s": sample_s, "sampler": args.sampler, "n_refs": len(refs),
                     "n_left_out_trained": n_all - len(refs)}
    for name, sel in SUBSETS:
        sub_r = [a for a in refs if sel is None or a.info["level_of_theory"].startswith(sel)]
        if not sub_r:
            continue
        ids = {a.info["material_id"] for a in sub_r}
        write_extxyz(sub_r, ev / f"refs_{name}.extxyz")
        write_extxyz([a for a in preds if a.info["ref_id"] in ids], ev / f"preds_{name}.extxyz")
        sh(GC + ["evaluate", "csp", f"pred={ev / f'preds_{name}.extxyz'}", f"ref={ev / f'refs_{name}.extxyz'}",
                 f"out={ev / 'csp' / name}", "workers=1", "progress=false"])
        m = json.loads((ev / "csp" / name / "metrics.json").read_text())
        results[name] = {"n": len(sub_r), **{k: v for k, v in m.items() if isinstance(v, (int, float, str))},
                         **volume_errors(sub_r, [a for a in preds if a.info["ref_id"] in ids])}
    hold = Path(args.work) / "holdout.json"
    known = set(json.loads(hold.read_text()).get("references", [])) if hold.is_file() else set()
    dft_refs = dft_volume_references(ROOT / args.dft_volumes, known)
    if dft_refs:
        results["known_phases_dft"] = known_phase_volume_errors(gen, dft_refs, args.dft_volume_samples, args.seed)
    # validation loss of the shipped weights (EMA) from the training CSV log
    import pandas as pd

    csvs = sorted((work / "train" / "csv").glob("version_*/metrics.csv"))
    if csvs and args.ckpt is None:  # the training log belongs to the shipped model, not to another --ckpt
        df = pd.concat([pd.read_csv(c) for c in csvs])
        if "val/loss" in df:
            v = df.dropna(subset=["val/loss"])
            results["val_loss_best"] = float(v["val/loss"].min())
            results["val_loss_last"] = float(v["val/loss"].iloc[-1])
            results["val_epochs"] = int(len(v))
        results["train_steps"] = int(df["step"].max()) if "step" in df else None
    times = json.loads((work / "stage_times.json").read_text()) if (work / "stage_times.json").is_file() else {}
    results["stage_wall_s"] = times
    md = ["# Shipped default model: held-out evaluation", "",
          f"Checkpoint `{ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt}`; one sample per held-out reference ({args.sampler} sampler, "
          f"seed {args.seed}); `gencrystal evaluate csp` (matcher csp: stol 0.5, ltol 0.3, angle_tol 10).", "",
          "Volume error: V/atom of the sample against the reference's at the same pressure (V_pred/V_ref − 1); "
          "the matcher rescales volumes, so the match rate does not see it.", "",
          "| subset | n | match rate | RMSE | median abs volume error | mean volume error |", "|---|---|---|---|---|---|"]
    for name, _ in SUBSETS:
        if name in results:
            r = results[name]
            md.append(f"| {name} | {r['n']} | {r.get('match_rate', float('nan')):.4f} | {r.get('rmse', float('nan'))} | "
                      f"{r.get('volume_err_median_abs', float('nan')):.3f} | {r.get('volume_err_mean', float('nan')):+.3f} |")
    kp = results.get("known_phases_dft")
    if kp:
        md += ["", f"Known phases at their GPAW-PBE volumes (`{args.dft_volumes}`, the committee's EOS table): "
               f"{kp['n_refs']} phase × pressure references, {args.dft_volume_samples} samples each; "
               f"{'every phase held out of the training data' if kp['all_held_out'] else 'NOT every phase held out'}. "
               f"Median |V_pred/V_DFT − 1| = **{kp['volume_err_median_abs']:.3f}** (mean {kp['volume_err_mean']:+.3f}).", "",
               "| phase | formula | P (GPa) | V DFT (Å³/atom) | median error of the samples | held out |", "|---|---|---|---|---|---|"]
        md += [f"| {r['phase']} | {r['formula']} | {r['pressure_gpa']:g} | {r['volume_per_atom']:.3f} | "
               f"{r['median_err']:+.3f} | {'yes' if r['held_out'] else 'no'} |" for r in kp["rows"]]
    md += ["", (f"Validation loss (EMA): best {results.get('val_loss_best')}, last {results.get('val_loss_last')}"
                if "val_loss_best" in results else "Validation loss: not from this work folder's training log (--ckpt given)"),
           f"Stage wall times (s): {json.dumps({k: round(v) for k, v in times.items()})}"]
    write_report(args.report, results, "\n".join(md), reports_dir=Path(args.reports_dir) if args.reports_dir else None)
    log(json.dumps({k: v for k, v in results.items() if k != "stage_wall_s"}, indent=1, default=str))


def db_sources(text: str) -> str:
    """``--db-sources``: a comma-separated order of ``seeds``, ``random``, ``mp20``, each at most once."""
    names = text.split(",")
    bad = [n for n in names if n not in ("seeds", "random", "mp20")]
    if bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--db-sources {text!r}: give seeds, random and/or mp20, each once")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stages", nargs="*", default=[], help=f"stages to run, of {' '.join(STAGES)} (default: all)")
    p.add_argument("--work", default=str(ROOT / "runs" / "default_model"))
    p.add_argument("--data-root", default=None, help="MP-20 data root (default: $GENCRYSTAL_DATA or data/)")
    p.add_argument("--mp20-seeds", type=int, default=0, help="MP-20 val structures (<= --mp20-seed-max-atoms atoms) also relaxed at 25/50/100 GPa; 0 on a shared CPU")
    p.add_argument("--mp20-seed-max-atoms", type=int, default=6)
    p.add_argument("--mp20-val", type=int, default=256, help="MP-20 test rows used as validation split")
    p.add_argument("--mp20-test", type=int, default=200, help="MP-20 test rows held out for the CSP evaluation")
    p.add_argument("--potential", default="hp_committee",
                   help="conf/potential of the db stage: the trusted committee relaxes what its DFT labels cover")
    p.add_argument("--fallback-potential", default="chgnet",
                   help="conf/potential for structures outside --potential's labels (elements, pressures); '' for none")
    p.add_argument("--fmax", type=float, default=0.1, help="eV/Å")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--pressures", default="50,100,25,0", help="GPa, comma-separated, built in this order")
    p.add_argument("--db-sources", default="seeds,random,mp20", type=db_sources,
                   help="structures the db stage relaxes, in this order (comma-separated, of seeds, random, mp20): "
                        "the Li/Si/SiO2/B seed set, the random Li/Si/SiO2/B seeds, the MP-20 seeds")
    p.add_argument("--random-seeds", type=int, default=0,
                   help="random seeds per entry of RANDOM_SEED_SPECS (randomseeds stage; 0: none)")
    p.add_argument("--db-minutes", type=float, default=None, help="wall-time cap of the db stage (minutes)")
    p.add_argument("--workers", type=int, default=2, help="relaxation processes of the db stage (Dask LocalCluster)")
    p.add_argument("--max-time", default="00:00:40:00", help="training wall-clock cap DD:HH:MM:SS")
    p.add_argument("--init-from", default=None,
                   help="checkpoint whose weights start the training (fine-tuning; ignored when the run resumes)")
    p.add_argument("--sampler", default="fast")
    p.add_argument("--ship-as", default=None,
                   help="where the ship stage writes the checkpoint (default checkpoints/gencrystal-hp-csp-small.ckpt)")
    p.add_argument("--ckpt", default=None, help="checkpoint to evaluate (default: the shipped one)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate at most this many held-out references")
    p.add_argument("--dft-volumes", default="reports/active_learning.json",
                   help="evaluate: known phases' DFT volumes per pressure (the committee's EOS table), relative to the repository")
    p.add_argument("--dft-volume-samples", type=int, default=4, help="evaluate: samples per known phase and pressure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", default="default_model", help="report name")
    p.add_argument("--reports-dir", default=None, help="report folder (default: reports/)")
    args = p.parse_args(argv)
    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        p.error(f"unknown stage {bad[0]!r}; choose from {' '.join(STAGES)}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    for stage in args.stages or STAGES:
        log(f"== stage {stage}")
        globals()[f"stage_{stage}"](args)
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
