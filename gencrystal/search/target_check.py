"""Is a potential trusted for a known-phase target? Its relaxation of the target against DFT's.

Before a search counts structures to a known phase, the target itself is relaxed at the
target pressure with the search's potential and with DFT (GPAW). The potential is
*trusted* for the target when both relaxations converge, they agree on the volume within
``volume_tol`` (5 %) and the potential keeps the target's space group; otherwise the row
is *untrusted* (the search would run on a wrong energy landscape) and, without a DFT
result, *unchecked*. A DFT relaxation is cached per structure and settings (extxyz under
``cache_dir``), so a re-run of a benchmark does not repeat it.

The DFT input is the target's Niggli-reduced primitive cell (the same crystal in fewer
atoms); with ``symmetry: on`` GPAW keeps its space group, so the DFT side fixes the
reference volume and the potential side is judged on volume and symmetry.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ase import Atoms

from gencrystal.known_structures import Target, matches

TRUSTED, UNTRUSTED, UNCHECKED = "trusted", "untrusted", "unchecked"


def primitive_cell(atoms: Atoms) -> Atoms:
    """The spglib primitive cell of ``atoms``, Niggli-reduced (pymatgen), ``info`` kept."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from gencrystal.structures import to_atoms, to_structure

    s = SpacegroupAnalyzer(to_structure(atoms), symprec=1e-3).find_primitive().get_reduced_structure()
    out = to_atoms(s)
    out.info = dict(atoms.info)
    return out


def space_group_number(symbol: str) -> int | None:
    """The number in a ``RelaxResult.space_group`` string such as ``"P4_2/mnm (136)"``."""
    m = re.search(r"\((\d+)\)", symbol or "")
    return int(m.group(1)) if m else None


def _summary(res) -> dict[str, Any]:
    return {
        "converged": bool(res.converged),
        "error": res.error,
        "steps": int(res.steps),
        "volume_per_atom": float(res.volume_per_atom),
        "enthalpy_per_atom": float(res.enthalpy_per_atom),
        "space_group": res.space_group,
        "level_of_theory": res.level_of_theory,
        "wall_s": float(res.wall_s),
    }


#: Failures that the same inputs reproduce, so a re-run reads them from the cache: the step limit
#: and an SCF that does not converge within its iteration limit. Any other error is not cached.
_CACHED_FAILURES = ("not converged", "SCF not converged")


def dft_relax_cached(
    atoms: Atoms, pressure_gpa: float, backend, settings: dict, cache_dir: str | Path, sid: str
) -> tuple[Atoms, dict[str, Any]]:
    """DFT relaxation of ``atoms`` at ``pressure_gpa`` (GPa), read from ``cache_dir`` when an earlier
    run did it with the same structure and ``settings``; returns (relaxed Atoms, summary). A relaxation
    that crashed (an error other than :data:`_CACHED_FAILURES`) is returned but not cached."""
    from ase.io import read

    from gencrystal.io import write_extxyz
    from gencrystal.metrics.stability import structure_key

    key = structure_key(atoms, {**settings, "pressure_gpa": float(pressure_gpa)})
    path = Path(cache_dir) / f"{sid}_{key[:16]}.extxyz"
    if path.is_file():
        b = read(str(path), index=0)
        assert isinstance(b, Atoms)
        summary = {k[4:]: v for k, v in b.info.items() if k.startswith("dft_")}
        summary["cached"] = True
        return b, summary
    res = backend.relax(atoms, pressure_gpa, sid=sid)
    summary = _summary(res)
    b = res.atoms.copy()
    if res.error is not None and not res.error.startswith(_CACHED_FAILURES):
        summary["cached"] = False  # a crash (set-up, code or environment) is not replayed from the cache
        return b, summary
    # (an empty string does not survive the extxyz comment line: it would swallow the next key)
    b.info = {f"dft_{k}": v for k, v in summary.items() if v is not None and v != ""}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_extxyz([b], path)
    summary["cached"] = False
    return b, summary


def potential_check(
    target: Target,
    potential: Any,
    *,
    relax_options: dict | None = None,
    backend=None,
    settings: dict | None = None,
    cache_dir: str | Path | None = None,
    volume_tol: float = 0.05,
    cutoff_factor: float = 1.0,
    cutoff_tol_gpa: float = 2.0,
) -> tuple[Atoms, dict[str, Any]]:
    """Relax ``target``'s known structure at its pressure with ``potential`` (and with the DFT
    ``backend`` when given) and judge the potential: returns (the potential-relaxed structure,
    the check as a dict with ``status`` trusted / untrusted / unchecked and the reasons).

    Args:
        target: the benchmark target (:mod:`gencrystal.known_structures`).
        potential: anything :func:`gencrystal.relax.relax_structures` accepts.
        relax_options: ``fmax`` (eV/Å), ``steps`` ... for the potential's relaxation.
        backend: a DFT backend with ``relax(atoms, pressure_gpa, sid)`` (e.g. GPAWBackend); None skips DFT.
        settings: the backend's settings (part of the cache key).
        cache_dir: folder caching the DFT relaxation (required with ``backend``) and the potential's.
        volume_tol: largest accepted |V_potential / V_DFT − 1|.
        cutoff_factor: basis check of the DFT itself (> 1): the stress of the DFT-relaxed target at
            the backend's cutoff and at ``cutoff_factor`` times it (same k-points, cached); a
            difference above ``cutoff_tol_gpa`` (GPa) makes the check ``unchecked``: the DFT
            reference is not converged, so it cannot vouch for the potential.
    """
    known = target.structure()
    res = _potential_relax_cached(known, target, potential, relax_options or {}, cache_dir)
    out: dict[str, Any] = {
        "target": target.key,
        "pressure_gpa": target.pressure_gpa,
        "volume_per_atom_start": known.get_volume() / len(known),
        "potential": _summary(res),
        "same_phase": {k: matches(res.atoms, known, k) for k in ("loose", "medium", "strict")},
        "volume_tol": volume_tol,
        "reasons": [],
    }
    sg_pot = space_group_number(res.space_group)
    if not res.converged:
        out["reasons"].append(f"the potential's relaxation did not converge ({res.error})")
    if sg_pot != _catalogue_space_group(target):
        out["reasons"].append(
            f"the potential changes the space group ({_catalogue_space_group(target)} -> {res.space_group or '?'})"
        )
    if backend is None:
        out["dft"] = None
        out["status"] = UNTRUSTED if out["reasons"] else UNCHECKED
        if not out["reasons"]:
            out["reasons"].append("no DFT relaxation of the target was run")
        return res.atoms, out
    if cache_dir is None:
        raise ValueError("cache_dir is required with a DFT backend")
    dft_atoms, dft = dft_relax_cached(
        primitive_cell(known), target.pressure_gpa, backend, settings or {}, cache_dir, sid=target.key
    )
    out["dft"] = dft
    v_dft = float(dft.get("volume_per_atom", math.nan))
    dv = res.volume_per_atom / v_dft - 1.0 if v_dft > 0 else math.nan
    out["volume_deviation"] = dv
    if not dft.get("converged"):
        out["reasons"].append(f"the DFT relaxation did not converge ({dft.get('error')})")
    if not (abs(dv) <= volume_tol):
        out["reasons"].append(f"volume {res.volume_per_atom:.2f} vs DFT {v_dft:.2f} Å³/atom ({100 * dv:+.1f} %)")
    out["same_phase_as_dft"] = matches(res.atoms, dft_atoms, "loose")
    out["status"] = TRUSTED if not out["reasons"] else UNTRUSTED
    out["cutoff"] = None
    if cutoff_factor > 1.0 and dft.get("converged"):
        from gencrystal.metrics.pipeline import cutoff_check

        probe = dft_atoms.copy()
        probe.info["ref_id"] = f"{target.key}@{target.pressure_gpa:g}GPa"
        cut = cutoff_check(backend, probe, cutoff_factor, Path(cache_dir) / "cutoff.json")
        out["cutoff"] = cut
        if cut is not None and not abs(cut["delta_gpa"]) <= cutoff_tol_gpa:
            out["status"] = UNCHECKED
            out["reasons"].append(
                f"DFT not converged in the basis: P({cut['ecut_low_ev']:g} eV) − P({cut['ecut_high_ev']:g} eV) = "
                f"{cut['delta_gpa']:+.1f} GPa (> {cutoff_tol_gpa:g})"
            )
    return res.atoms, out


def _potential_relax_cached(known: Atoms, target: Target, potential: Any, options: dict, cache_dir):
    """The potential's relaxation of ``known`` at the target pressure (a RelaxResult), cached as a pickle
    under ``cache_dir``/potential keyed by structure, potential, pressure and options (None: no cache)."""
    import pickle

    from gencrystal.io import atomic_write
    from gencrystal.metrics.stability import structure_key
    from gencrystal.relax import relax_structures

    level = getattr(potential, "level_of_theory", None) or str(potential)
    opts = {k: v for k, v in options.items() if k != "workers"}
    path = None
    if cache_dir is not None:
        key = structure_key(known, {"potential": level, "pressure_gpa": target.pressure_gpa, **opts})
        path = Path(cache_dir) / "potential" / f"{target.key}_{key[:16]}.pkl"
        if path.is_file():
            with open(path, "rb") as fh:
                return pickle.load(fh)
    res = relax_structures([known], pressure_gpa=target.pressure_gpa, potential=potential, progress=False, **options)[0]
    if path is not None:
        import dataclasses

        with atomic_write(path, "wb") as fh:  # Atoms.copy() drops the calculator
            pickle.dump(dataclasses.replace(res, atoms=res.atoms.copy()), fh)
    return res


def _catalogue_space_group(target: Target) -> int:
    """The space-group number the catalogue gives for the target's structure."""
    from gencrystal.known_structures import STRUCTURES

    return STRUCTURES[target.structure_id].space_group


def dft_best_check(
    target: Target,
    best: Atoms,
    best_enthalpy_per_atom: float,
    potential_target_enthalpy_per_atom: float,
    backend,
    settings: dict,
    cache_dir: str | Path,
    sid: str,
) -> dict[str, Any]:
    """DFT verdict on a search's best structure: ``best`` (the lowest-enthalpy relaxed candidate
    of a method, eV/atom ``best_enthalpy_per_atom`` on the search's potential) and the target's
    known structure are both vc-relaxed with ``backend`` at the target pressure (GPa; Niggli
    primitive cells, cached in ``cache_dir``). Returns whether the best structure is still the
    target phase after DFT (loose matcher against the DFT-relaxed target) and its DFT enthalpy
    against the target's, ``dh_dft_mev`` = 1000 (H_best − H_target) meV/atom (negative: the
    search found something DFT puts below the known phase), beside the same difference on the
    potential, ``dh_potential_mev``."""
    tgt_atoms, tgt = dft_relax_cached(
        primitive_cell(target.structure()), target.pressure_gpa, backend, settings, cache_dir, sid=target.key
    )
    b_atoms, b = dft_relax_cached(primitive_cell(best), target.pressure_gpa, backend, settings, cache_dir, sid=sid)
    h_t, h_b = float(tgt.get("enthalpy_per_atom", math.nan)), float(b.get("enthalpy_per_atom", math.nan))
    return {
        "converged": bool(b.get("converged")) and bool(tgt.get("converged")),
        "error": b.get("error") or tgt.get("error"),
        "same_phase_as_target": {k: matches(b_atoms, tgt_atoms, k) for k in ("loose", "medium", "strict")},
        "space_group_dft": b.get("space_group"),
        "volume_per_atom_dft": b.get("volume_per_atom"),
        "dh_dft_mev": 1000.0 * (h_b - h_t),
        "dh_potential_mev": 1000.0 * (float(best_enthalpy_per_atom) - float(potential_target_enthalpy_per_atom)),
    }
