#!/usr/bin/env python
"""What a generative model samples at the known-phase targets, before any relaxation.

The known-phase benchmark (``scripts/bench_hp_phases.py``) counts how many relaxed samples
it takes to locate a phase; when the model loses to random search, this report says why:
for each target it draws ``--num-samples`` structures of the target's composition and
formula units at the target's pressure (GPa) from the checkpoint and records, per sample,

- the volume per atom (Å³) against the target's DFT volume at that pressure (from the
  DFT check of ``reports/hp_phases_check.json`` when it holds the target, else the
  catalogue structure's volume, marked): *wrong density?*
- whether the relaxation's input guard (``gencrystal.relax.RelaxGuard``: shortest
  distance, volume per atom) refuses it, as the search would: *unusable samples?*
- its space group (spglib at symprec 0.1 Å) and whether it already matches the known
  phase without relaxation (StructureMatcher, Cond-CDVAE's loose tolerances):
  *wrong symmetry? never the motif?*

    python scripts/bench_hp_samples.py --ckpt checkpoints/gencrystal-hp-csp-heldout.ckpt \\
        [--targets li_ci16,sio2_rutile,...] [--num-samples 100] [--seed 0] [--sampler fast]

Writes ``reports/hp_samples.{json,md,png}`` (``--report``, ``--reports-dir``) with the
command, commit and hardware. Sampling only (no potential, no DFT): about 5 min per target
of 100 samples on one core. Each finished target is kept in ``--work`` (one JSON per target,
checkpoint, sample count, seed and sampler); a killed run, run again, reuses them and
samples only the targets it had not finished.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_TARGETS = "li_ci16,sio2_rutile,sio2_cacl2,sio2_apbo2,sio2_pyrite,b_alpha_ga,b_alpha12"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--ckpt", required=True, help="pressure-conditioned generative checkpoint")
    p.add_argument("--targets", default=DEFAULT_TARGETS, help="comma-separated keys of gencrystal.known_structures.TARGETS")
    p.add_argument("--num-samples", type=int, default=100, help="samples per target")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (one per target: seed + index of the target)")
    p.add_argument("--sampler", default="fast", help="fast | pc | ode (as `gencrystal sample sampler=`)")
    p.add_argument("--check-report", default=str(REPO / "reports" / "hp_phases_check.json"),
                   help="a bench_hp_phases report whose DFT checks give the reference volumes")
    p.add_argument("--report", default="hp_samples", help="report name under reports/")
    p.add_argument("--reports-dir", default=None, help="where the report goes (default reports/)")
    p.add_argument("--work", default=str(REPO / "runs" / "hp_samples"),
                   help="folder of the finished targets' records (a rerun reuses them)")
    a = p.parse_args(argv)
    a.target_list = [t for t in a.targets.split(",") if t]
    return a


def dft_volumes(path: str) -> dict[str, dict]:
    """Target key -> {volume_per_atom, level, pressure_gpa} of the DFT-relaxed targets in a check report."""
    f = Path(path)
    if not f.is_file():
        return {}
    rep = json.loads(f.read_text())
    out = {}
    for t in rep.get("targets", []):
        dft = (t.get("check") or {}).get("dft") or {}
        if dft.get("volume_per_atom") and dft.get("converged", True):
            out[t["key"]] = {"volume_per_atom": float(dft["volume_per_atom"]), "pressure_gpa": t["pressure_gpa"],
                             "level": rep.get("dft_level", dft.get("level_of_theory", "DFT"))}
    return out


def guard_kind(reason: str) -> str:
    """The kind of an input-guard refusal: 'volume', 'distance', 'neighbours' or 'other'."""
    if "Å³/atom" in reason:
        return "volume"
    if "apart" in reason:
        return "distance"
    if "neighbours" in reason:
        return "neighbours"
    return "other"


def describe(frames, reference, v_ref: float) -> dict:
    """Per-sample volumes, guard verdicts, space groups and raw matches; their summary."""
    from gencrystal.known_structures import matches
    from gencrystal.relax.analysis import space_group
    from gencrystal.relax.ase_relax import RelaxGuard

    guard = RelaxGuard()
    ref_sg = space_group(reference)
    rows = []
    for a in frames:
        v = a.get_volume() / len(a)
        why = guard.check_input(a)
        sg = space_group(a) if why is None else ""
        rows.append({"volume_per_atom": v, "ratio": v / v_ref, "guard": why, "space_group": sg,
                     "matches_raw": bool(why is None and matches(a, reference, "loose"))})
    ok = [r for r in rows if r["guard"] is None]
    ratios = sorted(r["ratio"] for r in rows)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    sgs = collections.Counter(r["space_group"] or "?" for r in ok)
    reasons = collections.Counter(guard_kind(r["guard"]) for r in rows if r["guard"])
    return {
        "n": len(rows), "n_usable": len(ok), "guard_reasons": dict(reasons),
        "volume_ratio_median": statistics.median(ratios), "volume_ratio_quartiles": [q[0], q[2]],
        "within_10pct": sum(abs(r["ratio"] - 1) <= 0.10 for r in rows) / len(rows),
        "denser_than_half": sum(r["ratio"] < 0.5 for r in rows) / len(rows),
        "target_space_group": ref_sg,
        "with_target_space_group": sum(r["space_group"] == ref_sg for r in ok),
        "space_groups_top": sgs.most_common(5),
        "p1_fraction_of_usable": (sgs.get("P1 (1)", 0) / len(ok)) if ok else None,
        "matches_raw": sum(r["matches_raw"] for r in rows),
        "samples": rows,
    }


def markdown(args, res: dict) -> str:
    lines = [
        "# What the generative model samples at the known-phase targets (before relaxation)",
        "",
        f"Checkpoint `{res['ckpt']}`; {args.num_samples} samples per target, sampler `{args.sampler}`, seed "
        f"{args.seed} + target index; the target's composition, formula units Z and pressure. Reference volume: "
        "the target relaxed with DFT at its pressure (the converged check of "
        f"`{Path(args.check_report).name}`), or the catalogue cell's volume where that check holds no DFT result "
        "(marked †). A sample is *usable* when the relaxation's input guard accepts it (shortest distance, volume "
        "per atom); space groups by spglib at symprec 0.1 Å; *raw matches*: samples that already match the known "
        "phase unrelaxed (StructureMatcher, stol 0.5, ltol 0.3, angle_tol 10°).",
        "",
        "| target | P (GPa) | Z | V ref (Å³/atom) | usable | guard refusals | V/V_ref median (quartiles) | within ±10 % | "
        "below ½ V_ref | target's space group | usable with it | P1 of usable | most common space groups | raw matches |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
        d = t["samples"]
        top = ", ".join(f"{sg} ×{n}" for sg, n in d["space_groups_top"][:3]) or "–"
        reasons = ", ".join(f"{k} ×{n}" for k, n in d["guard_reasons"].items()) or "–"
        p1 = "–" if d["p1_fraction_of_usable"] is None else f"{100 * d['p1_fraction_of_usable']:.0f} %"
        lines.append(
            f"| {t['name']}{' (extrapolation)' if t['extrapolation'] else ''} | {t['pressure_gpa']:g} | {t['formula_units']} | "
            f"{t['v_ref']:.2f}{'' if t['v_ref_source'] == 'dft' else ' †'} | {d['n_usable']}/{d['n']} | {reasons} | "
            f"{d['volume_ratio_median']:.2f} ({d['volume_ratio_quartiles'][0]:.2f}–{d['volume_ratio_quartiles'][1]:.2f}) | "
            f"{100 * d['within_10pct']:.0f} % | {100 * d['denser_than_half']:.0f} % | {d['target_space_group']} | "
            f"{d['with_target_space_group']} | {p1} | {top} | {d['matches_raw']} |")
    lines += ["", "![sampled volume per atom over the target's](" + res["plot"] + ")", "",
              f"Wall time {res['wall_s']:.0f} s (sampling and analysis, summed over the targets; "
              f"{res['reused_targets']} of {len(res['targets'])} reused from an earlier run of this command)."]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ts = res["targets"]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(ts)), 4))
    data = [np.clip([s["ratio"] for s in t["samples"]["samples"]], 0.05, 5) for t in ts]
    ax.violinplot(data, showmedians=True)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(1, len(ts) + 1), [f"{t['key']}\n{t['pressure_gpa']:g} GPa" for t in ts], fontsize=8)
    ax.set_ylabel("sampled V / V_ref (per atom)")
    ax.set_title("raw samples' density against the target's DFT volume")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from gencrystal.errors import GencrystalError
    from gencrystal.io import write_json
    from gencrystal.known_structures import TARGETS
    from gencrystal.paths import relativize
    from gencrystal.reporting import REPORTS_DIR, run_metadata, write_report
    from gencrystal.sampling import Generator

    unknown = [t for t in args.target_list if t not in TARGETS]
    if unknown:
        raise GencrystalError(f"unknown target(s) {unknown}; choose from {sorted(TARGETS)}")
    if not Path(args.ckpt).is_file():
        raise GencrystalError(f"--ckpt {args.ckpt}: no such checkpoint file")
    if args.num_samples < 2:
        raise GencrystalError(f"--num-samples {args.num_samples}: need at least 2")
    refs = dft_volumes(args.check_report)
    gen = None
    work = Path(args.work)
    try:  # before any sampling: an unusable --work is one line, not a traceback after the first target
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GencrystalError(f"--work {args.work}: cannot create it ({exc.strerror})") from None
    out = {"ckpt": relativize(str(args.ckpt)), "sampler": args.sampler, "num_samples": args.num_samples,
           "seed": args.seed, "targets": [], "reused_targets": 0}
    for i, key in enumerate(args.target_list):
        t = TARGETS[key]
        record = work / f"{key}-{Path(args.ckpt).stem}-n{args.num_samples}-seed{args.seed + i}-{args.sampler}.json"
        if record.is_file():
            row = json.loads(record.read_text())
            out["targets"].append(row)
            out["reused_targets"] += 1
            print(f"[samples] {t.name}: reused {relativize(str(record))}", flush=True)
            continue
        known = t.structure()
        if key in refs:
            v_ref, source = refs[key]["volume_per_atom"], "dft"
        else:
            v_ref, source = known.get_volume() / len(known), "catalogue"
        print(f"[samples] {t.name} at {t.pressure_gpa:g} GPa (Z={t.formula_units}): {args.num_samples} samples", flush=True)
        t0 = time.time()
        if gen is None:
            gen = Generator(args.ckpt, device="cpu", sampler=args.sampler, batch_size=min(50, args.num_samples))
        frames = gen.sample(t.formula, t.pressure_gpa, args.num_samples, seed=args.seed + i, formula_units=[t.formula_units])
        d = describe(frames, known, v_ref)
        print(f"[samples]   usable {d['n_usable']}/{d['n']}, V/V_ref median {d['volume_ratio_median']:.2f}, "
              f"with the target's space group {d['with_target_space_group']}, raw matches {d['matches_raw']}", flush=True)
        row = {"key": key, "name": t.name, "formula": t.formula, "formula_units": t.formula_units,
               "pressure_gpa": t.pressure_gpa, "extrapolation": t.extrapolation, "v_ref": v_ref,
               "v_ref_source": source, "samples": d, "wall_s": round(time.time() - t0, 1)}
        write_json(row, record)  # atomic: a kill leaves the target either whole or absent
        out["targets"].append(row)
    out["wall_s"] = round(sum(float(r.get("wall_s", 0.0)) for r in out["targets"]), 1)
    reports = Path(args.reports_dir) if args.reports_dir else Path(REPORTS_DIR)
    reports.mkdir(parents=True, exist_ok=True)
    png = reports / f"{args.report}.png"
    plot(out, png)
    out["plot"] = png.name
    out["metadata"] = run_metadata()
    jpath, mpath = write_report(args.report, out, markdown(args, out), reports_dir=reports)
    print(f"[samples] wrote {jpath}, {mpath}")
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
