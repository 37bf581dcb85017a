"""The known structures behind the demo (``make demo``) and the shipped model's seed set (Å, GPa).

The demo's command line is :mod:`gencrystal.cli.demo`.

:func:`prototypes` (from :mod:`gencrystal.known_structures`, the one catalogue of known
structures) gives textbook crystal structures of Li, Si, SiO2 and B built from their space
groups and Wyckoff positions; :func:`random_structures` adds pyxtal random symmetric
crystals of the same compositions. Both are deterministic
(seeded), so the seed set ``data/fixtures/hp_seeds.extxyz`` can be rebuilt exactly with
``python scripts/train_default.py seeds``.

The lattice parameters are ambient or near-ambient experimental values; they are
starting points for relaxation at a pressure, not results.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.known_structures import DEMO_REFERENCES, prototypes
from gencrystal.potentials.coverage import potential_coverage, split_by_coverage


def _named(atoms: Atoms, name: str) -> Atoms:
    atoms = atoms.copy()
    atoms.pbc = True
    atoms.info = {"id": name}
    return atoms


def random_structures(specs: Iterable[tuple[str, int, int]], seed: int = 0, max_tries: int = 20) -> list[Atoms]:
    """pyxtal random symmetric crystals.

    Args:
        specs: ``(reduced formula, formula units Z, count)`` triples, e.g. ``("SiO2", 4, 3)``.
        seed: NumPy seed; the same seed gives the same structures.
        max_tries: attempts per structure before giving up on a space group.

    Returns:
        ``count`` structures per spec with ``info['id'] = "<formula>Z<Z>-rand<k>-sg<n>"``.
    """
    from pymatgen.core import Composition
    from pyxtal import pyxtal

    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for formula, z, count in specs:
        comp = Composition(formula)
        species = [str(el) for el in comp.elements]
        numbers = [int(comp[el]) * int(z) for el in comp.elements]
        made = 0
        tries = 0
        while made < count:
            tries += 1
            if tries > max_tries * count:
                raise GencrystalError(f"pyxtal could not make {count} random {formula} Z={z} crystals")
            sg = int(rng.integers(2, 231))
            xtal = pyxtal()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    xtal.from_random(3, sg, species, numbers, factor=1.1, random_state=int(rng.integers(0, 2**31 - 1)))
                except Exception:
                    continue
            if not xtal.valid:
                continue
            atoms = xtal.to_ase()
            if len(atoms) != sum(numbers):
                continue
            out.append(_named(atoms, f"{formula}Z{z}-rand{made}-sg{sg}"))
            made += 1
    return out


#: pyxtal draws behind the shipped model's seed set: (formula, Z, count); the seed set keeps
#: the first structure of each (``rand0``) to fit the CPU time of a shared machine
SEED_RANDOM_SPECS: tuple[tuple[str, int, int], ...] = (
    ("Li", 4, 2),
    ("Li", 8, 3),
    ("Li", 16, 2),
    ("Si", 4, 2),
    ("Si", 8, 3),
    ("SiO2", 2, 2),
    ("SiO2", 3, 2),
    ("SiO2", 4, 3),
    ("B", 8, 2),
    ("B", 12, 2),
)


def seed_structures(seed: int = 0) -> list[Atoms]:
    """The shipped model's relaxation seeds: all :func:`prototypes` plus the first pyxtal draw
    (``rand0``) of each :data:`SEED_RANDOM_SPECS` entry (Li Z=4/8/16, Si Z=4/8, SiO2 Z=2/3/4,
    B Z=8/12).

    The committed ``data/fixtures/hp_seeds.extxyz`` is the reference: its random part was
    drawn before pyxtal got an explicit ``random_state`` (same ids and compositions, other
    coordinates); this function is deterministic from now on."""
    randoms = [a for a in random_structures(SEED_RANDOM_SPECS, seed=seed) if "-rand0-" in a.info["id"]]
    return prototypes() + randoms


# --------------------------------------------------------------------------- the demo
#: the known phases the demo relaxes beside the samples (ids in :mod:`gencrystal.known_structures`)
DEMO_KNOWN: dict[str, tuple[str, ...]] = DEMO_REFERENCES

CAUTION = (
    "CAUTION: CHGNet (like SevenNet) is badly wrong under strong compression - at 50 GPa it "
    "puts bcc Li at 4.05 A^3/atom against PBE's 8.69 (reports/eos_li.md). Treat this ranking "
    "as a pre-screen, not a result: validate the best structures with DFT."
)


def demo_candidates(sample_files: Sequence[str | Path] = (), known: bool = True) -> list[Atoms]:
    """The structures the demo relaxes: every unflagged frame of ``sample_files``
    (``gencrystal sample`` extxyz outputs; ids ``sample:<formula>:<index>``) plus, with
    ``known``, the known phases of :data:`DEMO_KNOWN` (ids ``known:<name>``), whose cells are
    ambient-like starting points. Samples the sampler flagged (atoms closer than 0.5 Å,
    absurd volume) are left out: relaxing such cells is slow and they rank nothing."""
    from ase.io import read

    out: list[Atoms] = []
    for path in sample_files:
        for i, atoms in enumerate(read(str(path), index=":", format="extxyz")):
            if atoms.info.get("flagged"):
                continue
            formula = atoms.get_chemical_formula(mode="metal")
            a = Atoms(atoms.numbers, cell=atoms.cell, scaled_positions=atoms.get_scaled_positions(), pbc=True)
            a.info = {"id": f"sample:{formula}:{int(atoms.info.get('sample_index', i))}", "origin": "sampled"}
            out.append(a)
    if known:
        names = {n for group in DEMO_KNOWN.values() for n in group}
        for atoms in prototypes():
            if atoms.info["id"] in names:
                a = atoms.copy()
                a.info = {"id": f"known:{atoms.info['id']}", "origin": "known"}
                out.append(a)
    if not out:
        raise GencrystalError("the demo has nothing to relax (no samples and known=False)")
    return out


@dataclass
class RankedStructure:
    """One relaxed structure of the demo ranking (eV/atom, Å³/atom, GPa)."""

    id: str
    formula: str
    space_group: str
    enthalpy_per_atom: float
    volume_per_atom: float
    delta_h_mev: float  # H − H_min of its chemical system, meV/atom
    converged: bool
    atoms: Atoms


def committee_spread(ranking: dict[str, list[RankedStructure]], potential: str) -> dict[tuple[str, str], dict]:
    """The committee spread of ``potential`` (a shared-trunk committee name or folder) on every
    ranked structure it relaxed (its ``potential`` info equals the committee's level of theory):
    ``{(formula, id): {"energy_std_mev": meV/atom, "forces_std": eV/Å, "stress_std_gpa": GPa}}``.
    The energy spread is that of the enthalpy too (the heads share the structure, so P·V is common)."""
    from gencrystal.potentials import load_potential

    pot = load_potential(potential, device="cpu")
    if pot.committee is None:
        raise GencrystalError(f"potential {potential!r} is not a committee: it has no spread")
    out = {}
    for red, items in ranking.items():
        for r in items:
            if str(r.atoms.info.get("potential", "")) != pot.level_of_theory:
                continue
            sp = pot.committee.spread(r.atoms)
            out[(red, r.id)] = {
                "energy_std_mev": 1000.0 * sp.energy_std,
                "forces_std": sp.forces_std,
                "stress_std_gpa": sp.stress_std,
            }
    return out


def rank_relaxed(frames: Sequence[Atoms]) -> dict[str, list[RankedStructure]]:
    """Group relaxed frames (``gencrystal relax`` output) by reduced formula and rank them
    by enthalpy per atom. Failed relaxations (an ``error`` other than "not converged":
    NaN, volume guard, calculator failure) and duplicates (``duplicate_of`` set) are left
    out; unconverged ones stay, marked. Returns ``{reduced formula: [best, ...]}``."""
    from pymatgen.core import Composition

    groups: dict[str, list[RankedStructure]] = {}
    for atoms in frames:
        info = atoms.info
        err = str(info.get("error", "") or "")
        if (err and not err.startswith("not converged")) or info.get("duplicate_of") not in (None, "", -1, "-1"):
            continue
        h = float(info.get("enthalpy_per_atom", math.nan))
        if not math.isfinite(h):
            continue
        comp = Composition(atoms.get_chemical_formula(mode="metal"))
        red = comp.reduced_formula
        groups.setdefault(red, []).append(
            RankedStructure(
                id=str(info.get("id", "")),
                formula=comp.formula.replace(" ", ""),
                space_group=str(info.get("space_group", "") or "") or space_group(atoms),
                enthalpy_per_atom=h,
                volume_per_atom=float(atoms.get_volume() / len(atoms)),
                delta_h_mev=0.0,
                converged=bool(info.get("converged", False)),
                atoms=atoms,
            )
        )
    for items in groups.values():
        items.sort(key=lambda r: r.enthalpy_per_atom)
        for r in items:
            r.delta_h_mev = 1000.0 * (r.enthalpy_per_atom - items[0].enthalpy_per_atom)
    return dict(sorted(groups.items()))


def rediscoveries(frames: Sequence[Atoms]) -> list[tuple[str, str]]:
    """``(sample id, known-phase id)`` for every sampled structure (id ``sample:...``) that
    relaxed into the same structure as a known reference phase (``duplicate_of`` set by
    ``gencrystal relax``'s StructureMatcher grouping to an id ``known:...``)."""
    out = []
    for atoms in frames:
        sid, dup = str(atoms.info.get("id", "")), str(atoms.info.get("duplicate_of", "") or "")
        if sid.startswith("sample:") and dup.startswith("known:"):
            out.append((sid, dup))
    return out


def space_group(atoms: Atoms, symprec: float = 0.1) -> str:
    """International symbol and number of ``atoms``, e.g. ``Fm-3m (225)`` (spglib, ``symprec``
    in Å; the format of ``gencrystal relax``), ``?`` when spglib fails."""
    import spglib

    try:
        sg = spglib.get_spacegroup((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=symprec)
    except Exception:
        sg = None
    return sg if sg else "?"


def plot_structure(atoms: Atoms, path: str | Path, title: str) -> None:
    """A PNG of ``atoms`` (ASE ``plot_atoms``, 2×2×2 supercell, two views), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.visualize.plot import plot_atoms

    from gencrystal.io import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    sc = atoms.repeat((2, 2, 2))
    for ax, rot in zip(axes, ("10x,20y,0z", "-80x,0y,0z")):
        plot_atoms(sc, ax, rotation=rot, radii=0.35, show_unit_cell=2)
        ax.set_axis_off()
        ax.set_title(rot, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def summarize(
    relaxed: str | Path | Sequence[str | Path], out: str | Path, pressure_gpa: float, top: int = 8, uncertainty: str | None = None
) -> str:
    """Print and return the demo's enthalpy ranking; write CIFs and the best structures' PNGs.

    Args:
        relaxed: ``relaxed.extxyz`` of ``gencrystal relax`` (or several: one per potential).
        out: demo output folder: ``cif/<system>_<rank>_<formula>_<space group>.cif``,
            ``best_<system>.png``, ``best_<system>.cif``, ``ranking.json``.
        pressure_gpa: the relaxation pressure, GPa (for the text).
        top: rows printed per chemical system.
        uncertainty: a committee potential (``hp_committee``): its spread is printed beside the
            enthalpy of every structure it relaxed (``±H``, meV/atom; the stress spread, GPa).
    """
    from ase.io import read
    from pymatgen.core import Composition

    from gencrystal.io import write_cifs, write_json

    out = Path(out)
    files = [relaxed] if isinstance(relaxed, (str, Path)) else list(relaxed)
    frames = [a for f in files for a in read(str(f), index=":", format="extxyz")]
    ranking = rank_relaxed(frames)
    if not ranking:
        raise GencrystalError(f"no structure in {', '.join(map(str, files))} relaxed successfully")
    spread = committee_spread(ranking, uncertainty) if uncertainty else {}
    lines = [
        f"Enthalpy ranking at {pressure_gpa:g} GPa (H = E + PV; dH relative to the best of each system"
        + ("; +-H = committee spread of the enthalpy, sigma = of the stress" if spread else "")
        + ")"
    ]
    table = {}
    potentials_of: dict[str, str] = {}
    for red, items in ranking.items():
        lines.append("")
        n_all = sum(1 for a in frames if Composition(a.get_chemical_formula(mode="metal")).reduced_formula == red)
        pots = sorted({str(r.atoms.info.get("potential", "") or "?") for r in items})
        potentials_of[red] = ", ".join(pots)
        lines.append(
            f"  {red}: {len(items)} ranked of {n_all} relaxed (duplicates and failed relaxations left out); "
            f"potential: {potentials_of[red]}"
        )
        unc_head = f" {'+-H (meV/at)':>12} {'sigma (GPa)':>11}" if spread else ""
        lines.append(
            f"  {'rank':>4}  {'id':<22} {'formula':<8} {'space group':<12} {'H (eV/atom)':>12}{unc_head} "
            f"{'dH (meV/at)':>11} {'V (A^3/at)':>10}"
        )
        for k, r in enumerate(items[:top]):
            sp = spread.get((red, r.id))
            unc = (
                f" {sp['energy_std_mev']:>12.1f} {sp['stress_std_gpa']:>11.2f}"
                if sp
                else f" {'-':>12} {'-':>11}"
                if spread
                else ""
            )
            lines.append(
                f"  {k + 1:>4}  {r.id:<22} {r.formula:<8} {r.space_group:<12} {r.enthalpy_per_atom:>12.4f}{unc} "
                f"{r.delta_h_mev:>11.1f} {r.volume_per_atom:>10.3f}" + ("" if r.converged else "  (not converged)")
            )
        found = rediscoveries([a for a in frames if Composition(a.get_chemical_formula(mode="metal")).reduced_formula == red])
        for sid, known in found:
            lines.append(f"  {sid} relaxed into {known} (same structure by StructureMatcher): the model found it")
        safe = [
            f"{red}_{k + 1:02d}_{r.formula}_{r.space_group.split(' ')[0].replace('/', '-').replace('?', 'unknown')}"
            for k, r in enumerate(items)
        ]
        write_cifs([r.atoms for r in items], out / "cif", safe)
        best = items[0]
        write_cifs([best.atoms], out, [f"best_{red}"])
        plot_structure(
            best.atoms,
            out / f"best_{red}.png",
            f"best {red} at {pressure_gpa:g} GPa ({potentials_of[red]}): {best.formula} {best.space_group}, "
            f"H = {best.enthalpy_per_atom:.4f} eV/atom, V = {best.volume_per_atom:.2f} A^3/atom",
        )
        table[red] = [
            {
                "id": r.id,
                "formula": r.formula,
                "space_group": r.space_group,
                "enthalpy_per_atom_ev": r.enthalpy_per_atom,
                "delta_h_mev_per_atom": r.delta_h_mev,
                "volume_per_atom_a3": r.volume_per_atom,
                "converged": r.converged,
                "cif": f"cif/{s}.cif",
                "potential": str(r.atoms.info.get("potential", "") or ""),
                **({"committee_spread": spread[(red, r.id)]} if (red, r.id) in spread else {}),
            }
            for r, s in zip(items, safe)
        ]
    write_json(
        {
            "pressure_gpa": pressure_gpa,
            "ranking": table,
            "rediscovered": [{"sample": sid, "known_phase": known} for sid, known in rediscoveries(frames)],
        },
        out / "ranking.json",
    )
    lines.append("")
    for red, items in ranking.items():
        b = items[0]
        lines.append(
            f"Best {red}: {b.formula}, space group {b.space_group}, H = {b.enthalpy_per_atom:.4f} eV/atom, "
            f"V = {b.volume_per_atom:.3f} A^3/atom ({b.id}) -> {out}/best_{red}.cif, {out}/best_{red}.png"
        )
    lines.append(f"All CIFs: {out}/cif/   ranking: {out}/ranking.json")
    lines.append("")
    universal = [red for red, pot in potentials_of.items() if not pot.startswith(("chgnet-committee", "hp-committee"))]
    if spread:
        covered = [red for red in ranking if red not in universal]
        lines.append(
            f"{', '.join(covered)}: relaxed with the committee fine-tuned on converged GPAW-PBE labels "
            "(checkpoints/hp_committee/README.md; its EOS errors against PBE: reports/active_learning.md); "
            "a large +-H or sigma marks a structure unlike its labels."
        )
    if universal:
        lines.append(f"{', '.join(universal)}: " + CAUTION)
    lines.append("Validate the best with DFT (GPAW plane waves, vc-relax at the same pressure; minutes to hours each):")
    for red in ranking:
        lines.append(
            f"  gencrystal validate input={out}/best_{red}.cif dft=gpaw pressure={pressure_gpa:g} top_k=1 out={out}/dft_{red}"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def sample_systems(cfg: Any, seed: int) -> dict[str, list[Atoms]]:
    """Sample every system of a composed ``conf/demo.yaml`` (``cfg.systems``) with the shipped
    checkpoint at ``cfg.pressure`` GPa, ``cfg.num_samples`` each, each with ``seed`` (what
    ``gencrystal sample ... seed=<seed>`` gives for that system).

    Returns ``{system name: frames}``; flagged frames (denser than
    ``cfg.min_volume_per_atom`` Å³/atom, atoms closer than 0.5 Å) carry ``info['flagged']``."""
    from gencrystal.checks import StructureChecks
    from gencrystal.sampling.generator import Generator

    checks = StructureChecks(min_volume_per_atom=float(cfg.min_volume_per_atom))
    gen = Generator(str(cfg.ckpt), device="cpu", sampler=str(cfg.sampler), checks=checks)
    out: dict[str, list[Atoms]] = {}
    for system in cfg.systems:
        out[str(system.name)] = gen.sample(
            str(system.composition),
            float(cfg.pressure),
            int(cfg.num_samples),
            seed=int(seed),
            formula_units=system.get("formula_units"),
        )
    return out


def potential_label(potential_cfg: Any) -> str:
    """The name a ``conf/potential`` node goes by in the demo: its ``name`` key (``chgnet``,
    ``sevenn``), a shared-trunk committee's folder, or ``hp_committee`` for the shipped one."""
    name = potential_cfg.get("name")  # conf/potential nodes differ: name, path and _target_ are each optional
    if name:
        return str(name)
    if str(potential_cfg.get("_target_", "")).endswith("load_shared_trunk_potential"):
        return str(potential_cfg.get("path") or "hp_committee")
    return str(potential_cfg.get("_target_", "potential"))


def relax_candidates(frames: Sequence[Atoms], cfg: Any, progress: bool = False, potential: Any = None) -> list:
    """Relax ``frames`` (ids in ``info['id']``) at ``cfg.pressure`` GPa with ``potential`` (a
    :class:`gencrystal.potentials.Potential`; default ``cfg.potential`` built from its config)
    (FIRE, ``cfg.steps``, ``cfg.fmax`` eV/Å) and return the :class:`RelaxResult` list, ranked and
    grouped as ``gencrystal relax`` does (``duplicate_of`` names the lowest-enthalpy match)."""
    from gencrystal.potentials import build_potential
    from gencrystal.relax.engine import relax_structures
    from gencrystal.relax.runs import rank_and_group
    from gencrystal.runtime import available_cores

    workers = cfg.workers
    workers = min(2, available_cores()) if workers is None else int(workers)
    pot = build_potential(cfg.potential) if potential is None else potential
    results = relax_structures(
        list(frames),
        float(cfg.pressure),
        pot,
        optimizer=str(cfg.optimizer),
        fmax=float(cfg.fmax),
        steps=int(cfg.steps),
        workers=workers,
        ids=[str(a.info["id"]) for a in frames],
        progress=progress,
    )
    order = rank_and_group(results, str(cfg.matcher))
    return [results[i] for i in order]


def rediscovery_counts(frames: Sequence[Atoms], systems: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per system: samples relaxed, and samples that relaxed into a known phase (:func:`rediscoveries`).

    ``frames``: relaxed frames of one demo run (samples ``sample:<formula>:<i>`` and known phases);
    a sample belongs to the system whose reduced formula it has."""
    from pymatgen.core import Composition

    red = {s: Composition(s).reduced_formula for s in systems}
    found = {sid for sid, _ in rediscoveries(frames)}
    out = {s: {"samples": 0, "rediscovered": 0} for s in systems}
    for a in frames:
        sid = str(a.info.get("id", ""))
        if not sid.startswith("sample:"):
            continue
        formula = Composition(a.get_chemical_formula(mode="metal")).reduced_formula
        for s, r in red.items():
            if r == formula:
                out[s]["samples"] += 1
                out[s]["rediscovered"] += int(sid in found)
    return out


def seed_rate_lines(report: str | Path | None) -> list[str]:
    """The demo summary's lines on how often samples relax into a known phase over many seeds,
    read from ``reports/demo_seeds.json`` (``scripts/bench_demo_seeds.py``); none without it."""
    import json

    if not report or not Path(report).is_file():
        return []
    data = json.loads(Path(report).read_text())
    lines = [
        f"Over {data['n_seeds']} demo seeds ({data['configuration']}; {Path(report).name}), samples that "
        "relaxed into a known phase:"
    ]
    for name, s in data["systems"].items():
        lines.append(
            f"  {name}: {s['rediscovered']}/{s['samples']} samples ({100 * s['sample_rate']:.0f} %), "
            f"in {s['seeds_with_one']}/{data['n_seeds']} seeds at least one"
        )
    return lines


def relax_with_fallback(frames: Sequence[Atoms], cfg: Any, log: Any = None) -> list[tuple[str, str, list]]:
    """Relax ``frames`` as the demo does: what ``cfg.potential``'s labels cover (elements,
    pressure ``cfg.pressure`` GPa) with it, the rest with ``cfg.fallback_potential`` (by name).

    Returns ``[(part, potential name, ranked RelaxResult list)]`` for the parts that hold
    structures, ``part`` being ``"main"`` or ``"fallback"``; ``log`` (a callable taking one
    line) hears which systems fall back and each relaxation's settings. Raises
    :class:`GencrystalError` when something is not covered and no fallback is configured."""
    from gencrystal.potentials import load_potential
    from gencrystal.units import check_pressure

    pressure = check_pressure(cfg.pressure)
    pot = potential_label(cfg.potential)
    fallback = cfg.fallback_potential  # null: refuse what the potential does not cover
    covered, rest, messages = split_by_coverage(list(frames), pot, str(fallback or pot), pressure)
    if rest and not fallback:
        raise GencrystalError(f"potential {pot} does not cover {', '.join(messages)} and fallback_potential is null")
    say = log or (lambda _msg: None)
    for m in messages:
        say(m)
    parts = []
    for part, group in (("main", covered), ("fallback", rest)):
        if not group:
            continue
        name, potential = (pot, None) if part == "main" else (str(fallback), load_potential(str(fallback)))
        say(
            f"relaxing {len(group)} structures at {pressure:g} GPa with {name} ({cfg.optimizer}, fmax {cfg.fmax} "
            f"eV/A, <= {cfg.steps} steps)"
        )
        parts.append((part, name, relax_candidates(group, cfg, progress=False, potential=potential)))
    return parts


def run_demo(cfg: Any) -> str:
    """``gencrystal demo``: the whole demo from a composed ``conf/demo.yaml``; returns the summary text.

    Samples every system (:func:`sample_systems`; skipped without a checkpoint), relaxes the
    unflagged samples with the known phases (:func:`relax_candidates`), prints the ranking
    (:func:`summarize`) and, from ``cfg.seeds_report``, how often samples relax into a known
    phase over many seeds. Writes ``samples_<system>.extxyz``, ``candidates.extxyz``,
    ``relax_main/relaxed.extxyz`` (``cfg.potential``), ``relax_fallback/relaxed.extxyz`` (systems with an
    element or pressure outside the potential's labels, relaxed with ``cfg.fallback_potential``)
    and the summary's files under ``cfg.out``."""
    import time

    from gencrystal.io import write_extxyz
    from gencrystal.units import check_pressure

    t0 = time.time()
    out = Path(str(cfg.out))
    pressure = check_pressure(cfg.pressure)

    def log(msg: str) -> None:
        print(f"[demo {time.time() - t0:.0f}s] {msg}", flush=True)

    sample_files: list[Path] = []
    if cfg.ckpt and Path(str(cfg.ckpt)).is_file():
        names = ", ".join(str(s.name) for s in cfg.systems)
        log(f"sampling {names} at {pressure:g} GPa with {cfg.ckpt}, {cfg.num_samples} each (seed {cfg.seed})")
        for name, frames in sample_systems(cfg, int(cfg.seed)).items():
            path = out / f"samples_{name}.extxyz"
            write_extxyz(frames, path)
            sample_files.append(path)
            flagged = sum(bool(a.info.get("flagged")) for a in frames)
            log(f"{name}: {len(frames)} sampled, {flagged} flagged and not relaxed")
    else:
        log(f"no checkpoint at {cfg.ckpt}: relaxing the known phases only")
    cands = demo_candidates(sample_files, known=True)
    write_extxyz(cands, out / "candidates.extxyz")
    pot = potential_label(cfg.potential)
    relaxed: list[Path] = []
    covered = False
    for part, _name, results in relax_with_fallback(cands, cfg, log=log):
        covered = covered or part == "main"
        write_extxyz([r.atoms for r in results], out / f"relax_{part}" / "relaxed.extxyz")
        relaxed.append(out / f"relax_{part}" / "relaxed.extxyz")
    import shutil

    shutil.rmtree(out / "cif", ignore_errors=True)  # this run's CIFs only
    print()
    committee = potential_coverage(pot) is not None
    text = summarize(relaxed, out, pressure, uncertainty=pot if committee and covered else None)
    rates = seed_rate_lines(cfg.seeds_report)
    if rates:
        print()
        print("\n".join(rates))
    print()
    log(f"done in {time.time() - t0:.0f} s; everything is under {out}/")
    return "\n".join([text, *rates])
