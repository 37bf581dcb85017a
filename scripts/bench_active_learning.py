#!/usr/bin/env python
"""Active-learning benchmark: does fine-tuning on DFT labels fix CHGNet's equation of state?

For one system per call (``--system li|si|sio2|b``) runs (or resumes) ``gencrystal learn``,
then relaxes the system's seed structure at every EOS pressure with

- DFT (the same backend and settings that made the labels),
- the shipped CHGNet 0.3.0 ("before"),
- the committee mean after every iteration ("after"),

stores that system's results in ``reports/active_learning.json`` (under ``systems``; the
other systems already there are kept) and rewrites ``reports/active_learning.{md,png}``
for every system in it: a summary table (DFT labels, volume error before → after at each
pressure), then per system the EOS table and the per-iteration labels and committee spread.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_active_learning.py --system si \
        --iterations 2 -- select.n_per_iteration=8 finetune.epochs=20 finetune.n_members=2

Systems (seed = the EOS structure and the structure the candidates are perturbed from):
``li`` bcc Li (2 atoms), ``si`` diamond Si (2-atom primitive cell), ``sio2`` rutile-type
SiO2 / stishovite (6 atoms), ``b`` α-B12 (12 atoms); the last two come from the AFLOW
prototypes in :mod:`gencrystal.known_structures`. Everything after ``--`` is a Hydra
override of ``conf/learn.yaml``. The loop and the DFT reference and potential relaxations
(``eos_dft.json``, ``eos_mlp.json`` in ``--out``) resume from ``--out`` after a kill.
``--report-only`` rebuilds the markdown and plot from the JSON without computing anything.
Pressures are GPa, volumes Å³/atom.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPORT_JSON = Path("reports/active_learning.json")
PLOT = Path("reports/active_learning.png")
_PROTO = "{{_target_:gencrystal.known_structures.target_structure,key:{}}}"
SYSTEMS: dict[str, dict] = {
    "li": {"name": "Li", "seed": "bcc Li, conventional cubic cell (2 atoms)", "composition": "Li2",
           "pressures": "[0,25,50]", "seeds": None},  # conf/learn.yaml's default seed
    "si": {"name": "Si", "seed": "diamond Si, primitive cell (2 atoms)", "composition": "Si2",
           "pressures": "[0,25,50,100]", "seeds": "[{_target_:ase.build.bulk,name:Si,crystalstructure:diamond,a:5.43}]"},
    "sio2": {"name": "SiO2", "seed": "rutile-type SiO2 (stishovite), 6 atoms, AFLOW prototype A2B_tP6_136_f_a",
             "composition": "Si2O4", "pressures": "[0,25,50,100]", "seeds": f"[{_PROTO.format('sio2_rutile')}]"},
    "b": {"name": "B", "seed": "α-B12, 12 atoms, AFLOW prototype A_hR12_166_2h", "composition": "B12",
          "pressures": "[0,25,50,100]", "seeds": f"[{_PROTO.format('b_alpha12')}]"},
}


def relax_volume(atoms, calc, pressure_gpa: float, fmax: float, steps: int) -> dict:
    """Relax with an ASE calculator at ``pressure_gpa``; volume per atom (Å³) and status."""
    from gencrystal.relax import relax_one

    t0 = time.perf_counter()
    res = relax_one(atoms, calc, pressure_gpa, "x", optimizer="BFGS", fmax=fmax, steps=steps)
    return {"volume_per_atom": float(res.volume_per_atom), "converged": bool(res.converged),
            "stress_pressure_gpa": float(res.stress_pressure_gpa), "error": res.error, "steps": res.steps,
            "wall_s": round(time.perf_counter() - t0, 1)}


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
    return {f"{p:g}": res[f"{p:g}"] for p in pressures}


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
                    "wall_s": round(time.perf_counter() - t0, 1), "kpts": res.extra.get("kpts"),
                    "steps": getattr(res, "steps", None)}
        write_json(ref, cache)
        print(f"DFT {key} GPa: {ref[key]['volume_per_atom']:.3f} Å³/atom ({ref[key]['wall_s']} s)", flush=True)
    return {f"{p:g}": ref[f"{p:g}"] for p in pressures}


def cutoff_check(backend, seed, factor: float, cache: Path) -> dict | None:
    """Stress pressure (GPa) of the unrelaxed seed at the backend's cutoff and at ``factor`` times it
    (same k-grid; cached in ``cache``): ``delta_gpa`` = P(ecut) − P(factor·ecut) estimates the
    basis-set (Pulay) error of the stresses the labels and the DFT reference rest on."""
    import dataclasses

    from gencrystal.io import write_json

    if factor <= 1.0:
        return None
    hi = dataclasses.replace(backend, ecut=float(backend.ecut) * factor, kpts=backend.kgrid(seed))
    key = f"{backend.ecut:g}->{hi.ecut:g}"
    res = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in res:
        out = {}
        for name, be in (("low", backend), ("high", hi)):
            a = seed.copy()
            a.calc = be.calculator(a)
            t0 = time.perf_counter()
            out[f"pressure_{name}_gpa"] = float(-a.get_stress()[:3].mean() * 160.21766208)
            out[f"energy_{name}_ev_per_atom"] = float(a.get_potential_energy() / len(a))
            out[f"wall_{name}_s"] = round(time.perf_counter() - t0, 1)
        out.update(ecut_low_ev=float(backend.ecut), ecut_high_ev=float(hi.ecut),
                   delta_gpa=out["pressure_low_gpa"] - out["pressure_high_gpa"],
                   seed_volume_per_atom=float(seed.get_volume() / len(seed)))
        res[key] = out
        write_json(res, cache)
        print(f"cutoff check {key} eV: P = {out['pressure_low_gpa']:.1f} vs {out['pressure_high_gpa']:.1f} GPa", flush=True)
    return res[key]


def load_report() -> dict:
    """``reports/active_learning.json`` as ``{"systems": {key: result}}`` (the one-system
    layout of the first version, a Li run, is read as ``systems["li"]``)."""
    if not REPORT_JSON.is_file():
        return {"systems": {}}
    data = json.loads(REPORT_JSON.read_text())
    if "systems" in data:
        return data
    key = next((k for k, s in SYSTEMS.items() if s["composition"] == data.get("composition")), data.get("composition"))
    return {"systems": {key: data}}


def run_system(args) -> dict:
    """Loop + EOS for ``args.system``; the result dict stored under ``systems[args.system]``."""
    from omegaconf import OmegaConf

    from gencrystal.config import compose
    from gencrystal.potentials.committee import is_committee_dir, load_committee
    from gencrystal.learn.loop import ActiveLearningLoop
    from gencrystal.potentials import load_potential
    from gencrystal.fanout import single_threaded
    from gencrystal.reporting import run_metadata

    sysd = SYSTEMS[args.system]
    out = args.out or f"outputs/al_{args.system}"
    preset = [f"composition={sysd['composition']}", f"pressures={sysd['pressures']}"]
    if sysd["seeds"]:
        preset.append(f"seeds={sysd['seeds']}")
    cfg = compose("learn", [*preset, f"out={out}", f"iterations={args.iterations}", "progress=false", *args.overrides])
    loop = ActiveLearningLoop(cfg)
    t0 = time.perf_counter()
    summary = loop.run()
    loop_wall = time.perf_counter() - t0
    seed = loop.seeds[0]
    eos_p = [float(p) for p in args.eos_pressures.split(",")] if args.eos_pressures else loop.pressures

    t1 = time.perf_counter()
    with single_threaded(1):
        ref = dft_reference(loop, seed, eos_p, loop.out / "eos_dft.json")
        rows = [{"iteration": "base", "n_labels": 0,
                 "eos": mlp_eos("base", lambda: load_potential(f"chgnet-{loop.finetune.base_model}", device="cpu").calculator(),
                                seed, eos_p, loop.out / "eos_mlp.json", args)}]
        for k in range(loop.iterations):
            d = loop.committee_dir(k)
            if not is_committee_dir(d):
                continue
            committee = load_committee(d)
            eos = mlp_eos(f"iteration{k}", committee.calculator, seed, eos_p, loop.out / "eos_mlp.json", args,
                          spread=committee.spread)
            rows.append({"iteration": k, "n_labels": committee.meta["n_labels"], "eos": eos})
        cut = cutoff_check(loop.backend, seed, args.cutoff_check, loop.out / "cutoff_check.json")
    eos_wall = time.perf_counter() - t1
    order = [f"{p:g}" for p in sorted(eos_p)]  # computed in the order given (cheapest first), shown ascending
    ref = {p: ref[p] for p in order}
    for r in rows:
        r["eos"] = {p: r["eos"][p] for p in order}
    for r in rows:
        for p, e in r["eos"].items():
            v_ref = ref[p]["volume_per_atom"]
            e["error_pct"] = 100.0 * (e["volume_per_atom"] - v_ref) / v_ref

    return {"system": sysd["name"], "seed_description": sysd["seed"], "composition": loop.composition,
            "seed_formula": seed.get_chemical_formula(), "seed_natoms": len(seed),
            "pressures_gpa": loop.pressures, "eos_pressures_gpa": sorted(eos_p), "dft_level_of_theory": loop.backend.level_of_theory,
            "dft_settings": {"ecut_ev": loop.backend.ecut, "kpt_density": loop.backend.kpt_density,
                             "kpts": loop.backend.kpts, "smearing_ev": loop.backend.smearing,
                             "xc": loop.backend.xc, "symmetry": loop.backend.symmetry},
            "dft_reference": ref, "rows": rows, "loop": summary, "cutoff_check": cut,
            "loop_wall_s": round(sum(float(h.get("wall_s") or 0.0) for h in summary["history"]), 1),
            "loop_wall_s_this_run": round(loop_wall, 1), "eos_wall_s_this_run": round(eos_wall, 1),
            "dft_eos_wall_s": round(sum(float(v.get("wall_s") or 0.0) for v in ref.values()), 1),
            "config": OmegaConf.to_container(cfg, resolve=True), "note": args.note, "metadata": run_metadata()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--system", choices=sorted(SYSTEMS), default="li", help="which seed/composition (see above)")
    ap.add_argument("--out", default=None, help="loop directory (resumable); default outputs/al_<system>")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--eos-pressures", default="",
                    help="GPa, comma separated, computed in this order; default: the loop's pressures")
    ap.add_argument("--fmax", type=float, default=0.005, help="eV/Å for the EOS relaxations")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--cutoff-check", type=float, default=2.0,
                    help="also compute the seed's stress at this multiple of the DFT cutoff (Pulay check); 0 = skip")
    ap.add_argument("--note", default="", help="free text added to the report (how the run went)")
    ap.add_argument("--report-only", action="store_true", help="rebuild md/png from reports/active_learning.json")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/learn.yaml (after --)")
    args = ap.parse_args(argv)

    from gencrystal.reporting import run_metadata, write_report

    report = load_report()
    if not args.report_only:
        report["systems"][args.system] = run_system(args)
    systems = {k: report["systems"][k] for k in SYSTEMS if k in report["systems"]}
    _plot(systems, PLOT)
    md = _markdown(systems, PLOT.name)
    write_report("active_learning", {"systems": systems, "metadata": run_metadata()}, md)
    print(md)
    return 0


def _last(res: dict) -> dict:
    return res["rows"][-1]


def _plot(systems: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(systems)
    fig, axes = plt.subplots(n, 2, figsize=(10, 3.6 * n), squeeze=False)
    for (key, res), (ax1, ax2) in zip(systems.items(), axes):
        rows = res["rows"]
        hist = {h["iteration"]: h for h in res["loop"]["history"]}
        sampled = {f"{p:g}" for p in res["pressures_gpa"]}
        for p in res["dft_reference"]:
            xs = [r["n_labels"] for r in rows if p in r["eos"]]
            ys = [r["eos"][p]["error_pct"] for r in rows if p in r["eos"]]
            ax1.plot(xs, ys, "o-" if p in sampled else "o:", label=f"{p} GPa" + ("" if p in sampled else " (not sampled)"))
        ax1.axhspan(-3, 3, color="green", alpha=0.1, label="±3 %")
        ax1.axhline(0, color="k", lw=0.5)
        ax1.set_xlabel("DFT labels")
        ax1.set_ylabel("volume error vs DFT (%)")
        cut = res.get("cutoff_check")
        bad = bool(cut) and abs(cut["delta_gpa"]) > PULAY_WARN_GPA
        ax1.set_title(f"{res.get('system', key)}: equilibrium volume (0 labels = CHGNet 0.3.0)"
                      + (f"\n⚠ DFT stress off by {cut['delta_gpa']:+.0f} GPa at {cut['ecut_low_ev']:g} eV (cutoff check)" if bad else ""),
                      fontsize=10, color="C3" if bad else "k")
        ax1.legend(fontsize=8)
        its = sorted(k for k, h in hist.items() if h.get("stress_std_mean") is not None)
        if its:
            ax2.plot(its, [hist[k]["stress_std_mean"] for k in its], "o-", label="stress spread mean (GPa)")
            ax2.plot(its, [hist[k]["stress_std_max"] for k in its], "s--", label="stress spread max (GPa)")
            ax2.plot(its, [hist[k]["forces_std_max"] for k in its], "^:", label="force spread max (eV/Å)")
            ax2.set_yscale("log")
            ax2.set_xticks(its)
            ax2.legend(fontsize=8)
        else:
            ax2.text(0.5, 0.5, "no committee spread yet\n(iteration 0 has no committee)", ha="center", va="center",
                     transform=ax2.transAxes)
        ax2.set_xlabel("iteration")
        ax2.set_title(f"{res.get('system', key)}: spread on frames relaxed by the previous committee", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x, f="{:.3f}"):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f.format(x)


def _minutes(s) -> str:
    return "—" if s is None else f"{float(s) / 60:.1f} min"


ALL_P = ("0", "25", "50", "100")


PULAY_WARN_GPA = 10.0


def _cutoff_cell(cut: dict | None) -> str:
    if not cut:
        return "not run"
    warn = " ⚠" if abs(cut["delta_gpa"]) > PULAY_WARN_GPA else ""
    return f"{cut['delta_gpa']:+.1f} ({cut['ecut_low_ev']:g} vs {cut['ecut_high_ev']:g} eV){warn}"


def _summary_lines(systems: dict) -> list[str]:
    lines = [
        "| system (seed) | DFT labels (loop) | iterations | " + " | ".join(f"err {p} GPa before → after" for p in ALL_P)
        + " | cutoff check ΔP (GPa) | loop wall | DFT EOS wall |",
        "|---|---|---|" + "---|" * len(ALL_P) + "---|---|---|",
    ]
    for res in systems.values():
        base, last = res["rows"][0], _last(res)
        sampled = {f"{p:g}" for p in res["pressures_gpa"]}
        cells = []
        for p in ALL_P:
            if p in base["eos"] and p in last["eos"]:
                mark = "" if p in sampled else " †"
                conv = "" if res["dft_reference"][p]["converged"] else " ‡"
                cells.append(f"{base['eos'][p]['error_pct']:+.1f} % → {last['eos'][p]['error_pct']:+.1f} %{mark}{conv}")
            else:
                cells.append("not computed")
        lines.append(f"| {res.get('system', res['composition'])} ({res['seed_formula']}, {res.get('seed_natoms', '')} atoms) "
                     f"| {last['n_labels']} | {len(res['loop']['history'])} | " + " | ".join(cells)
                     + f" | {_cutoff_cell(res.get('cutoff_check'))} | {_minutes(res.get('loop_wall_s'))} "
                     f"| {_minutes(res.get('dft_eos_wall_s'))} |")
    return lines


def _system_section(key: str, res: dict) -> list[str]:
    ps = list(res["dft_reference"])
    sampled = {f"{p:g}" for p in res["pressures_gpa"]}
    s = res["dft_settings"]
    ft, cand, rel, unc = (res["config"][k] for k in ("finetune", "candidates", "relax", "uncertainty"))
    hist = {h["iteration"]: h for h in res["loop"]["history"]}
    meta = res.get("metadata", {})
    lines = [
        f"## {res.get('system', res['composition'])}",
        "",
        f"Composition {res['composition']}; EOS structure: the seed ({res.get('seed_description', res['seed_formula'])}) "
        "relaxed at each pressure (ASE FrechetCellFilter + BFGS) with DFT and with every potential.",
        f"DFT: GPAW {s['xc']} plane waves {s['ecut_ev']:g} eV, k-point density {s['kpt_density']} Å⁻¹ "
        f"(Γ-centred), Fermi-Dirac {s['smearing_ev']} eV, symmetry {s['symmetry']} — `{res['dft_level_of_theory']}`, "
        "the same settings for the labels and the reference.",
        f"Loop pressures: {', '.join(f'{p:g}' for p in res['pressures_gpa'])} GPa. Loop stop reason: "
        f"{res['loop']['stop_reason']}. DFT labels in the store: {res['loop']['n_labels']} "
        f"(per iteration: {res['loop']['labels_per_iteration']}).",
        f"Committee: {ft['n_members']} CHGNet {ft['base_model']} members, bootstrap={ft['bootstrap']}, "
        f"{ft['epochs']} epochs, batch {ft['batch_size']}, Adam lr {ft['learning_rate']}, {ft['criterion']} loss "
        f"(e:f:s = {ft['energy_loss_ratio']}:{ft['force_loss_ratio']}:{ft['stress_loss_ratio']}). "
        f"Per iteration: {cand['perturbations']} perturbed seeds per pressure (volume factor {cand['volume_scale']}, "
        f"rattle {cand['rattle']} Å, strain {cand['strain']}), FIRE ≤ {rel['steps']} steps keeping every "
        f"{rel['frame_every']}th frame, {res['config']['select']['n_per_iteration']} labels; uncertain = force spread > "
        f"{unc['force_threshold']} eV/Å or stress spread > {unc['stress_threshold']} GPa (stop_fraction "
        f"{unc['stop_fraction']}).",
        *([f"Cutoff check (seed, unrelaxed, V = {cut['seed_volume_per_atom']:.3f} Å³/atom, same k-grid): stress pressure "
           f"{cut['pressure_low_gpa']:+.1f} GPa at {cut['ecut_low_ev']:g} eV vs {cut['pressure_high_gpa']:+.1f} GPa at "
           f"{cut['ecut_high_ev']:g} eV (ΔP = {cut['delta_gpa']:+.1f} GPa; energy {cut['energy_low_ev_per_atom']:.3f} vs "
           f"{cut['energy_high_ev_per_atom']:.3f} eV/atom)."] if (cut := res.get("cutoff_check")) else []),
        f"Wall time: loop {_minutes(res.get('loop_wall_s'))} (sum of the iterations' wall times below), DFT reference "
        f"relaxations {_minutes(res.get('dft_eos_wall_s'))}.",
        *([f"Note: {res['note']}"] if res.get("note") else []),
        "",
        "Equilibrium volume (Å³/atom) and error against DFT"
        + ("; † = a pressure the loop never sampled (transfer, not fit)" if set(ps) - sampled else "") + ":",
        "",
        "| potential | DFT labels | " + " | ".join(f"V({p} GPa){' †' if p not in sampled else ''} | err {p}" for p in ps) + " |",
        "|---|---|" + "---|---|" * len(ps),
        "| DFT | — | " + " | ".join(
            f"{res['dft_reference'][p]['volume_per_atom']:.3f}{'' if res['dft_reference'][p]['converged'] else ' (not converged)'} | —"
            for p in ps) + " |",
    ]
    for r in res["rows"]:
        name = "CHGNet 0.3.0 (before)" if r["iteration"] == "base" else f"committee after iteration {r['iteration']}"
        cells = " | ".join(f"{r['eos'][p]['volume_per_atom']:.3f} | {r['eos'][p]['error_pct']:+.1f} %" for p in ps)
        lines.append(f"| {name} | {r['n_labels']} | {cells} |")
    lines += [
        "",
        "Per iteration (frames of iteration k are relaxed with the committee of iteration k−1; iteration 0: the base "
        "CHGNet, no spread, selection by diversity only):",
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
    if meta:
        lines += ["", f"Made by `{meta.get('command')}` at commit `{meta.get('commit')}`, {meta.get('date_utc')}."]
    lines.append("")
    return lines


def _dft_lines(systems: dict) -> list[str]:
    levels = {}
    for res in systems.values():
        s = res["dft_settings"]
        levels.setdefault(res["dft_level_of_theory"], (s, []))[1].append(res.get("system", res["composition"]))
    return [f"DFT for {', '.join(names)}: GPAW {s['xc']}, plane waves {s['ecut_ev']:g} eV, k-point density "
            f"{s['kpt_density']} Å⁻¹ (Γ-centred), Fermi-Dirac {s['smearing_ev']} eV, symmetry {s['symmetry']} "
            f"(`{level}`), the same settings for the labels and the reference. These are test-size settings, not "
            "converged production ones; errors are against DFT at these settings." for level, (s, names) in levels.items()]


def _markdown(systems: dict, plot_name: str) -> str:
    lines = [
        "# Active learning from DFT: CHGNet committee vs GPAW-PBE",
        "",
        "Does a CHGNet committee fine-tuned on a few DFT labels (`gencrystal learn`) fix the shipped CHGNet's "
        "equation of state? Error = (V_potential − V_DFT) / V_DFT of the seed structure's equilibrium volume per "
        "atom at each pressure; before = CHGNet 0.3.0, after = the committee mean of the last iteration.",
        "",
        *_summary_lines(systems),
        "",
        "† pressure not sampled by the loop (transfer, not fit). ‡ the DFT reference relaxation did not reach its "
        "force threshold. \"not computed\": that EOS pressure was not run (budget). Cutoff check: stress pressure "
        "of the unrelaxed seed at the DFT cutoff minus that at twice the cutoff (same k-grid), an estimate of the "
        f"basis-set (Pulay) stress error of the labels and the reference; ⚠ = more than {PULAY_WARN_GPA:g} GPa: the "
        "DFT volumes of that system are then not PBE volumes, and the 'errors' measure only how well the committee "
        "reproduces that unconverged DFT.",
        "",
        *_dft_lines(systems),
        "",
        "Caveat: the EOS structure of each system is the seed its candidates were perturbed from, so this measures "
        "how well the loop fixes the potential where it sampled, not transfer to phases it never saw. These are "
        "small CPU runs (a few DFT labels, 2–4 iterations, 2-member committees), far from the issue's goal of a few "
        "hundred labels; wall times are on a 2-core machine shared with other jobs.",
        "",
        "Each system's section names the script call that computed it (one call per system; results are kept in "
        "reports/active_learning.json under `systems`); the provenance at the end is that of the last call, which "
        "assembled this file.",
        "",
        f"![volume error and spread]({plot_name})",
        "",
    ]
    for key, res in systems.items():
        lines += _system_section(key, res)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
