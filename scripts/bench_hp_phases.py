#!/usr/bin/env python
"""Known-phase benchmark: how many structures each search method relaxes before one
matches a known high-pressure phase (Cond-CDVAE's protocol).

For each target (composition, Z, pressure, known structure from pymatgen's AFLOW
prototype library, see gencrystal/search/known_phases.py):

1. the known structure is relaxed with the potential at the target pressure: does it
   stay the same phase, and is its volume sane? (the potential may get the target wrong);
2. each method (random, pso, generative) runs with several seeds until a relaxed
   candidate matches the relaxed known structure with Cond-CDVAE's *loose* matcher
   (stol 0.5, ltol 0.3, angle 10°), or the budget is spent; the medium / strict
   tolerances are evaluated on the same candidates;
3. reports/hp_phases.{json,md,png} compare the mean number of structures to locate it
   with the published anchors (Cond-CDVAE mean samples; CALYPSO in brackets).

Searches are resumable: their candidates live in ``--work``/<target>.db, so running the
same command again continues where a killed run stopped.

    python scripts/bench_hp_phases.py                         # reduced run (2 CPU cores)
    python scripts/bench_hp_phases.py --full --ckpt model.ckpt  # all targets, 600 structures, 5 seeds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FULL = {"targets": "li_ci16,sio2_quartz,sio2_coesite,sio2_rutile,sio2_cacl2,sio2_pyrite,b_alpha12,b_alpha_ga",
        "budget": 600, "seeds": "0,1,2,3,4", "methods": "random,pso,generative"}
REDUCED = {"targets": "sio2_rutile,li_ci16", "budget": 12, "seeds": "0,1", "methods": "random,pso"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help=f"the full settings: {FULL}")
    p.add_argument("--targets", help=f"comma-separated keys of gencrystal.search.known_phases (reduced: {REDUCED['targets']})")
    p.add_argument("--methods", help="random,pso,generative (generative needs --ckpt)")
    p.add_argument("--budget", type=int, help="structures per search (reduced: 12; full: 600)")
    p.add_argument("--budgets", default="", help="per-target budgets, e.g. li_ci16=6,sio2_rutile=12")
    p.add_argument("--seeds", help="comma-separated seeds (reduced: 0,1; full: 0-4)")
    p.add_argument("--target-seeds", default="", help="per-target seeds, e.g. li_ci16=0 or li_ci16=0+1")
    p.add_argument("--potential", default="chgnet", help="chgnet | sevenn | checkpoint path")
    p.add_argument("--ckpt", default=None, help="pressure-conditioned generative checkpoint for method=generative")
    p.add_argument("--pso-population", type=int, default=6, help="PSO structures per generation")
    p.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per relaxation")
    p.add_argument("--chunk", type=int, default=2, help="candidates per relaxation call / database transaction")
    p.add_argument("--workers", type=int, default=1, help="Dask workers for the relaxations (1 = in process)")
    p.add_argument("--work", default=str(REPO / "outputs" / "bench_hp_phases"), help="search databases and outputs")
    p.add_argument("--report", default="hp_phases", help="report name under reports/")
    args = p.parse_args(argv)
    base = FULL if args.full else REDUCED
    for key in ("targets", "methods", "seeds"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    if args.budget is None:
        args.budget = base["budget"]
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.budget_map = {k: int(v) for k, v in (x.split("=") for x in args.budgets.split(",") if x.strip())}
    args.seed_map = {k: [int(s) for s in v.split("+")] for k, v in (x.split("=") for x in args.target_seeds.split(",") if x.strip())}
    args.reduced = not (set(args.target_list) >= set(FULL["targets"].split(",")) and args.budget >= FULL["budget"]
                        and len(args.seed_list) >= 5 and not args.budget_map and not args.seed_map)
    return args


def relax_reference(phase, potential, opts):
    """Relax the known structure at the target pressure; say whether it stays the same phase."""
    from gencrystal.relax import relax_structures
    from gencrystal.search.known_phases import matches, prototype_structure

    proto = prototype_structure(phase)
    res = relax_structures([proto], pressure_gpa=phase.pressure_gpa, potential=potential, progress=False, **opts)[0]
    relaxed = res.atoms
    info = {
        "converged": bool(res.converged), "error": res.error, "steps": int(res.steps),
        "enthalpy_per_atom": res.enthalpy_per_atom,
        "volume_per_atom_start": proto.get_volume() / len(proto),
        "volume_per_atom": relaxed.get_volume() / len(relaxed),
        "space_group_relaxed": res.space_group,
        "same_phase": {k: matches(relaxed, proto, k) for k in ("loose", "medium", "strict")},
    }
    return proto, relaxed, info


def run_one(phase, method_name, seed, budget, reference, potential, opts, args):
    """One search until the loose match (or the budget); returns the counts."""
    from gencrystal.search import GenerativeSearch, PSOSearch, RandomSearch, run_search
    from gencrystal.search.known_phases import matches

    if method_name == "random":
        method = RandomSearch(chunk=max(1, args.chunk))
    elif method_name == "pso":
        method = PSOSearch(population=args.pso_population)
    else:
        method = GenerativeSearch(ckpt=args.ckpt, batch=max(1, args.chunk))
    work = Path(args.work)
    t0 = time.time()
    res = run_search(phase.formula, phase.pressure_gpa, method, budget, str(work / f"{phase.key}.db"),
                     work / phase.key / f"{method_name}-seed{seed}", potential, formula_units=[phase.formula_units],
                     seed=seed, relax_options=opts, chunk=args.chunk, progress=False,
                     stop_when=lambda c: c.ok and matches(c.atoms, reference, "loose"))
    first = {}
    for kind in ("loose", "medium", "strict"):
        first[kind] = next((c.index + 1 for c in sorted(res.candidates, key=lambda c: c.index)
                            if c.ok and matches(c.atoms, reference, kind)), None)
    return {
        "method": method_name, "seed": seed, "budget": budget, "relaxed": res.n_done,
        "n_ok": sum(c.ok for c in res.candidates), "to_locate": first,
        "best_enthalpy_per_atom": None if res.best is None else res.best.enthalpy_per_atom,
        "wall_s": round(time.time() - t0, 1), "search_id": res.search_id,
    }


def summarise(runs, budget):
    """Mean structures to locate over the seeds that found it, and the censored mean
    (a seed that did not find it counts as its budget; then the mean is a lower bound)."""
    out = {}
    for kind in ("loose", "medium", "strict"):
        vals = [r["to_locate"][kind] for r in runs]
        found = [v for v in vals if v is not None]
        censored = [v if v is not None else r["relaxed"] for v, r in zip(vals, runs)]
        out[kind] = {
            "found": len(found), "seeds": len(vals),
            "mean_found": (sum(found) / len(found)) if found else None,
            "mean_censored": (sum(censored) / len(censored)) if censored else None,
            "lower_bound": any(v is None for v in vals),
        }
    return out


def eos_note():
    """CHGNet/SevenNet vs PBE volume of bcc Li at 50 GPa from reports/eos_li.json (if present)."""
    path = REPO / "reports" / "eos_li.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        rows = data.get("rows") or data.get("results") or []
        pick = {}
        for r in rows:
            if r.get("structure") == "bcc-Li" and float(r.get("pressure_gpa", r.get("P", -1))) == 50.0:
                pick[r.get("method") or r.get("level_of_theory")] = r.get("volume_per_atom", r.get("V"))
        return pick or None
    except Exception:
        return None


def fmt(v, nd=1):
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def markdown(args, results, level):
    lines = ["# Known high-pressure phases: structures needed to locate them", ""]
    if args.reduced:
        lines += [
            f"**Reduced run** (2 shared CPU cores): targets {', '.join(args.target_list)}; methods "
            f"{', '.join(args.method_list)}; budget {args.budget} structures per search"
            + (f" (per-target: {args.budgets})" if args.budgets else "")
            + f"; seeds {', '.join(map(str, args.seed_list))}"
            + (f" (per-target: {args.target_seeds})" if args.target_seeds else "")
            + f"; PSO population {args.pso_population}; ≤ {args.steps} relaxation steps. "
            "The full benchmark is `python scripts/bench_hp_phases.py --full --ckpt MODEL.ckpt` "
            f"(all 8 targets, {FULL['budget']} structures, 5 seeds). With budgets this small, a miss says little and a "
            "mean over 2 seeds is noisy: read the numbers as a smoke test of the pipeline, not as a ranking of methods.",
            "",
        ]
    lines += [
        f"Potential: **{level}** (every method relaxes with the same potential: FIRE, fmax {args.fmax} eV/Å, "
        f"≤ {args.steps} steps, FrechetCellFilter at the target pressure). A structure counts as located when a relaxed "
        "candidate matches the relaxed known structure with Cond-CDVAE's loose tolerances (pymatgen StructureMatcher "
        "stol 0.5, ltol 0.3, angle_tol 10°); medium (0.3/0.2/5°) and strict (0.2/0.1/5°) are evaluated on the same "
        "candidates (the search stops at the first loose match, so a later medium/strict match may be missed). "
        "'mean' is over the seeds that found it; 'censored' counts a miss as the structures relaxed (a lower bound, "
        "marked ≥). A candidate whose relaxation does not converge within the step limit counts as relaxed but "
        "'failed' and cannot match: relaxations from random structures into dense phases often need 100–300 FIRE "
        "steps, so a low step limit lowers the hit rate.", "",
        "Known structures: pymatgen's AFLOW prototype library (`aflow_prototypes.json.gz`), element-substituted and "
        "scaled to covalent-radius bond lengths, then relaxed with the potential at the target pressure.", "",
        "## Does the potential keep the known phase?", "",
        "| target | P (GPa) | Z | AFLOW | converged | V start → relaxed (Å³/atom) | space group after | same phase (loose/medium/strict) | H (eV/atom) | best H found − H(known) (meV/atom) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in results["targets"]:
        ref = t["reference"]
        sp = ref["same_phase"]
        bests = [r["best_enthalpy_per_atom"] for r in t["runs"] if r["best_enthalpy_per_atom"] is not None]
        dh = (min(bests) - ref["enthalpy_per_atom"]) * 1000 if bests and ref["enthalpy_per_atom"] is not None else None
        lines.append(
            f"| {t['name']} | {t['pressure_gpa']:g} | {t['formula_units']} | {t['aflow']} | {ref['converged']} | "
            f"{ref['volume_per_atom_start']:.2f} → {ref['volume_per_atom']:.2f} | {ref['space_group_relaxed']} | "
            f"{'/'.join('yes' if sp[k] else 'no' for k in ('loose', 'medium', 'strict'))} | "
            f"{fmt(ref['enthalpy_per_atom'], 4)} | {fmt(dh, 0)} |")
    lines += ["", "## Structures relaxed before the first match", "",
              "| target | method | seeds found (loose) | mean (loose) | censored mean (loose) | medium found / mean | strict found / mean | per seed (loose) | relaxed / failed | best H (eV/atom) | published: Cond-CDVAE (CALYPSO) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in results["targets"]:
        for m, s in t["summary"].items():
            per_seed = ", ".join(f"s{r['seed']}: {r['to_locate']['loose'] or '>' + str(r['relaxed'])}"
                                 for r in t["runs"] if r["method"] == m)
            lo = s["loose"]
            mruns = [r for r in t["runs"] if r["method"] == m]
            n_rel = sum(r["relaxed"] for r in mruns)
            n_fail = n_rel - sum(r["n_ok"] for r in mruns)
            bests = [r["best_enthalpy_per_atom"] for r in mruns if r["best_enthalpy_per_atom"] is not None]
            lines.append(
                f"| {t['name']} | {m} | {lo['found']}/{lo['seeds']} | {fmt(lo['mean_found'])} | "
                f"{('≥' if lo['lower_bound'] else '') + fmt(lo['mean_censored'])} | "
                f"{s['medium']['found']}/{s['medium']['seeds']} / {fmt(s['medium']['mean_found'])} | "
                f"{s['strict']['found']}/{s['strict']['seeds']} / {fmt(s['strict']['mean_found'])} | {per_seed} | "
                f"{n_rel} / {n_fail} | {fmt(min(bests) if bests else None, 4)} | {t['anchor']} |")
        if "generative" not in t["summary"]:
            lines.append(f"| {t['name']} | generative | not run: no pressure-conditioned checkpoint given (`--ckpt`) | | | | | | | | {t['anchor']} |")
    lines += ["", "## Notes on the potential", ""]
    for t in results["targets"]:
        lines.extend(f"- {n}" for n in t["notes"])
    lines += ["", "Published anchors (all targets): Li cI16 566 (50); α-quartz 62.8 (189); coesite 328 (not found); "
              "rutile-type 5 (90); CaCl2-type 10.2 (61); pyrite-type 28.8 (66); α-B12 74 (392); α-Ga-type B 58 (78) — "
              "Cond-CDVAE mean samples to locate, CALYPSO in brackets. Those numbers come from DFT-level (or "
              "DFT-trained) relaxations and far larger budgets; they are context, not a like-for-like comparison.",
              "", "![structures to locate](hp_phases.png)"]
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    targets = results["targets"]
    methods = sorted({m for t in targets for m in t["summary"]})
    fig, ax = plt.subplots(figsize=(max(5, 2.2 * len(targets)), 4))
    width = 0.8 / (len(methods) + 2)
    x = np.arange(len(targets))
    for k, m in enumerate(methods):
        vals = [t["summary"].get(m, {}).get("loose", {}).get("mean_censored") for t in targets]
        lb = [t["summary"].get(m, {}).get("loose", {}).get("lower_bound", False) for t in targets]
        bars = ax.bar(x + k * width, [v or 0 for v in vals], width, label=f"{m} (this run)")
        for b, v, l in zip(bars, vals, lb):
            if v is not None:
                ax.annotate(("≥" if l else "") + f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.bar(x + len(methods) * width, [t["cond_cdvae"] or 0 for t in targets], width, label="Cond-CDVAE (published)",
           color="0.6")
    ax.bar(x + (len(methods) + 1) * width, [t["calypso"] or 0 for t in targets], width, label="CALYPSO (published)",
           color="0.85", hatch="//")
    ax.set_xticks(x + width * (len(methods) + 1) / 2)
    ax.set_xticklabels([f"{t['name']}\n{t['pressure_gpa']:g} GPa" for t in targets], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("structures relaxed to locate (log)")
    ax.set_title(f"known phases, {results['level_of_theory']}" + (" (reduced run)" if results["reduced"] else ""), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    from gencrystal.potentials import as_potential
    from gencrystal.reporting import REPORTS_DIR, write_report
    from gencrystal.search.known_phases import KNOWN_PHASES

    unknown = [t for t in args.target_list if t not in KNOWN_PHASES]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {sorted(KNOWN_PHASES)}")
    if "generative" in args.method_list and not args.ckpt:
        print("[bench] no --ckpt: method generative skipped (needs a pressure-conditioned checkpoint)")
        args.method_list = [m for m in args.method_list if m != "generative"]
    potential = as_potential(args.potential)
    opts = {"fmax": args.fmax, "steps": args.steps, "workers": args.workers}
    if args.workers > 1:
        potential = args.potential  # workers re-load it by name
    level = as_potential(args.potential).level_of_theory
    eos = eos_note()
    results = {"level_of_theory": level, "reduced": args.reduced, "settings": {
        "targets": args.target_list, "methods": args.method_list, "budget": args.budget, "budgets": args.budget_map,
        "seeds": args.seed_list, "target_seeds": args.seed_map, "pso_population": args.pso_population, "fmax": args.fmax, "steps": args.steps,
        "chunk": args.chunk, "ckpt": args.ckpt}, "targets": []}
    for key in args.target_list:
        phase = KNOWN_PHASES[key]
        budget = args.budget_map.get(key, args.budget)
        print(f"[bench] {phase.name} at {phase.pressure_gpa:g} GPa (Z={phase.formula_units}): relaxing the known structure")
        _, reference, ref_info = relax_reference(phase, potential, opts)
        print(f"[bench]   V {ref_info['volume_per_atom_start']:.2f} -> {ref_info['volume_per_atom']:.2f} Å³/atom, "
              f"{ref_info['space_group_relaxed']}, same phase (loose) {ref_info['same_phase']['loose']}")
        runs = []
        for m in args.method_list:
            for seed in args.seed_map.get(key, args.seed_list):
                r = run_one(phase, m, seed, budget, reference, potential, opts, args)
                print(f"[bench]   {m} seed {seed}: located after {r['to_locate']['loose'] or '>' + str(r['relaxed'])} "
                      f"structures ({r['wall_s']} s)", flush=True)
                runs.append(r)
        summary = {m: summarise([r for r in runs if r["method"] == m], budget) for m in args.method_list}
        notes = []
        if not ref_info["same_phase"]["loose"]:
            notes.append(f"{phase.name}: relaxing the known structure with {level} at {phase.pressure_gpa:g} GPa changes "
                         f"its phase (now {ref_info['space_group_relaxed']}); the search target is the relaxed structure, "
                         "which is not the experimental phase.")
        if not ref_info["converged"]:
            notes.append(f"{phase.name}: the relaxation of the known structure did not converge ({ref_info['error']}).")
        bests = [r["best_enthalpy_per_atom"] for r in runs if r["best_enthalpy_per_atom"] is not None]
        if bests and ref_info["enthalpy_per_atom"] is not None and min(bests) < ref_info["enthalpy_per_atom"] - 0.005:
            notes.append(f"{phase.name}: the searches found structures {1000 * (ref_info['enthalpy_per_atom'] - min(bests)):.0f} "
                         f"meV/atom *below* the known phase with {level}: the potential's ground state at "
                         f"{phase.pressure_gpa:g} GPa is not the known phase.")
        if phase.formula == "Li":
            pbe = None
            if eos:
                pbe = next((v for k, v in eos.items() if k and ("gpaw" in str(k) or str(k) == "dft")), None)
            notes.append(
                f"{phase.name}: relaxed volume {ref_info['volume_per_atom']:.2f} Å³/atom with {level}; PBE gives "
                f"{'%.2f' % pbe if pbe else '≈8.7'} Å³/atom for bcc Li at 50 GPa (reports/eos_li.md; experiment ≈ 8.6). "
                + ("The potential over-compresses Li by about a factor of two at this pressure, so this row measures the "
                   "search on a wrong energy landscape, not the physics of Li." if ref_info["volume_per_atom"] < 6.5
                   else "The volume is within reach of PBE."))
        if not notes:
            notes.append(f"{phase.name}: the known structure stays the same phase after relaxation with {level} "
                         f"(V {ref_info['volume_per_atom']:.2f} Å³/atom); no DFT cross-check was run here.")
        results["targets"].append({
            "key": key, "name": phase.name, "formula": phase.formula, "formula_units": phase.formula_units,
            "pressure_gpa": phase.pressure_gpa, "aflow": phase.aflow_label, "budget": budget, "reference": ref_info,
            "runs": runs, "summary": summary, "anchor": phase.anchor_text(), "cond_cdvae": phase.cond_cdvae_mean,
            "calypso": phase.calypso, "notes": notes,
        })
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    png = Path(REPORTS_DIR) / f"{args.report}.png"
    plot(results, png)
    results["plot"] = str(png.relative_to(REPO))
    jpath, mpath = write_report(args.report, results, markdown(args, results, level))
    print(f"[bench] wrote {jpath}, {mpath}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
