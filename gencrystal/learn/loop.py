"""The active-learning loop: sample → relax (committee mean) → select → DFT → fine-tune.

``gencrystal learn composition=Li2 pressures=[0,25,50] iterations=3 out=DIR db=data/hp.db``

Iteration k (0-based) in ``out/iter_{k:03d}/``:

1. ``candidates.extxyz`` — perturbed known structures, pyxtal random ones, generator samples;
2. ``frames.extxyz`` — relaxation frames at each pressure with the current potential: the
   committee of iteration k−1, or the ``potential`` of ``conf/learn.yaml`` (CHGNet 0.3.0 by
   default) in iteration 0 (no spread yet, so
   iteration 0 selects by diversity alone);
3. ``selected.extxyz`` — the uncertain, diverse frames to label (k-means on fingerprints);
4. DFT single points, appended one by one to ``out/labels.extxyz`` and to the database
   (``level_of_theory`` of the DFT backend, ``source = learn:<k>``); a calculation that
   fails (SCF not converged, ...) is recorded in ``out/failed_labels.json`` with its
   message and never retried;
5. ``committee/`` — every member fine-tuned from the shipped CHGNet on all labels so far.

The loop stops after ``iterations`` or when the uncertain fraction of an iteration's
frames falls below ``uncertainty.stop_fraction``. ``out/state.json`` (written
atomically after every stage) and the labels' hashes make it resume after a kill
without relabelling anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError
from gencrystal.io import write_extxyz, write_json

STAGES = ("start", "sampled", "relaxed", "selected", "labelled", "trained")
STATE_FILE = "state.json"
LABELS_FILE = "labels.extxyz"
FAILED_FILE = "failed_labels.json"


def _read_frames(path: Path) -> list[Atoms]:
    from ase.io import read

    if not path.is_file() or path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def _plain(frames: list[Atoms]) -> list[Atoms]:
    """Frames without calculators (so extxyz files hold only the info we put there)."""
    out = []
    for a in frames:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
        b.info.update(a.info)
        out.append(b)
    return out


def dft_settings(backend, atoms: Atoms) -> dict[str, Any]:
    """The DFT settings a label was computed with, as ``dft_*`` scalars (stored with the label
    and in its database row): code, functional, cutoff (eV), k-point density (Å⁻¹) and the grid
    used for ``atoms``, smearing (eV), symmetry."""
    out: dict[str, Any] = {"dft_code": str(getattr(backend, "name", type(backend).__name__))}
    for attr, key in (
        ("xc", "dft_xc"),
        ("ecut", "dft_ecut_ev"),
        ("kpt_density", "dft_kpt_density"),
        ("smearing", "dft_smearing_ev"),
        ("symmetry", "dft_symmetry"),
    ):
        value = getattr(backend, attr, None)
        if value is not None:
            out[key] = value if isinstance(value, str) else float(value)
    if hasattr(backend, "kgrid"):
        out["dft_kpts"] = "x".join(str(int(k)) for k in backend.kgrid(atoms))
    return out


class ActiveLearningLoop:
    """One resumable active-learning run (see the module docstring).

    Args:
        cfg: the composed ``conf/learn.yaml`` (a DictConfig or mapping).
    """

    def __init__(self, cfg: Any):
        from hydra.utils import instantiate

        from gencrystal.composition import parse_composition
        from gencrystal.units import check_pressure

        self.cfg = cfg
        self.composition = str(cfg.composition)
        comp = parse_composition(self.composition)
        self.elements = sorted(el.symbol for el in comp.elements)
        self.pressures = [
            check_pressure(p) for p in (cfg.pressures if not isinstance(cfg.pressures, (int, float)) else [cfg.pressures])
        ]
        if not self.pressures:
            raise GencrystalError("pressures=[] is empty; give at least one pressure in GPa")
        self.iterations = int(cfg.iterations)
        if self.iterations < 1:
            raise GencrystalError(f"iterations={cfg.iterations} must be at least 1")
        self.out = Path(str(cfg.out))
        self.out.mkdir(parents=True, exist_ok=True)
        self.backend = instantiate(cfg.dft)
        self.policy = instantiate(cfg.uncertainty)
        self.finetune = instantiate(cfg.finetune)
        self.candidate_settings = instantiate(cfg.candidates)
        self.relax_settings = instantiate(cfg.relax)
        self.n_select = int(cfg.select.n_per_iteration)
        self.seed = int(cfg.seed)
        self.progress = bool(cfg.progress)
        self.seeds = self._load_seeds()
        self.db = None
        if cfg.db:
            from gencrystal.db.schema import connect

            self.db = connect(str(cfg.db))
        failed = self.out / FAILED_FILE
        self.failed: dict[str, dict] = json.loads(failed.read_text()) if failed.is_file() else {}
        state = self._load_state() if bool(cfg.resume) else None
        fresh = state is None
        self.state: dict = (
            {"iteration": 0, "stage": "start", "history": [], "done": False, "stop_reason": ""} if state is None else state
        )
        if fresh:
            self._save_state()

    # -- set-up -----------------------------------------------------------------------
    def _load_seeds(self) -> list[Atoms]:
        from hydra.utils import instantiate

        from gencrystal.learn.candidates import same_formula

        seeds: list[Atoms] = []
        for spec in self.cfg.seeds or []:
            a = instantiate(spec)
            seeds.append(Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True))
        if self.cfg.seeds_file:
            from gencrystal.io import read_structures

            seeds.extend(a for _, a in read_structures(str(self.cfg.seeds_file)))
        bad = [a.get_chemical_formula() for a in seeds if not same_formula(a, self.composition)]
        if bad:
            raise GencrystalError(f"seed structure {bad[0]} does not have the composition {self.composition}")
        if not seeds and int(self.candidate_settings.n_random) <= 0 and not self.candidate_settings.generator_checkpoint:
            raise GencrystalError("no candidates: give seeds, seeds_file, candidates.n_random > 0 or a generator checkpoint")
        return seeds

    def _load_state(self) -> dict | None:
        f = self.out / STATE_FILE
        if not f.is_file():
            return None
        try:
            state = json.loads(f.read_text())
        except Exception as exc:
            raise GencrystalError(f"cannot read loop state {str(f)!r}: {exc}") from exc
        if state.get("composition") not in (None, self.composition):
            raise GencrystalError(
                f"{str(self.out)!r} holds a loop for {state['composition']}, not {self.composition}; "
                "use another out= or resume=false"
            )
        return state

    def _save_state(self) -> None:
        self.state["composition"] = self.composition
        write_json(self.state, self.out / STATE_FILE)

    def _set_stage(self, k: int, stage: str) -> None:
        self.state["iteration"], self.state["stage"] = int(k), stage
        self._save_state()

    def _done(self, k: int, stage: str) -> bool:
        """True when iteration ``k`` has already passed ``stage``."""
        it, st = int(self.state["iteration"]), str(self.state["stage"])
        return it > k or (it == k and STAGES.index(st) >= STAGES.index(stage))

    def iter_dir(self, k: int) -> Path:
        return self.out / f"iter_{k:03d}"

    def committee_dir(self, k: int) -> Path:
        """The committee trained at the end of iteration ``k``."""
        return self.iter_dir(k) / "committee"

    # -- stages -----------------------------------------------------------------------
    def _calculator(self, k: int):
        """The newest committee trained before iteration ``k``; the configured starting
        potential (``potential`` group, CHGNet 0.3.0 by default) when none is."""
        from gencrystal.potentials import build_potential
        from gencrystal.potentials.committee import (
            is_committee_dir,
            load_committee_potential,
        )

        for j in range(k - 1, -1, -1):
            if is_committee_dir(self.committee_dir(j)):
                return load_committee_potential(str(self.committee_dir(j)), self.finetune.device).calculator()
        return build_potential(self.cfg.potential).calculator()

    def sample(self, k: int) -> list[Atoms]:
        from gencrystal.learn.candidates import draw_candidates

        f = self.iter_dir(k) / "candidates.extxyz"
        if self._done(k, "sampled"):
            return _read_frames(f)
        rng = np.random.default_rng([self.seed, k])
        cands: list[Atoms] = []
        for p in self.pressures:
            cands.extend(draw_candidates(self.composition, p, self.seeds, self.candidate_settings, rng))
        for i, a in enumerate(cands):
            a.info["candidate"] = i
        write_extxyz(cands, f)
        self._set_stage(k, "sampled")
        return cands

    def relax(self, k: int, candidates: list[Atoms]) -> list[Atoms]:
        from tqdm.auto import tqdm

        from gencrystal.fanout import single_threaded
        from gencrystal.learn.candidates import relax_with_frames

        f = self.iter_dir(k) / "frames.extxyz"
        if self._done(k, "relaxed"):
            return _read_frames(f)
        calc = self._calculator(k)
        frames: list[Atoms] = []
        with single_threaded(1):
            for a in tqdm(candidates, desc=f"iter {k}: relax candidates", disable=not self.progress, leave=False):
                frames.extend(relax_with_frames(a, calc, float(a.info["pressure_gpa"]), self.relax_settings))
        write_extxyz(_plain(frames), f)
        self._set_stage(k, "relaxed")
        return frames

    def spread_stats(self, k: int, frames: list[Atoms]) -> dict[str, Any]:
        """Uncertain fraction and committee spread (mean/max) over the frames of iteration k."""
        have = [a for a in frames if "forces_std" in a.info]
        if not have:
            return {"n_frames": len(frames), "uncertain_fraction": None}
        fs = np.array([a.info["forces_std"] for a in have])
        ss = np.array([a.info["stress_std"] for a in have])
        es = np.array([a.info["energy_std"] for a in have])
        unc = [self.policy.uncertain(f, s) for f, s in zip(fs, ss)]
        per_p = {}
        for p in self.pressures:
            sel = [a for a in have if abs(float(a.info["pressure_gpa"]) - p) < 1e-9]
            if sel:
                per_p[f"{p:g}"] = {
                    "stress_std_mean": float(np.mean([a.info["stress_std"] for a in sel])),
                    "forces_std_mean": float(np.mean([a.info["forces_std"] for a in sel])),
                }
        return {
            "n_frames": len(frames),
            "n_uncertain": int(sum(unc)),
            "uncertain_fraction": float(np.mean(unc)),
            "forces_std_mean": float(fs.mean()),
            "forces_std_max": float(fs.max()),
            "stress_std_mean": float(ss.mean()),
            "stress_std_max": float(ss.max()),
            "energy_std_mean": float(es.mean()),
            "per_pressure": per_p,
        }

    def select(self, k: int, frames: list[Atoms], store) -> list[Atoms]:
        from gencrystal.learn.labels import structure_hash
        from gencrystal.learn.select import select_frames

        f = self.iter_dir(k) / "selected.extxyz"
        if self._done(k, "selected"):
            return _read_frames(f)
        level = self.backend.level_of_theory
        floor = self.cfg.select.get("min_volume_per_atom")
        pool, scores = [], []
        for a in frames:
            if "error" in a.info or (floor and a.get_volume() / len(a) < float(floor)):
                continue
            if "forces_std" in a.info:
                fs, ss = float(a.info["forces_std"]), float(a.info["stress_std"])
                if not self.policy.uncertain(fs, ss):
                    continue
                score = self.policy.score(fs, ss)
            else:
                score = 1.0  # no committee yet: every frame is a candidate, diversity decides
            key = structure_hash(a, level)
            if key in store or key in self.failed:
                continue
            pool.append(a)
            scores.append(score)
        idx = select_frames(pool, scores, self.n_select, self.elements, seed=self.seed + k)
        chosen = _plain([pool[i] for i in idx])
        for a, i in zip(chosen, idx):
            a.info["uncertainty_score"] = float(scores[i])
        write_extxyz(chosen, f)
        self._set_stage(k, "selected")
        return chosen

    def label(self, k: int, selected: list[Atoms], store) -> dict[str, Any]:
        """DFT single points of the selected frames (never twice for one hash)."""
        from tqdm.auto import tqdm

        from gencrystal.fanout import single_threaded
        from gencrystal.learn.labels import (
            add_label_to_db,
            dft_single_point,
            labels_from_db,
            structure_hash,
        )

        level = self.backend.level_of_theory
        n_new, n_skipped, n_failed, wall = 0, 0, 0, 0.0
        if not self._done(k, "labelled"):
            with single_threaded(1):
                for a in tqdm(selected, desc=f"iter {k}: DFT labels", disable=not self.progress, leave=False):
                    key = structure_hash(a, level)
                    if key in store:
                        n_skipped += 1
                        continue
                    recovered = labels_from_db(self.db, [key]) if self.db is not None else {}
                    if key in recovered:
                        lab = recovered[key]
                        n_skipped += 1
                    elif key in self.failed:
                        n_skipped += 1
                        continue
                    else:
                        try:
                            lab = dft_single_point(self.backend, a)
                        except GencrystalError as exc:  # SCF failure etc.: recorded, never retried
                            self.failed[key] = {
                                "iteration": int(k),
                                "error": str(exc),
                                "volume_per_atom": a.get_volume() / len(a),
                            }
                            write_json(self.failed, self.out / FAILED_FILE)
                            n_failed += 1
                            continue
                        lab.info.update(
                            {
                                "label_hash": key,
                                "level_of_theory": level,
                                "iteration": int(k),
                                "pressure_gpa": float(a.info.get("pressure_gpa", 0.0)),
                                **dft_settings(self.backend, a),
                            }
                        )
                        wall += float(lab.info.get("dft_wall_s", 0.0))
                        n_new += 1
                        if self.db is not None:
                            add_label_to_db(self.db, lab, source=f"learn:{k}")
                    store.add(lab)
            self._set_stage(k, "labelled")
        return {"n_new_labels": n_new, "n_skipped_labels": n_skipped, "n_failed_labels": n_failed, "dft_wall_s": round(wall, 2)}

    def train(self, k: int, store) -> Path:
        from gencrystal.fanout import single_threaded
        from gencrystal.learn.finetune import train_committee

        d = self.committee_dir(k)
        if self._done(k, "trained"):
            return d
        if len(store) == 0:
            raise GencrystalError("no DFT labels to fine-tune on (every selected frame failed?)")
        with single_threaded(1):
            train_committee(
                store.labels,
                d,
                self.finetune,
                level_of_theory=f"chgnet-committee-{self.out.name}-it{k}",
                progress=self.progress,
                iteration=k,
                dft_level_of_theory=self.backend.level_of_theory,
            )
        self._set_stage(k, "trained")
        return d

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or resume) the loop; returns the summary also written to ``out/summary.json``."""
        from gencrystal.learn.labels import LabelStore

        store = LabelStore(self.out / LABELS_FILE)
        k = int(self.state["iteration"])
        if self.state.get("done") and k + 1 >= self.iterations:
            return self._summary(store)
        if self.state.get("done"):
            self.state["done"] = False
        while k < self.iterations:
            if (
                self.state["stage"] == "trained"
                and int(self.state["iteration"]) == k
                and any(h["iteration"] == k for h in self.state["history"])
            ):
                k += 1
                continue
            t0 = time.perf_counter()
            cands = self.sample(k)
            frames = self.relax(k, cands)
            stats = self.spread_stats(k, frames)
            frac = stats.get("uncertain_fraction")
            if k > 0 and frac is not None and frac < float(self.policy.stop_fraction):
                self.state["history"].append(
                    {"iteration": k, **stats, "n_new_labels": 0, "n_labels_total": len(store), "committee": None}
                )
                self.state.update(
                    done=True,
                    stop_reason=f"uncertain fraction {frac:.3f} < stop_fraction {self.policy.stop_fraction:g} at iteration {k}",
                )
                self._set_stage(k, "trained")
                break
            selected = self.select(k, frames, store)
            lab = self.label(k, selected, store)
            d = self.train(k, store)
            self.state["history"] = [h for h in self.state["history"] if h["iteration"] != k]
            # counted from the store, so an iteration resumed after its labelling stage reports them too
            lab["n_new_labels"] = store.by_iteration().get(k, 0)
            lab["dft_wall_s"] = round(
                sum(float(a.info.get("dft_wall_s", 0.0)) for a in store.labels if int(a.info.get("iteration", -1)) == k), 2
            )
            self.state["history"].append(
                {
                    "iteration": k,
                    **stats,
                    "n_selected": len(selected),
                    **lab,
                    "n_labels_total": len(store),
                    "committee": str(d),
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            )
            self._save_state()
            k += 1
        else:
            self.state.update(done=True, stop_reason=f"ran {self.iterations} iterations")
            self._save_state()
        return self._summary(store)

    def final_committee(self) -> Path | None:
        """The newest complete committee directory, or None."""
        from gencrystal.potentials.committee import is_committee_dir

        for k in range(self.iterations, -1, -1):
            if is_committee_dir(self.committee_dir(k)):
                return self.committee_dir(k)
        return None

    def _summary(self, store) -> dict[str, Any]:
        from gencrystal.runtime import thread_count

        final = self.final_committee()
        summary = {
            "composition": self.composition,
            "pressures_gpa": self.pressures,
            "dft_level_of_theory": self.backend.level_of_theory,
            "n_labels": len(store),
            "labels_per_iteration": store.by_iteration(),
            "history": self.state["history"],
            "stop_reason": self.state.get("stop_reason", ""),
            "committee": str(final) if final else None,
            "threads": thread_count(),
        }
        write_json(summary, self.out / "summary.json")
        return summary
