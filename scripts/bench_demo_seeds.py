"""How often do the demo's samples relax into a known phase? The demo over many seeds.

    python scripts/bench_demo_seeds.py [--seeds 10] [--first-seed 0] [--out runs/demo_seeds] [demo overrides ...]

Each seed runs the demo's sample + relax exactly as ``gencrystal demo`` does (conf/demo.yaml,
overridable: ``num_samples=2 steps=40``): sample every system with the seed, relax the
unflagged samples together with the known phases, group duplicates with StructureMatcher,
and count the samples whose group is led by a known phase. The known phases do not depend on
the seed: they are relaxed once and reused. Each seed's result is stored in
``<out>/seed_<k>.json`` as soon as it is done, so a killed run resumes where it stopped.

Writes ``reports/demo_seeds.{json,md}`` (per system: samples that relaxed into a known phase,
and seeds with at least one); ``gencrystal demo`` prints these rates in its summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def potentials_by_system(parts) -> dict[str, str]:
    """``{reduced formula: potential name}`` of the demo's relaxation parts (:func:`relax_with_fallback`)."""
    from pymatgen.core import Composition

    return {Composition(r.atoms.get_chemical_formula(mode="metal")).reduced_formula: name
            for _, name, results in parts for r in results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (>= 10 for the report)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", default="runs/demo_seeds", help="per-seed results (resumable)")
    ap.add_argument("--report", default="demo_seeds", help="reports/<name>.{json,md}")
    ap.add_argument("--reports-dir", default=None, help="where the report goes (default reports/)")
    ap.add_argument("overrides", nargs="*", help="conf/demo.yaml overrides, e.g. num_samples=2 steps=40")
    args = ap.parse_args(argv)

    from ase.io import read
    from omegaconf import OmegaConf

    from gencrystal.config import compose
    from gencrystal.demo import demo_candidates, rediscovery_counts, relax_with_fallback, sample_systems
    from gencrystal.io import write_extxyz, write_json
    from gencrystal.relax.result import result_from_atoms
    from gencrystal.relax.runs import rank_and_group
    from gencrystal.reporting import write_report
    from gencrystal.runtime import set_threads

    threads = set_threads(1)
    cfg = compose("demo", args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: OmegaConf.to_container(cfg, resolve=True)[k] for k in
                ("ckpt", "pressure", "systems", "num_samples", "sampler", "min_volume_per_atom", "optimizer",
                 "steps", "fmax", "matcher", "potential")}
    stamp = out / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise SystemExit(f"{stamp} holds other settings; use another --out or delete it")
    write_json(settings, stamp)
    names = [str(s.name) for s in cfg.systems]

    known_file = out / "known_relaxed.extxyz"
    if not known_file.is_file():
        t0 = time.time()
        parts = relax_with_fallback(demo_candidates([], known=True), cfg, log=print)
        write_json({"potentials": potentials_by_system(parts)}, out / "potentials.json")  # before the known file
        write_extxyz([r.atoms for _, _, results in parts for r in results], known_file)
        print(f"[demo seeds] known phases relaxed in {time.time() - t0:.0f} s", flush=True)
    known = [result_from_atoms(a) for a in read(known_file, index=":")]

    per_seed = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        f = out / f"seed_{seed}.json"
        if f.is_file():
            per_seed.append(json.loads(f.read_text()))
            continue
        t0 = time.time()
        sampled = sample_systems(cfg, seed)
        sample_dir = out / f"samples_{seed}.extxyz"
        write_extxyz([a for frames in sampled.values() for a in frames], sample_dir)
        cands = [a for a in demo_candidates([sample_dir], known=False)]
        flagged = {n: sum(bool(a.info.get("flagged")) for a in frames) for n, frames in sampled.items()}
        relaxed = [r for _, _, results in relax_with_fallback(cands, cfg) for r in results] if cands else []
        results = [*known, *relaxed]
        order = rank_and_group(results, str(cfg.matcher))
        frames = [results[i].atoms for i in order]
        counts = rediscovery_counts(frames, names)
        for n in names:
            counts[n]["flagged"] = flagged[n]
            counts[n]["sampled"] = len(sampled[n])
        found = [(str(a.info["id"]), str(a.info.get("duplicate_of"))) for a in frames
                 if str(a.info.get("id", "")).startswith("sample:") and str(a.info.get("duplicate_of", "")).startswith("known:")]
        rec = {"seed": seed, "systems": counts, "rediscoveries": found, "wall_s": round(time.time() - t0, 1)}
        write_json(rec, f)
        per_seed.append(rec)
        print(f"[demo seeds] seed {seed}: {counts} in {rec['wall_s']} s", flush=True)

    systems = {}
    for n in names:
        samples = sum(r["systems"][n]["samples"] for r in per_seed)
        hit = sum(r["systems"][n]["rediscovered"] for r in per_seed)
        systems[n] = {"sampled": sum(r["systems"][n]["sampled"] for r in per_seed),
                      "flagged": sum(r["systems"][n]["flagged"] for r in per_seed),
                      "samples": samples, "rediscovered": hit, "sample_rate": hit / samples if samples else 0.0,
                      "seeds_with_one": sum(r["systems"][n]["rediscovered"] > 0 for r in per_seed)}
    used = json.loads((out / "potentials.json").read_text())["potentials"]
    pot = ", ".join(f"{n} on {p}" for n, p in sorted(used.items()))
    configuration = (f"{settings['num_samples']} samples per system, {settings['steps']} {settings['optimizer']} steps, "
                     f"fmax {settings['fmax']} eV/A, {pot} at {settings['pressure']:g} GPa, sampler {settings['sampler']}")
    results = {"n_seeds": len(per_seed), "seeds": [r["seed"] for r in per_seed], "configuration": configuration,
               "settings": settings, "threads": threads, "systems": systems, "per_seed": per_seed,
               "criterion": "a relaxed, converged sample whose StructureMatcher group (matcher "
                            f"{settings['matcher']}) is led by a known phase, as in the demo's summary"}
    rows = "\n".join(f"| {n} | {s['sampled']} | {s['flagged']} | {s['samples']} | {s['rediscovered']} | "
                     f"{100 * s['sample_rate']:.0f} % | {s['seeds_with_one']}/{len(per_seed)} |" for n, s in systems.items())
    seeds_txt = "\n".join(f"- seed {r['seed']}: " + (", ".join(f"{a} -> {b}" for a, b in r["rediscoveries"]) or "none")
                          for r in per_seed)
    on_chgnet = sorted(n for n, p in used.items() if str(p).startswith("chgnet"))
    caveat = ("Potential-level result, no DFT check here: " + (
        f"{', '.join(on_chgnet)} ranked by CHGNet, which is badly wrong under compression (reports/eos_li.md)."
        if on_chgnet else "the committee's volumes are checked against GPAW-PBE (reports/active_learning.md), "
        "its energy differences between phases are not."))
    md = f"""# The demo over {len(per_seed)} seeds: how often samples relax into a known phase

Configuration: {configuration} (conf/demo.yaml{' with ' + ' '.join(args.overrides) if args.overrides else ''}),
checkpoint `{settings['ckpt']}`, {threads} thread per process. Each seed samples every system with that
seed and relaxes the unflagged samples together with the known phases (relaxed once), as `gencrystal demo`
does (each system on the demo's potential, or on its named fallback where the potential's labels do not
cover an element: {pot}). A sample counts when it relaxed (converged) into the structure of a known phase:
its StructureMatcher group ({settings['matcher']} setting) is led by a known phase. {caveat}

| system | sampled | flagged (not relaxed) | relaxed | into a known phase | rate | seeds with >= 1 |
|---|---|---|---|---|---|---|
{rows}

Per seed:

{seeds_txt}
"""
    write_report(args.report, results, md, reports_dir=Path(args.reports_dir) if args.reports_dir else None)
    print(md)
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
