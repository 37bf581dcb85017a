"""Energies for the stability proxy of ``gencrystal evaluate dng``: taken from the
structures' info, or computed with a potential (``hull.relax_energies=true``).

Every energy here is an enthalpy per atom ``(E + P·V)/N`` in eV at ``pressure_gpa``
(GPa; at 0 GPa it is the energy per atom). Computed values are relaxed with
:func:`gencrystal.relax.relax_structures` (FrechetCellFilter + FIRE/BFGS) when
``steps > 0``, or single-point (the structure as given) when ``steps == 0``.

Elemental references: an element with no elemental structure among the hull's
references gets candidates built with ASE (:func:`ase.build.bulk`: its reference state
when ASE knows one, and fcc/bcc/sc/hcp/diamond cells scaled from the covalent radius),
each relaxed with the same potential; the lowest enthalpy is the element's reference.
Prototype cells are not a structure search: for elements whose ground state is none of
them (molecular solids such as O, N, Cl) the reference is an upper bound, which makes
energies above the hull of their compounds too low.

Computed energies are cached in a JSON-lines file (one line per structure, appended as
soon as a structure is done), keyed by the potential, pressure, relaxation settings
and the structure itself, so that a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError

if TYPE_CHECKING:
    from gencrystal.metrics.io import Entry

ELEMENT_PROTOTYPES: tuple[str, ...] = ("reference", "fcc", "bcc", "sc", "hcp", "diamond")


@dataclass
class ComputedEnergy:
    """One structure's enthalpy per atom (eV) from a potential and how it was obtained."""

    enthalpy_per_atom: float
    level_of_theory: str
    converged: bool
    error: str = ""
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def usable(self, require_converged: bool) -> bool:
        """Finite and either converged, or only unconverged (not a failure) when that is allowed."""
        if not math.isfinite(self.enthalpy_per_atom):
            return False
        if self.converged or not self.error:
            return True
        return (not require_converged) and self.error.startswith("not converged")


def structure_key(atoms: Atoms, settings: dict[str, Any]) -> str:
    """A hash of the structure (numbers, cell, positions to 1e-6 Å) and the settings that made its energy."""
    payload = {
        "numbers": [int(z) for z in atoms.numbers],
        "cell": np.round(np.asarray(atoms.cell), 6).tolist(),
        "positions": np.round(atoms.get_positions(), 6).tolist(),
        "settings": settings,
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class EnergyCache:
    """Append-only JSON-lines cache ``key -> ComputedEnergy`` (a torn last line is ignored)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._data: dict[str, dict] = {}
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self._data[row["key"]] = row
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a kill

    def get(self, key: str) -> ComputedEnergy | None:
        row = self._data.get(key)
        if row is None:
            return None
        h = row.get("enthalpy_per_atom")
        return ComputedEnergy(
            float("nan") if h is None else float(h),
            row["level_of_theory"],
            bool(row["converged"]),
            row.get("error", ""),
            cached=True,
        )

    def put(self, key: str, value: ComputedEnergy, sid: str = "") -> None:
        row = {
            "key": key,
            "id": sid,
            "enthalpy_per_atom": (value.enthalpy_per_atom if math.isfinite(value.enthalpy_per_atom) else None),
            "level_of_theory": value.level_of_theory,
            "converged": value.converged,
            "error": value.error,
        }
        self._data[key] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:  # one short line per write: a kill loses at most that line
                fh.write(json.dumps(row) + "\n")
                fh.flush()


def compute_energies(
    atoms_list: Sequence[Atoms],
    ids: Sequence[str],
    potential,
    pressure_gpa: float,
    *,
    steps: int = 300,
    fmax: float = 0.05,
    optimizer: str = "FIRE",
    settings: dict[str, Any] | None = None,
    cache: EnergyCache | None = None,
    progress: bool = True,
    desc: str = "energies",
) -> list[ComputedEnergy]:
    """Enthalpy per atom (eV) at ``pressure_gpa`` (GPa) of each structure with a potential.

    Args:
        atoms_list: structures (ASE ``Atoms``; not modified).
        ids: names, for the cache file and progress.
        potential: a loaded :class:`gencrystal.potentials.Potential`, or anything
            :func:`gencrystal.potentials.as_potential` takes; loaded only when some
            structure is not cached.
        steps: optimiser steps of the variable-cell relaxation; 0 = single point.
        fmax: relaxation threshold, eV/Å.
        settings: what identifies the potential in cache keys (e.g. its config).
        cache: an :class:`EnergyCache`; results are appended as soon as they exist.

    Returns one :class:`ComputedEnergy` per structure, in order. A failed structure
    gets NaN and its one-line error; nothing raises for one structure's failure.
    """
    from gencrystal.units import check_pressure, enthalpy

    p = check_pressure(pressure_gpa)
    if steps < 0 or not fmax > 0:
        raise GencrystalError(f"hull relaxation needs steps >= 0 and fmax > 0, got steps={steps} fmax={fmax}")
    cache = cache or EnergyCache(None)
    key_settings = {
        "potential": settings or str(potential),
        "pressure_gpa": p,
        "steps": int(steps),
        "fmax": float(fmax) if steps else None,
        "optimizer": str(optimizer).upper() if steps else None,
    }
    keys = [structure_key(a, key_settings) for a in atoms_list]
    out: list[ComputedEnergy | None] = [cache.get(k) for k in keys]
    todo = [i for i, x in enumerate(out) if x is None]
    if not todo:
        return out  # type: ignore[return-value]
    from gencrystal.fanout import single_threaded
    from gencrystal.potentials import as_potential

    pot = as_potential(potential)
    if steps > 0:
        from gencrystal.relax import relax_structures

        def on_result(j: int, r) -> None:
            i = todo[j]
            computed = ComputedEnergy(float(r.enthalpy_per_atom), r.level_of_theory, bool(r.converged), r.error or "")
            out[i] = computed
            cache.put(keys[i], computed, ids[i])

        relax_structures(
            [atoms_list[i].copy() for i in todo],
            p,
            pot,
            steps=int(steps),
            fmax=float(fmax),
            optimizer=str(optimizer),
            workers=1,
            ids=[ids[i] for i in todo],
            progress=progress,
            on_result=on_result,
        )
    else:
        from tqdm.auto import tqdm

        with single_threaded(1):
            for i in tqdm(todo, desc=f"{desc} [{pot.level_of_theory}]", disable=not progress):
                a = atoms_list[i]
                why = pot.unsupported(a)
                if why:
                    out[i] = ComputedEnergy(float("nan"), pot.level_of_theory, False, why)
                else:
                    try:
                        pred = pot.predict([a])[0]
                        h = enthalpy(pred.energy, a.get_volume(), p) / len(a)
                        out[i] = ComputedEnergy(float(h), pot.level_of_theory, True, "")
                    except Exception as exc:  # one structure's failure is recorded, never fatal
                        msg = str(exc).strip().splitlines()
                        out[i] = ComputedEnergy(
                            float("nan"), pot.level_of_theory, False, f"{type(exc).__name__}: {msg[0] if msg else ''}"
                        )
                cache.put(keys[i], out[i], ids[i])
    for i in todo:  # a relaxation that never reported (should not happen) counts as failed
        if out[i] is None:
            out[i] = ComputedEnergy(float("nan"), pot.level_of_theory, False, "no result")
    return out  # type: ignore[return-value]


def elemental_candidates(symbol: str, prototypes: Sequence[str] = ELEMENT_PROTOTYPES) -> list[tuple[str, Atoms]]:
    """Candidate elemental crystals ``(name, Atoms)`` for ``symbol`` (Å).

    ``reference``: ASE's reference state (:func:`ase.build.bulk` with no structure given),
    when ASE has a crystalline one; ``fcc``/``bcc``/``sc``/``hcp``/``diamond``: the
    prototype with its nearest-neighbour distance set to twice the covalent radius
    (at least 2 Å). Prototypes ASE cannot build are skipped.
    """
    from ase.build import bulk
    from ase.data import atomic_numbers, covalent_radii

    if symbol not in atomic_numbers:
        raise GencrystalError(f"unknown element {symbol!r}")
    d = max(2.0 * float(covalent_radii[atomic_numbers[symbol]]), 2.0)  # Å, nearest-neighbour distance
    builders = {
        "reference": lambda: bulk(symbol),
        "fcc": lambda: bulk(symbol, "fcc", a=d * math.sqrt(2.0)),
        "bcc": lambda: bulk(symbol, "bcc", a=2.0 * d / math.sqrt(3.0)),
        "sc": lambda: bulk(symbol, "sc", a=d),
        "hcp": lambda: bulk(symbol, "hcp", a=d, c=d * math.sqrt(8.0 / 3.0)),
        "diamond": lambda: bulk(symbol, "diamond", a=4.0 * d / math.sqrt(3.0)),
    }
    out = []
    for name in prototypes:
        if name not in builders:
            raise GencrystalError(f"unknown elemental prototype {name!r}; choose from {', '.join(builders)}")
        try:
            atoms = builders[name]()
        except Exception:  # e.g. no crystalline reference state (diatomic gases)
            continue
        out.append((f"{symbol}:{name}", atoms))
    return out


def _info_energy(entry, key: str | None, lot_key: str, default_lot: str | None, what: str):
    """``(value, level)`` from an entry's info, or None when it carries no energy under ``key``."""
    if not key:
        return None
    raw = entry.info.get(key)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    try:
        x = float(raw)
    except (TypeError, ValueError):
        raise GencrystalError(f"{what} {entry.id!r}: {key}={raw!r} is not a number") from None
    if not math.isfinite(x):
        return None
    lot = entry.info.get(lot_key, default_lot)
    if lot is None:
        raise GencrystalError(
            f"{what} {entry.id!r} has no {lot_key!r} label; set energies.level_of_theory=... "
            "when all energies come from one potential"
        )
    return x, str(lot)


def stability(
    preds,
    hull_refs,
    *,
    energy_key: str | None = None,
    level_of_theory_key: str = "level_of_theory",
    default_level: str | None = None,
    compute: bool = False,
    potential=None,
    potential_settings: dict | None = None,
    pressure_gpa: float = 0.0,
    steps: int = 300,
    fmax: float = 0.05,
    optimizer: str = "FIRE",
    require_converged: bool = False,
    element_prototypes: Sequence[str] = ELEMENT_PROTOTYPES,
    element_steps: int = 300,
    cache_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[list[float], list[float], dict]:
    """Energy above a reference hull for each prediction.

    Args:
        preds: :class:`gencrystal.metrics.io.Entry` samples.
        hull_refs: entries the hull is built from (training structures, elemental references).
        energy_key: info key holding a precomputed enthalpy per atom (eV); entries without
            it get one from ``potential`` when ``compute`` is true, else none.
        compute: compute missing energies with ``potential`` at ``pressure_gpa`` (GPa),
            relaxing ``steps`` steps (0 = single point) to ``fmax`` (eV/Å); and build
            elemental references from ``element_prototypes`` for elements that lack one.
        require_converged: drop energies of relaxations that hit the step limit.

    Returns ``(e_above_hull, energies, summary)``: eV/atom per prediction (NaN where no
    hull or energy exists), the predictions' enthalpies per atom (eV) and a JSON summary.
    """
    from gencrystal.metrics.hull import EnergyEntry, ReferenceHull, check_single_theory
    from gencrystal.structures import to_atoms

    if not energy_key and not compute:
        raise GencrystalError("no energies: give energies.key=... or hull.relax_energies=true")
    cache = EnergyCache(cache_path)
    settings: dict[str, Any] = {"potential": potential_settings or str(potential), "pressure_gpa": float(pressure_gpa)}

    def gather(entries: Sequence[Entry], what: str) -> tuple[list[tuple[float, str] | None], list[int]]:
        vals: list[tuple[float, str] | None] = []
        missing: list[int] = []
        for i, e in enumerate(entries):
            v = _info_energy(e, energy_key, level_of_theory_key, default_level, what) if e.structure is not None else None
            vals.append(v)
            if v is None and e.structure is not None and compute:
                missing.append(i)
        return vals, missing

    ref_vals, ref_missing = gather(hull_refs, "reference structure")
    pred_vals, pred_missing = gather(preds, "sample")
    summary: dict[str, Any] = {
        "pressure_gpa": float(pressure_gpa),
        "energy_key": energy_key,
        "computed_with_potential": bool(compute),
        "n_from_info": 0,
        "n_computed": 0,
        "n_cached": 0,
        "n_unconverged_used": 0,
        "n_failed": 0,
    }
    summary["n_from_info"] = sum(v is not None for v in ref_vals + pred_vals)

    def fill(entries, vals, missing, what):
        if not missing:
            return
        res = compute_energies(
            [to_atoms(entries[i].structure) for i in missing],
            [f"{what}:{entries[i].id}" for i in missing],
            potential,
            pressure_gpa,
            steps=steps,
            fmax=fmax,
            optimizer=optimizer,
            settings=settings["potential"],
            cache=cache,
            progress=progress,
            desc=what,
        )
        for i, r in zip(missing, res):
            summary["n_cached" if r.cached else "n_computed"] += 1
            if r.usable(require_converged):
                vals[i] = (r.enthalpy_per_atom, r.level_of_theory)
                summary["n_unconverged_used"] += int(not r.converged)
            else:
                summary["n_failed"] += 1

    fill(hull_refs, ref_vals, ref_missing, "reference")
    fill(preds, pred_vals, pred_missing, "sample")
    ref_entries = [EnergyEntry(e.structure.composition, v[0], v[1], e.id) for e, v in zip(hull_refs, ref_vals) if v is not None]
    # elemental references for the elements of the samples that lack one
    have = {r.composition.elements[0].symbol for r in ref_entries if len(r.composition.elements) == 1}
    need = sorted(
        {el.symbol for e in preds if e.structure is not None for el in e.structure.composition.elements}
        | {el.symbol for r in ref_entries for el in r.composition.elements}
    )
    added: dict[str, Any] = {}
    if compute and element_prototypes:
        cands = [
            (el, name, atoms) for el in need if el not in have for name, atoms in elemental_candidates(el, element_prototypes)
        ]
        if cands:
            res = compute_energies(
                [c[2] for c in cands],
                [c[1] for c in cands],
                potential,
                pressure_gpa,
                steps=max(int(element_steps), 1),
                fmax=fmax,
                optimizer=optimizer,
                settings=settings["potential"],
                cache=cache,
                progress=progress,
                desc="elements",
            )
            best: dict[str, tuple[float, str, str, bool]] = {}
            for (el, name, _atoms), r in zip(cands, res):
                summary["n_cached" if r.cached else "n_computed"] += 1
                if not (math.isfinite(r.enthalpy_per_atom) and (r.converged or r.error.startswith("not converged"))):
                    continue
                if el not in best or r.enthalpy_per_atom < best[el][0]:
                    best[el] = (r.enthalpy_per_atom, r.level_of_theory, name, r.converged)
            for el, (h, lot, name, conv) in sorted(best.items()):
                ref_entries.append(EnergyEntry(_composition(el), h, lot, name))
                added[el] = {"prototype": name.split(":", 1)[1], "enthalpy_per_atom_eV": h, "converged": conv}
    pred_entries = [
        EnergyEntry(e.structure.composition, v[0], v[1], e.id) if v is not None else None for e, v in zip(preds, pred_vals)
    ]
    level = check_single_theory(ref_entries + [x for x in pred_entries if x is not None], "reference hull and samples")
    hull = ReferenceHull(ref_entries)
    e_hull = [hull.e_above_hull(x) if x is not None else float("nan") for x in pred_entries]
    energies = [x.energy_per_atom if x is not None else float("nan") for x in pred_entries]
    finite = np.array([x for x in e_hull if math.isfinite(x)], dtype=float)
    missing_el = sorted({el for e in preds if e.structure is not None for el in hull.missing_elements(e.structure.composition)})
    summary.update(
        {
            "level_of_theory": level,
            "n_reference_entries": len(ref_entries),
            "n_reference_structures": len(hull_refs),
            "elemental_references_added": added,
            "elements_without_reference": missing_el,
            "relaxation": (
                {
                    "steps": int(steps),
                    "fmax_eV_per_A": float(fmax),
                    "optimizer": str(optimizer).upper(),
                    "require_converged": bool(require_converged),
                    "element_steps": int(element_steps),
                    "element_prototypes": list(element_prototypes),
                }
                if compute
                else None
            ),
            "n_pred_with_e_hull": int(finite.size),
            "e_above_hull_mean_eV_per_atom": float(finite.mean()) if finite.size else None,
            "e_above_hull_median_eV_per_atom": float(np.median(finite)) if finite.size else None,
            "cache": str(cache_path) if cache_path and compute else None,
        }
    )
    return e_hull, energies, summary


def _composition(symbol: str):
    from pymatgen.core import Composition

    return Composition(symbol)
