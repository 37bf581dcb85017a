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
import time
from pathlib import Path

import numpy as np

REPORT_NAME = "active_learning"
_PROTO = "{{_target_:gencrystal.known_structures.target_structure,key:{}}}"
SYSTEMS: dict[str, dict] = {
    "li": {"name": "Li", "seed": "bcc Li, conventional cubic cell (2 atoms)", "known_id": "Li-bcc", "composition": "Li2",
           "pressures": "[0,25,50,100]", "unsampled": {"fcc Li": "Li-fcc"},
           # the seed (the EOS structure) and two compressed copies (≈ the PBE volumes at 50 and 100 GPa)
           "seeds": "[" + ",".join(f"{{_target_:ase.build.bulk,name:Li,crystalstructure:bcc,a:{a},cubic:true}}"
                                   for a in (3.44, 2.6, 2.38)) + "]"},
    "si": {"name": "Si", "seed": "diamond Si, primitive cell (2 atoms)", "known_id": "Si-diamond", "composition": "Si2",
           "pressures": "[0,25,50,100]", "unsampled": {"β-Sn Si": "Si-betaSn"},
           "seeds": "[" + ",".join(f"{{_target_:ase.build.bulk,name:Si,crystalstructure:diamond,a:{a}}}"
                                   for a in (5.43, 5.0, 4.72)) + "]"},
    "sio2": {"name": "SiO2", "seed": "rutile-type SiO2 (stishovite), 6 atoms, AFLOW prototype A2B_tP6_136_f_a",
             "known_id": "SiO2-stishovite",
             "composition": "Si2O4", "pressures": "[0,25,50,100]", "unsampled": {"α-PbO2 SiO2": "SiO2-aPbO2"},
             "seeds": f"[{_PROTO.format('sio2_rutile')}]"},
    "b": {"name": "B", "seed": "α-B12, 12 atoms, AFLOW prototype A_hR12_166_2h", "known_id": "B-alpha12", "composition": "B12",
          "pressures": "[0,25,50,100]", "unsampled": {"α-Ga B": "target:b_alpha_ga"},
          "seeds": f"[{_PROTO.format('b_alpha12')}]"},
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
            sp = spread(a)
            res[key]["stress_std_at_minimum"] = float(sp.stress_std)
            res[key]["energy_std_at_minimum_mev"] = 1000.0 * float(sp.energy_std)
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


CONVERGED_GPA = 2.0


def convergence_check(backend, structures: dict, factor: float, cache: Path) -> dict:
    """Basis-set and k-point convergence of the stress at the backend's settings.

    For every structure (name → ASE Atoms, unrelaxed) the stress pressure P = −tr(σ)/3 (GPa)
    is computed at the backend's cutoff and k-point density, at ``factor`` times the cutoff
    (same k-grid) and at ``factor`` times the k-point density (same cutoff). ``delta_ecut_gpa``
    and ``delta_k_gpa`` are P(settings) − P(finer); the settings pass when both are below
    ``CONVERGED_GPA`` in magnitude for every structure. Cached in ``cache`` (JSON, one entry
    per settings and structure), so a killed check resumes.
    """
    import dataclasses

    from gencrystal.io import write_json
    from gencrystal.units import ev_per_a3_to_gpa

    res = json.loads(cache.read_text()) if cache.is_file() else {}
    out: dict = {"factor": factor, "threshold_gpa": CONVERGED_GPA, "ecut_ev": float(backend.ecut),
                 "kpt_density": float(backend.kpt_density), "structures": {}}
    for name, atoms in structures.items():
        base_k = backend.kgrid(atoms)
        fine_k = dataclasses.replace(backend, kpt_density=float(backend.kpt_density) * factor).kgrid(atoms)
        variants = {"base": dataclasses.replace(backend, kpts=base_k),
                    "ecut": dataclasses.replace(backend, ecut=float(backend.ecut) * factor, kpts=base_k),
                    "k": dataclasses.replace(backend, kpts=fine_k)}
        key = f"{name}@{backend.ecut:g}eV,k{backend.kpt_density:g},x{factor:g}"
        entry = res.get(key, {})
        for label, be in variants.items():
            if label in entry:
                continue
            a = atoms.copy()
            a.calc = be.calculator(a)
            t0 = time.perf_counter()
            stress = a.get_stress()
            entry[label] = {"pressure_gpa": -ev_per_a3_to_gpa(float(stress[:3].mean())),
                            "energy_ev_per_atom": float(a.get_potential_energy() / len(a)),
                            "ecut_ev": float(be.ecut), "kpts": "x".join(map(str, be.kgrid(a))),
                            "wall_s": round(time.perf_counter() - t0, 1)}
            res[key] = entry
            write_json(res, cache)
        entry["volume_per_atom"] = float(atoms.get_volume() / len(atoms))
        entry["delta_ecut_gpa"] = entry["base"]["pressure_gpa"] - entry["ecut"]["pressure_gpa"]
        entry["delta_k_gpa"] = entry["base"]["pressure_gpa"] - entry["k"]["pressure_gpa"]
        entry["passed"] = bool(abs(entry["delta_ecut_gpa"]) < CONVERGED_GPA and abs(entry["delta_k_gpa"]) < CONVERGED_GPA)
        res[key] = entry
        write_json(res, cache)
        out["structures"][name] = entry
        print(f"convergence {name} (V = {entry['volume_per_atom']:.3f} Å³/atom): P = {entry['base']['pressure_gpa']:+.2f} GPa "
              f"at {backend.ecut:g} eV, k {entry['base']['kpts']}; {entry['ecut']['ecut_ev']:g} eV: ΔP = "
              f"{entry['delta_ecut_gpa']:+.2f} GPa; k {entry['k']['kpts']}: ΔP = {entry['delta_k_gpa']:+.2f} GPa "
              f"-> {'converged' if entry['passed'] else 'NOT converged'} (< {CONVERGED_GPA:g} GPa)", flush=True)
    out["passed"] = all(e["passed"] for e in out["structures"].values())
    return out


def scaled_to(atoms, volume_per_atom: float):
    """A copy of ``atoms`` scaled isotropically to ``volume_per_atom`` (Å³/atom)."""
    a = atoms.copy()
    a.set_cell(a.cell * (volume_per_atom / (a.get_volume() / len(a))) ** (1 / 3), scale_atoms=True)
    return a


def evaluation_cost(committee, repeats: int = 10) -> dict:
    """Wall time (ms, median of ``repeats``, interleaved, 1 thread) of one energy+forces+stress
    evaluation of a 16-atom bcc Li cell: CHGNet 0.3.0, the committee mean (one pass, energy
    spread included) and the committee with force and stress spreads (one pass per head)."""
    from ase.build import bulk

    from gencrystal.potentials import load_potential

    atoms = bulk("Li", "bcc", a=2.75, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.02, seed=0)
    calcs = {"chgnet": load_potential("chgnet-0.3.0", device="cpu").calculator(),
             "committee_mean": committee.calculator(spread="energy"), "committee_full_spread": committee.calculator()}
    times: dict[str, list[float]] = {k: [] for k in calcs}
    for i in range(repeats + 1):
        for k, calc in calcs.items():
            a = atoms.copy()
            a.positions[0, 0] += 1e-4 * i  # a new structure each time: no cached result
            a.calc = calc
            t0 = time.perf_counter()
            a.get_potential_energy(), a.get_forces(), a.get_stress()
            if i:  # the first call warms up
                times[k].append(1000 * (time.perf_counter() - t0))
    return {"structure": "bcc Li, 16 atoms", "repeats": repeats, "n_heads": len(committee),
            **{f"{k}_ms": round(float(np.median(v)), 1) for k, v in times.items()}}


def label_summary(path: Path) -> dict:
    """Count, volume range (Å³/atom), DFT stress-pressure range (GPa), k-grids and DFT wall time
    (s) of a loop's label store."""
    from gencrystal.learn.labels import LabelStore

    return _summarise_labels(LabelStore(path).labels)


def shipped_label_summary(committee_dir: Path, elements: set[str]) -> dict:
    """:func:`label_summary` of the shipped committee's labels (``labels.db``) of one system: the
    rows whose elements are exactly ``elements``."""
    from gencrystal.db.schema import connect
    from gencrystal.learn.labels import read_label_db

    labels = read_label_db(connect(str(Path(committee_dir) / "labels.db")))
    return _summarise_labels([a for a in labels if set(a.get_chemical_symbols()) == elements])


def _summarise_labels(labels: list) -> dict:
    from gencrystal.units import ev_per_a3_to_gpa

    if not labels:
        return {"n": 0}
    v = [float(a.get_volume() / len(a)) for a in labels]
    p = [-ev_per_a3_to_gpa(float(np.mean(a.calc.results["stress"][:3]))) for a in labels]
    return {"n": len(labels), "volume_per_atom": [round(min(v), 2), round(max(v), 2)],
            "dft_pressure_gpa": [round(min(p), 1), round(max(p), 1)],
            "relax_pressures_gpa": sorted({float(a.info.get("pressure_gpa", 0.0)) for a in labels}),
            "kpts": sorted({str(a.info.get("dft_kpts", "?")) for a in labels}),
            "dft_wall_s": round(sum(float(a.info.get("dft_wall_s", 0.0)) for a in labels), 1)}


def shipped_eos(args) -> dict:
    """EOS of the system's phases (the loop's seed and the phases it never sampled) with DFT (the
    labels' settings), CHGNet 0.3.0 and the shipped committee ``args.shipped``; cached in the
    loop folder (``eos_dft_<phase>.json``, ``eos_shipped.json``)."""
    from omegaconf import OmegaConf

    from gencrystal.config import compose
    from gencrystal.known_structures import _primitive, prototypes, target_structure
    from gencrystal.learn.loop import ActiveLearningLoop
    from gencrystal.potentials import load_potential
    from gencrystal.potentials.shared_trunk import load_shared_trunk
    from gencrystal.relax.engine import single_threaded
    from gencrystal.reporting import run_metadata

    sysd = SYSTEMS[args.system]
    out = args.out or f"outputs/al_{args.system}"
    preset = [f"composition={sysd['composition']}", f"pressures={sysd['pressures']}"]
    if sysd["seeds"]:
        preset.append(f"seeds={sysd['seeds']}")
    cfg = compose("learn", [*preset, f"out={out}", f"iterations={args.iterations}", "progress=false", *args.overrides])
    loop = ActiveLearningLoop(cfg)  # only for its backend, seed and folder: nothing is run
    eos_p = [float(p) for p in args.eos_pressures.split(",")] if args.eos_pressures else loop.pressures
    protos = {a.info["id"]: a for a in prototypes()}
    phases = {sysd["seed"].split(",")[0]: (loop.seeds[0], True)}
    known_ids = {sysd["seed"].split(",")[0]: sysd["known_id"]}
    known_ids.update({name: protos[pid].info["id"] if pid in protos else target_structure(pid.removeprefix("target:")).info.get("id", pid)
                      for name, pid in sysd.get("unsampled", {}).items()})
    phases.update({name: (target_structure(pid.removeprefix("target:")) if pid.startswith("target:")
                          else _primitive(protos[pid]), False)
                   for name, pid in sysd.get("unsampled", {}).items()})
    t0 = time.perf_counter()
    refs = {}
    with single_threaded(1):  # DFT first (the seed's is shared with the loop's EOS, eos_dft.json)
        for name, (atoms, sampled) in phases.items():
            tag = name.replace(" ", "_").replace("β", "beta")
            refs[name] = dft_reference(loop, atoms, eos_p, loop.out / ("eos_dft.json" if sampled else f"eos_dft_{tag}.json"))
        seed_name = next(iter(phases))
        p_max = f"{max(eos_p):g}"
        conv = convergence_check(loop.backend, {"seed": loop.seeds[0], f"seed at the {p_max} GPa DFT volume":
                                                scaled_to(loop.seeds[0], refs[seed_name][p_max]["volume_per_atom"])},
                                 args.convergence_factor, loop.out / "convergence_check.json")
    if args.dft_only:
        return {}
    committee = load_shared_trunk(args.shipped, "cpu")
    result = {}
    with single_threaded(1):
        for name, (atoms, sampled) in phases.items():
            tag = name.replace(" ", "_").replace("β", "beta")
            ref = refs[name]
            base = mlp_eos(f"base_{tag}", lambda: load_potential("chgnet-0.3.0", device="cpu").calculator(),
                           atoms, eos_p, loop.out / "eos_shipped.json", args)
            ours = mlp_eos(f"shipped_{tag}", lambda: committee.calculator(spread="energy"), atoms, eos_p,
                           loop.out / "eos_shipped.json", args, spread=committee.spread)
            rows = {}
            for p in sorted(eos_p):
                k = f"{p:g}"
                v = ref[k]["volume_per_atom"]
                rows[k] = {"dft": v, "dft_converged": ref[k]["converged"], "chgnet": base[k]["volume_per_atom"],
                           "committee": ours[k]["volume_per_atom"],
                           "chgnet_error_pct": 100 * (base[k]["volume_per_atom"] - v) / v,
                           "committee_error_pct": 100 * (ours[k]["volume_per_atom"] - v) / v,
                           "committee_stress_std_gpa": ours[k].get("stress_std_at_minimum"),
                           "committee_energy_std_mev": ours[k].get("energy_std_at_minimum_mev")}
            result[name] = {"sampled_by_loop": sampled, "natoms": len(atoms), "formula": atoms.get_chemical_formula(),
                            "known_id": known_ids[name],
                            "eos": rows}
    return {"committee": str(args.shipped), "level_of_theory": committee.meta.get("level_of_theory"),
            "convergence_check": conv, "labels": shipped_label_summary(Path(args.shipped), set(loop.seeds[0].get_chemical_symbols())),
            "cost": evaluation_cost(committee) if args.system == "li" else None,
            "loop_config": {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("candidates", "relax", "select")},
            "n_labels": committee.meta.get("n_labels"), "n_heads": len(committee),
            "dft_level_of_theory": loop.backend.level_of_theory,
            "dft_settings": {"ecut_ev": loop.backend.ecut, "kpt_density": loop.backend.kpt_density,
                             "smearing_ev": loop.backend.smearing, "xc": loop.backend.xc},
            "phases": result, "wall_s": round(time.perf_counter() - t0, 1), "note": args.note,
            "metadata": run_metadata()}


def load_report(reports: Path) -> dict:
    """``<reports>/active_learning.json`` as ``{"systems": {key: result}}`` (the one-system
    layout of the first version, a Li run, is read as ``systems["li"]``)."""
    path = reports / f"{REPORT_NAME}.json"
    if not path.is_file():
        return {"systems": {}}
    data = json.loads(path.read_text())
    if "systems" in data:
        data.setdefault("shipped", {})
        return data
    key = next((k for k, s in SYSTEMS.items() if s["composition"] == data.get("composition")), data.get("composition"))
    return {"systems": {key: data}}


def run_system(args) -> dict:
    """Loop + EOS for ``args.system``; the result dict stored under ``systems[args.system]``."""
    from omegaconf import OmegaConf

    from gencrystal.config import compose
    from gencrystal.fanout import single_threaded
    from gencrystal.learn.loop import ActiveLearningLoop
    from gencrystal.potentials import load_potential
    from gencrystal.potentials.committee import is_committee_dir, load_committee
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
        conv = None
        if args.convergence_factor > 1.0:
            p_max = f"{max(eos_p):g}"
            conv = convergence_check(loop.backend, {"seed": seed, f"seed at the {p_max} GPa DFT volume":
                                                    scaled_to(seed, ref[p_max]["volume_per_atom"])},
                                     args.convergence_factor, loop.out / "convergence_check.json")
        cut = None if conv else cutoff_check(loop.backend, seed, args.cutoff_check, loop.out / "cutoff_check.json")
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
            "dft_reference": ref, "rows": rows, "loop": summary, "cutoff_check": cut, "convergence_check": conv,
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
    ap.add_argument("--convergence-factor", type=float, default=1.5,
                    help="check the stress at this multiple of the cutoff and of the k-point density "
                         f"(< {CONVERGED_GPA:g} GPa = converged); 0 = only the old cutoff check")
    ap.add_argument("--shipped", default=None,
                    help="a shared-trunk committee folder (checkpoints/hp_committee): compute the EOS of the system's "
                         "phases with it, CHGNet and DFT instead of running the loop")
    ap.add_argument("--dft-only", action="store_true",
                    help="with --shipped: only compute (and cache) the DFT reference EOS, write no report")
    ap.add_argument("--note", default="", help="free text added to the report (how the run went)")
    ap.add_argument("--report-only", action="store_true", help="rebuild md/png from reports/active_learning.json")
    ap.add_argument("--reports-dir", default=None, help="where the report goes and is read from (default reports/)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/learn.yaml (after --)")
    args = ap.parse_args(argv)

    from gencrystal.reporting import REPORTS_DIR, run_metadata, write_report

    reports = Path(args.reports_dir) if args.reports_dir else Path(REPORTS_DIR)
    report = load_report(reports)
    if args.shipped and args.dft_only:
        shipped_eos(args)
        return 0
    if args.shipped and not args.report_only:
        report.setdefault("shipped", {})[args.system] = shipped_eos(args)
    elif not args.report_only:
        report["systems"][args.system] = run_system(args)
    systems = {k: report["systems"][k] for k in SYSTEMS if k in report["systems"]}
    shipped = {k: report["shipped"][k] for k in SYSTEMS if k in report.get("shipped", {})}
    plot = reports / f"{REPORT_NAME}.png"
    _plot(systems, plot)
    md = _markdown(systems, plot.name, shipped)
    write_report(REPORT_NAME, {"systems": systems, "shipped": shipped, "metadata": run_metadata()}, md,
                 reports_dir=reports)
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
    from gencrystal.io import atomic_write

    with atomic_write(path, "wb") as fh:  # (a kill mid-write leaves no half-written plot)
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def _fmt(x, f="{:.3f}"):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f.format(x)


def _minutes(s) -> str:
    return "—" if s is None else f"{float(s) / 60:.1f} min"


ALL_P = ("0", "25", "50", "100")


PULAY_WARN_GPA = 10.0


def _convergence_cell(conv: dict) -> str:
    worst_e = max(conv["structures"].values(), key=lambda e: abs(e["delta_ecut_gpa"]))["delta_ecut_gpa"]
    worst_k = max(conv["structures"].values(), key=lambda e: abs(e["delta_k_gpa"]))["delta_k_gpa"]
    return (f"cutoff {worst_e:+.2f}, k {worst_k:+.2f} ({conv['factor']:g}× each; "
            f"{'converged' if conv['passed'] else 'NOT converged ⚠'})")


def _cutoff_cell(cut: dict | None, conv: dict | None = None) -> str:
    if conv:
        return _convergence_cell(conv)
    if not cut:
        return "not run"
    warn = " ⚠" if abs(cut["delta_gpa"]) > PULAY_WARN_GPA else ""
    return f"{cut['delta_gpa']:+.1f} ({cut['ecut_low_ev']:g} vs {cut['ecut_high_ev']:g} eV){warn}"


def _summary_lines(systems: dict) -> list[str]:
    lines = [
        "| system (seed) | DFT labels (loop) | iterations | " + " | ".join(f"err {p} GPa before → after" for p in ALL_P)
        + " | DFT convergence ΔP (GPa) | loop wall | DFT EOS wall |",
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
                     + f" | {_cutoff_cell(res.get('cutoff_check'), res.get('convergence_check'))} | {_minutes(res.get('loop_wall_s'))} "
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
        *[f"Convergence check ({name}, unrelaxed, V = {e['volume_per_atom']:.3f} Å³/atom): stress pressure "
          f"{e['base']['pressure_gpa']:+.2f} GPa at {res['convergence_check']['ecut_ev']:g} eV / k {e['base']['kpts']}; "
          f"{e['ecut']['ecut_ev']:g} eV: ΔP = {e['delta_ecut_gpa']:+.2f} GPa; k {e['k']['kpts']}: ΔP = "
          f"{e['delta_k_gpa']:+.2f} GPa → {'converged' if e['passed'] else 'NOT converged'} "
          f"(< {res['convergence_check']['threshold_gpa']:g} GPa)."
          for name, e in ((res.get("convergence_check") or {}).get("structures") or {}).items()],
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
    levels: dict = {}
    for res in systems.values():
        s = res["dft_settings"]
        conv = res.get("convergence_check")
        key = (res["dft_level_of_theory"], s["kpt_density"], bool(conv and conv["passed"]))
        levels.setdefault(key, (s, conv, []))[2].append(res.get("system", res["composition"]))
    out = []
    for (level, _, ok), (s, conv, names) in levels.items():
        verdict = (f"Converged: the stress moves by less than {conv['threshold_gpa']:g} GPa at {conv['factor']:g}× the "
                   f"cutoff and at {conv['factor']:g}× the k-point density (checked per system, below)." if ok else
                   "These are test-size settings, not converged production ones; errors are against DFT at these settings.")
        out.append(f"DFT for {', '.join(names)}: GPAW {s['xc']}, plane waves {s['ecut_ev']:g} eV, k-point density "
                   f"{s['kpt_density']} Å⁻¹ (Γ-centred), Fermi-Dirac {s['smearing_ev']} eV, symmetry {s['symmetry']} "
                   f"(`{level}`), the same settings for the labels and the reference. {verdict}")
    return out


def _shipped_lines(shipped: dict) -> list[str]:
    if not shipped:
        return []
    first = next(iter(shipped.values()))
    lines = [
        "## The shipped committee (`potential=hp_committee`) against GPAW-PBE",
        "",
        f"`{first['committee']}` ({first['level_of_theory']}, {first['n_heads']} readout heads on one fine-tuned "
        f"CHGNet trunk, {first['n_labels']} DFT labels). Each phase relaxed (ASE FrechetCellFilter + BFGS) at each "
        "pressure with DFT at the labels' settings, with CHGNet 0.3.0 and with the committee mean; error = "
        "(V − V_DFT)/V_DFT of the volume per atom. Spread = the committee's energy (meV/atom) and stress (GPa) "
        "spread at its own minimum. 'sampled' = the loop drew its candidates from this phase; the other phase "
        "is transfer.",
        "",
        "| system | phase | sampled by the loop | P (GPa) | V DFT (Å³/atom) | CHGNet 0.3.0 err | committee err | "
        "spread E (meV/atom) | spread σ (GPa) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, res in shipped.items():
        for phase, ph in res["phases"].items():
            for p, r in ph["eos"].items():
                lines.append(f"| {SYSTEMS[key]['name']} | {phase} | {'yes' if ph['sampled_by_loop'] else 'no'} | {p} | "
                             f"{r['dft']:.3f}{'' if r['dft_converged'] else ' ‡'} | {r['chgnet_error_pct']:+.1f} % | "
                             f"**{r['committee_error_pct']:+.1f} %** | {_fmt(r.get('committee_energy_std_mev'), '{:.1f}')} | "
                             f"{_fmt(r.get('committee_stress_std_gpa'), '{:.2f}')} |")
    for res in shipped.values():
        c = res.get("cost")
        if c:
            lines += ["", f"Cost of one energy/forces/stress evaluation ({c['structure']}, 1 thread, median of "
                      f"{c['repeats']}, interleaved, on the shared machine): CHGNet 0.3.0 {c['chgnet_ms']} ms, committee "
                      f"mean with its energy spread {c['committee_mean_ms']} ms, with force and stress spreads of all "
                      f"{c['n_heads']} heads {c['committee_full_spread_ms']} ms."]
    for key, res in shipped.items():
        s = res["dft_settings"]
        meta = res.get("metadata", {})
        lab = res.get("labels") or {}
        lines += ["", f"**{SYSTEMS[key]['name']}**: DFT `{res['dft_level_of_theory']}` (GPAW {s['xc']}, plane waves "
                  f"{s['ecut_ev']:g} eV, k-point density {s['kpt_density']} Å⁻¹ Γ-centred, Fermi-Dirac {s['smearing_ev']} eV), "
                  "the same for the labels and the reference."]
        conv = res.get("convergence_check")
        for name, e in ((conv or {}).get("structures") or {}).items():
            lines.append(f"Convergence ({name}, V = {e['volume_per_atom']:.3f} Å³/atom): P = {e['base']['pressure_gpa']:+.2f} GPa "
                         f"at {conv['ecut_ev']:g} eV, k {e['base']['kpts']}; at {e['ecut']['ecut_ev']:g} eV ΔP = "
                         f"{e['delta_ecut_gpa']:+.2f} GPa; at k {e['k']['kpts']} ΔP = {e['delta_k_gpa']:+.2f} GPa → "
                         f"{'converged' if e['passed'] else 'NOT converged'} (< {conv['threshold_gpa']:g} GPa).")
        if lab.get("n"):
            lines.append(f"Labels (`gencrystal learn`, {lab['n']}): V {lab['volume_per_atom'][0]}–{lab['volume_per_atom'][1]} "
                         f"Å³/atom, DFT pressure {lab['dft_pressure_gpa'][0]:+g} to {lab['dft_pressure_gpa'][1]:+g} GPa, from "
                         f"relaxations at {', '.join(f'{p:g}' for p in lab['relax_pressures_gpa'])} GPa; k-grids "
                         f"{', '.join(lab['kpts'])}; DFT wall {_minutes(lab['dft_wall_s'])}.")
        lines.append(f"EOS wall {_minutes(res['wall_s'])}" + (f"; note: {res['note']}" if res.get("note") else "")
                     + (f". Made by `{meta.get('command')}` at commit `{meta.get('commit')}`, {meta.get('date_utc')}."
                        if meta else "."))
    lines.append("")
    return lines


def _markdown(systems: dict, plot_name: str, shipped: dict | None = None) -> str:
    lines = [
        "# Active learning from DFT: CHGNet committee vs GPAW-PBE",
        "",
        "Does a CHGNet committee fine-tuned on a few DFT labels (`gencrystal learn`) fix the shipped CHGNet's "
        "equation of state? Error = (V_potential − V_DFT) / V_DFT of the seed structure's equilibrium volume per "
        "atom at each pressure; before = CHGNet 0.3.0, after = the committee mean of the last iteration.",
        "",
        *_shipped_lines(shipped or {}),
        "## The loops",
        "",
        *([f"The shipped committee's systems ({', '.join(SYSTEMS[k]['name'] for k in shipped)}) were labelled at the "
           "converged settings above; their loops are summarised there, and the earlier 250 eV loops of those systems "
           "are superseded (git history). The loops below ran at 250 eV; read their DFT convergence column first.", ""]
          if shipped else []),
        *_summary_lines(systems),
        "",
        "† pressure not sampled by the loop (transfer, not fit). ‡ the DFT reference relaxation did not reach its "
        "force threshold. \"not computed\": that EOS pressure was not run (budget). DFT convergence: the stress "
        "pressure at the labels' settings minus that at 1.5× the cutoff (same k-grid) and at 1.5× the k-point "
        f"density (same cutoff), on the seed and on the seed at its most compressed DFT volume; converged = both below "
        f"{CONVERGED_GPA:g} GPa. Older runs carry only a cutoff check (the seed at twice the cutoff); ⚠ = more than "
        f"{PULAY_WARN_GPA:g} GPa: the DFT volumes of that system are then not PBE volumes, and the 'errors' measure "
        "only how well the committee reproduces that unconverged DFT.",
        "",
        *_dft_lines(systems),
        "",
        "Caveat: the EOS structure of each loop is the seed its candidates were perturbed from, so the loop tables "
        "measure how well the loop fixes the potential where it sampled; the shipped committee's table above adds "
        "a phase per system that no loop sampled (transfer). These are small CPU runs (tens of DFT labels, 1–4 "
        "iterations, 2-member loop committees), far from a few hundred labels; wall times are on a 2-core machine "
        "shared with other jobs.",
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
    from gencrystal.errors import run_script

    run_script(main)
