#!/usr/bin/env python
"""Active-learning benchmark: does fine-tuning on DFT labels fix CHGNet's equation of state?

Runs (or resumes) ``gencrystal learn`` for one composition, then relaxes the seed
structure (bcc Li, 2 atoms, by default) at every pressure with

- DFT (the same backend and settings that made the labels),
- the shipped CHGNet 0.3.0 ("before"),
- the committee mean after every iteration ("after"),

and writes ``reports/active_learning.{md,json,png}``: per iteration the DFT labels spent,
the committee spread and the equilibrium-volume error against DFT at each pressure.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_active_learning.py \
        --out outputs/al_li --iterations 4 -- select.n_per_iteration=8 finetune.epochs=30

Everything after ``--`` is a Hydra override of ``conf/learn.yaml``. The loop and the DFT
reference and potential relaxations (``eos_dft.json``, ``eos_mlp.json`` in ``--out``)
resume from ``--out`` after a kill.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def relax_volume(atoms, calc, pressure_gpa: float, fmax: float, steps: int) -> dict:
    """Relax with an ASE calculator at ``pressure_gpa``; volume per atom (Å³) and status."""
    from gencrystal.relax import relax_one

    res = relax_one(atoms, calc, pressure_gpa, "x", optimizer="BFGS", fmax=fmax, steps=steps)
    return {"volume_per_atom": float(res.volume_per_atom), "converged": bool(res.converged),
            "stress_pressure_gpa": float(res.stress_pressure_gpa), "error": res.error, "steps": res.steps}


def mlp_eos(name: str, make_calc, seed, pressures, cache: Path, args, spread=None) -> dict:
    """Equilibrium volume of the seed at every pressure with one potential (cached under ``name``)."""
    from gencrystal.io import write_json

    allres = json.loads(cache.read_text()) if cache.is_file() else {}
    res = allres.setdefault(name, {})
    calc = None
    for p in pressures:
        key = f"{p:g}"
        if key in res:
            continue
        calc = calc or make_calc()
        res[key] = relax_volume(seed, calc, p, args.fmax, args.steps)
        if spread is not None:
            a = seed.copy()
            a.set_cell(a.cell * (res[key]["volume_per_atom"] / (a.get_volume() / len(a))) ** (1 / 3), scale_atoms=True)
            res[key]["stress_std_at_minimum"] = float(spread(a).stress_std)
        allres = json.loads(cache.read_text()) if cache.is_file() else {}
        allres[name] = res
        write_json(allres, cache)
        print(f"{name} {key} GPa: {res[key]['volume_per_atom']:.3f} Å³/atom", flush=True)
    return res


def dft_reference(loop, seed, pressures, cache: Path) -> dict:
    """DFT equilibrium volume of the seed at every pressure (cached in ``cache``)."""
    from gencrystal.io import write_json

    ref = json.loads(cache.read_text()) if cache.is_file() else {}
    for p in pressures:
        key = f"{p:g}"
        if key in ref:
            continue
        t0 = time.perf_counter()
        res = loop.backend.relax(seed, p, sid=f"seed-{key}GPa")
        ref[key] = {"volume_per_atom": float(res.volume_per_atom), "converged": bool(res.converged),
                    "stress_pressure_gpa": float(res.stress_pressure_gpa), "error": res.error,
                    "wall_s": round(time.perf_counter() - t0, 1), "kpts": res.extra.get("kpts")}
        write_json(ref, cache)
        print(f"DFT {key} GPa: {ref[key]['volume_per_atom']:.3f} Å³/atom", flush=True)
    return ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", default="outputs/al_li", help="loop directory (resumable)")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--fmax", type=float, default=0.005, help="eV/Å for the EOS relaxations")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--note", default="", help="free text added to the report (how the run went)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/learn.yaml (after --)")
    args = ap.parse_args(argv)

    from omegaconf import OmegaConf

    from gencrystal.cli import compose
    from gencrystal.learn.committee import is_committee_dir, load_committee
    from gencrystal.learn.loop import ActiveLearningLoop
    from gencrystal.relax import load_potential
    from gencrystal.relax.engine import single_threaded
    from gencrystal.reporting import write_report

    cfg = compose("learn", [f"out={args.out}", f"iterations={args.iterations}", "progress=false", *args.overrides])
    loop = ActiveLearningLoop(cfg)
    t0 = time.perf_counter()
    summary = loop.run()
    loop_wall = time.perf_counter() - t0
    seed = loop.seeds[0]
    pressures = loop.pressures

    hist = {h["iteration"]: h for h in summary["history"]}
    with single_threaded(1):
        ref = dft_reference(loop, seed, pressures, loop.out / "eos_dft.json")
        rows = [{"iteration": "base", "n_labels": 0,
                 "eos": mlp_eos("base", lambda: load_potential(f"chgnet-{loop.finetune.base_model}", device="cpu").calculator(),
                                seed, pressures, loop.out / "eos_mlp.json", args)}]
        for k in range(loop.iterations):
            d = loop.committee_dir(k)
            if not is_committee_dir(d):
                continue
            committee = load_committee(d)
            eos = mlp_eos(f"iteration{k}", committee.calculator, seed, pressures, loop.out / "eos_mlp.json", args,
                          spread=committee.spread)
            rows.append({"iteration": k, "n_labels": committee.meta["n_labels"], "eos": eos})
    for r in rows:
        for p, e in r["eos"].items():
            v_ref = ref[p]["volume_per_atom"]
            e["error_pct"] = 100.0 * (e["volume_per_atom"] - v_ref) / v_ref

    results = {"composition": loop.composition, "seed_formula": seed.get_chemical_formula(),
               "pressures_gpa": pressures, "dft_level_of_theory": loop.backend.level_of_theory,
               "dft_settings": {"ecut_ev": loop.backend.ecut, "kpt_density": loop.backend.kpt_density,
                                "kpts": loop.backend.kpts, "smearing_ev": loop.backend.smearing,
                                "xc": loop.backend.xc, "symmetry": loop.backend.symmetry},
               "dft_reference": ref, "rows": rows, "loop": summary, "loop_wall_s_this_run": round(loop_wall, 1),
               "config": OmegaConf.to_container(cfg, resolve=True), "note": args.note}

    plot = Path("reports/active_learning.png")
    _plot(rows, hist, pressures, plot)
    md = _markdown(results, hist, plot.name)
    write_report("active_learning", results, md)
    print(md)
    return 0


def _plot(rows, hist, pressures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for p in pressures:
        key = f"{p:g}"
        xs = [r["n_labels"] for r in rows]
        ys = [r["eos"][key]["error_pct"] for r in rows]
        ax1.plot(xs, ys, "o-", label=f"{key} GPa")
    ax1.axhspan(-3, 3, color="green", alpha=0.1, label="±3 %")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_xlabel("DFT labels")
    ax1.set_ylabel("volume error vs DFT (%)")
    ax1.set_title("equilibrium volume (0 labels = CHGNet 0.3.0)")
    ax1.legend()
    its = sorted(k for k, h in hist.items() if h.get("stress_std_mean") is not None)
    if its:
        ax2.plot(its, [hist[k]["stress_std_mean"] for k in its], "o-", label="stress spread mean (GPa)")
        ax2.plot(its, [hist[k]["stress_std_max"] for k in its], "s--", label="stress spread max (GPa)")
        ax2.plot(its, [hist[k]["forces_std_max"] for k in its], "^:", label="force spread max (eV/Å)")
        ax2.set_yscale("log")
        ax2.set_xticks(its)
    ax2.set_xlabel("iteration")
    ax2.set_title("spread on frames relaxed by the previous committee", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x, f="{:.3f}"):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f.format(x)


def _markdown(res, hist, plot_name) -> str:
    ps = [f"{p:g}" for p in res["pressures_gpa"]]
    s = res["dft_settings"]
    ft, cand, rel, unc = (res["config"][k] for k in ("finetune", "candidates", "relax", "uncertainty"))
    lines = [
        "# Active learning from DFT: CHGNet committee vs GPAW-PBE",
        "",
        f"Composition {res['composition']}; EOS structure: the seed ({res['seed_formula']}, bcc Li conventional cell "
        "by default) relaxed at each pressure (ASE FrechetCellFilter + BFGS).",
        f"DFT: GPAW {s['xc']} plane waves {s['ecut_ev']:g} eV, k-point density {s['kpt_density']} Å⁻¹ "
        f"(Γ-centred), Fermi-Dirac {s['smearing_ev']} eV, symmetry {s['symmetry']} — `{res['dft_level_of_theory']}`, "
        "the same settings for the labels and the reference. These are test-size settings, not converged "
        "production ones; errors below are against DFT at these settings.",
        f"Loop stop reason: {res['loop']['stop_reason']}. DFT labels in the store: {res['loop']['n_labels']} "
        f"(per iteration: {res['loop']['labels_per_iteration']}; a committee is trained on the labels of its own "
        "and earlier iterations; labels of an iteration cut short by the time limit are counted here but "
        "were never trained on).",
        f"Committee: {ft['n_members']} CHGNet {ft['base_model']} members, bootstrap={ft['bootstrap']}, "
        f"{ft['epochs']} epochs, batch {ft['batch_size']}, Adam lr {ft['learning_rate']}, {ft['criterion']} loss "
        f"(e:f:s = {ft['energy_loss_ratio']}:{ft['force_loss_ratio']}:{ft['stress_loss_ratio']}). "
        f"Per iteration: {cand['perturbations']} perturbed seeds per pressure (volume factor {cand['volume_scale']}, "
        f"rattle {cand['rattle']} Å, strain {cand['strain']}), FIRE ≤ {rel['steps']} steps keeping every "
        f"{rel['frame_every']}th frame, {res['config']['select']['n_per_iteration']} labels; uncertain = force spread > "
        f"{unc['force_threshold']} eV/Å or stress spread > {unc['stress_threshold']} GPa (stop_fraction "
        f"{unc['stop_fraction']}).",
        "Caveat: the EOS structure is the seed the candidates were perturbed from, so this measures how well the "
        "loop fixes the potential where it sampled, not transfer to phases it never saw.",
        *([f"Note: {res['note']}"] if res.get("note") else []),
        "",
        "## Equilibrium volume (Å³/atom) and error against DFT",
        "",
        "| potential | DFT labels | " + " | ".join(f"V({p} GPa) | err {p}" for p in ps) + " |",
        "|---|---|" + "---|---|" * len(ps),
        "| DFT | — | " + " | ".join(f"{res['dft_reference'][p]['volume_per_atom']:.3f} | —" for p in ps) + " |",
    ]
    for r in res["rows"]:
        name = "CHGNet 0.3.0 (before)" if r["iteration"] == "base" else f"committee after iteration {r['iteration']}"
        cells = " | ".join(f"{r['eos'][p]['volume_per_atom']:.3f} | {r['eos'][p]['error_pct']:+.1f} %" for p in ps)
        lines.append(f"| {name} | {r['n_labels']} | {cells} |")
    lines += [
        "",
        "## Per iteration",
        "",
        "Frames of iteration k are relaxed with the committee of iteration k−1 (iteration 0: the base CHGNet, "
        "no spread, selection by diversity only). Spread: force = max over atoms of the committee std (eV/Å); "
        "stress = max Voigt component std (GPa).",
        "",
        "| iteration | frames | uncertain fraction | force spread mean / max (eV/Å) | stress spread mean / max (GPa) "
        "| new DFT labels | labels total | DFT wall (s) | iteration wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(hist):
        h = hist[k]
        lines.append(
            f"| {k} | {h.get('n_frames')} | {_fmt(h.get('uncertain_fraction'), '{:.2f}')} | "
            f"{_fmt(h.get('forces_std_mean'))} / {_fmt(h.get('forces_std_max'))} | "
            f"{_fmt(h.get('stress_std_mean'), '{:.2f}')} / {_fmt(h.get('stress_std_max'), '{:.2f}')} | "
            f"{h.get('n_new_labels', 0)} | {h.get('n_labels_total')} | {h.get('dft_wall_s', '—')} | {h.get('wall_s', '—')} |")
    lines += ["", f"![volume error and spread]({plot_name})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
