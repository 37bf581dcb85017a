"""Pieces shared by the relaxation-style runs (``relax``, ``validate``, ``search``, ``db build``):
a resumable per-structure checkpoint, enthalpy ranking with duplicate grouping, the
enthalpy-rank plot and the potential/fan-out set-up from a config (energies eV/atom,
pressure GPa)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from gencrystal.relax.result import RelaxResult, result_from_atoms


def rank_and_group(results: Sequence[RelaxResult], matcher: str = "csp") -> list[int]:
    """Order (indices into ``results``): successful structures by formula, then enthalpy per
    atom; failures last. Sets ``rank`` (1-based within formula, 0 for failures) and
    ``duplicate_of`` (id of the lowest-enthalpy structure it matches, '' if unique) in
    each result's ``extra`` and ``atoms.info``."""
    from gencrystal.matching import group_duplicates

    ok = [i for i, r in enumerate(results) if r.error is None and math.isfinite(r.enthalpy_per_atom)]
    bad = [i for i in range(len(results)) if i not in set(ok)]
    ok.sort(key=lambda i: (results[i].atoms.get_chemical_formula(mode="metal", empirical=True), results[i].enthalpy_per_atom))
    labels = group_duplicates([results[i].atoms for i in ok], matcher) if ok else []
    counter: dict[str, int] = {}
    for pos, i in enumerate(ok):
        r = results[i]
        formula = r.atoms.get_chemical_formula(mode="metal", empirical=True)
        counter[formula] = counter.get(formula, 0) + 1
        rep = ok[labels[pos]]
        r.extra["rank"] = counter[formula]
        r.extra["duplicate_of"] = "" if rep == i else results[rep].id
    for i in bad:
        results[i].extra["rank"] = 0
        results[i].extra["duplicate_of"] = ""
    for r in results:
        r.atoms.info.update(r.info())
    return ok + bad


def settings_key(cfg_dict: dict, ids: list[str]) -> str:
    """A short hash of a run's settings and structure ids: the checkpoint stays valid only for the same job."""
    text = json.dumps({"cfg": cfg_dict, "ids": ids}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """One extxyz file per finished structure in ``out/.partial``, valid for one settings key."""

    def __init__(self, out: Path, key: str):
        self.dir = out / ".partial"
        self.key = key

    def load(self) -> dict[int, RelaxResult]:
        from ase import Atoms
        from ase.io import read

        stamp = self.dir / "settings.key"
        if not stamp.exists() or stamp.read_text().strip() != self.key:
            return {}
        done = {}
        for f in sorted(self.dir.glob("*.extxyz")):
            try:
                atoms = read(str(f), format="extxyz")  # one frame per file
                if not isinstance(atoms, Atoms):
                    continue
                done[int(f.stem)] = result_from_atoms(atoms)
            except Exception:
                continue  # a torn file is simply redone
        return done

    def start(self) -> None:
        stamp = self.dir / "settings.key"
        if stamp.exists() and stamp.read_text().strip() != self.key:
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(self.key + "\n")

    def resume(self, n: int, resume: bool = True) -> tuple[dict[int, RelaxResult], list[int]]:
        """Start (or continue) a run of ``n`` structures: the results already saved under the
        same settings key (none when ``resume`` is false) and the indices still to do."""
        done = self.load() if resume else {}
        self.start()
        return done, [i for i in range(n) if i not in done]

    @staticmethod
    def merge(n: int, done: dict[int, RelaxResult], todo: Sequence[int], new: Sequence[RelaxResult]) -> list[RelaxResult]:
        """The full, ordered result list from the resumed ``done`` and the ``new`` results of ``todo``."""
        results: list[RelaxResult] = [None] * n  # type: ignore[list-item]
        for i, r in done.items():
            results[i] = r
        for i, r in zip(todo, new):
            results[i] = r
        return results

    def save(self, index: int, result: RelaxResult) -> None:
        from gencrystal.io import write_extxyz

        write_extxyz([result.atoms], self.dir / f"{index:07d}.extxyz")

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def plot_enthalpy_rank(results: Sequence[RelaxResult], path: Path, title: str) -> None:
    """Enthalpy per atom against rank, one line per formula (successful structures only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencrystal.io import atomic_write

    by_formula: dict[str, list[RelaxResult]] = {}
    for r in results:
        if r.error is None and math.isfinite(r.enthalpy_per_atom):
            by_formula.setdefault(r.atoms.get_chemical_formula(mode="metal", empirical=True), []).append(r)
    fig, ax = plt.subplots(figsize=(6, 4))
    for formula, rows in sorted(by_formula.items()):
        rows = sorted(rows, key=lambda r: r.enthalpy_per_atom)
        h0 = rows[0].enthalpy_per_atom
        ax.plot(range(1, len(rows) + 1), [1000 * (r.enthalpy_per_atom - h0) for r in rows], "o-", label=formula)
    ax.set_xlabel("rank")
    ax.set_ylabel("H − H_min (meV/atom)")
    ax.set_title(title)
    if by_formula:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def relax_setup(cfg: DictConfig) -> tuple:
    """``(potential, relax options)`` from a config with ``potential`` (conf/potential),
    ``cluster`` (conf/cluster, a FanOut) and ``relax`` (conf/search/relax.yaml) nodes:
    the loaded :class:`gencrystal.potentials.Potential` and the keyword arguments of
    :func:`gencrystal.relax.relax_structures`."""
    from gencrystal.config import instantiate
    from gencrystal.potentials import build_potential

    potential = build_potential(cfg.potential)
    fan = instantiate(cfg.cluster, "cluster")
    opts: dict[str, Any] = OmegaConf.to_container(cfg.relax, resolve=True)  # type: ignore[assignment]
    opts = {k: v for k, v in opts.items() if not str(k).startswith("_")}
    opts.update(
        workers=int(fan.workers), scheduler=fan.scheduler, chunk_size=fan.chunk_size, torch_threads=int(fan.torch_threads)
    )
    return potential, opts
