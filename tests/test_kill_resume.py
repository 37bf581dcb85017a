"""Kill-resume: a long command SIGKILLed mid-way and run again gives what an uninterrupted
run gives, without redoing the finished part.

Cheap stand-ins keep these in `make test`: a slowed-down EMT potential for the hull
energies of `evaluate dng`, and an EMT "DFT" backend for `validate` (both in
tests/killresume.py, loaded by the child processes through Hydra ``_target_``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

sys.path.insert(0, str(Path(__file__).resolve().parent))
from killresume import differences, kill_cli_when, lines, run_cli  # noqa: E402


def _cells(seed: int, n: int, prefix: str):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        el = ["Cu", "Au", "Ni"][i % 3]
        a = bulk(el, "fcc", a={"Cu": 3.61, "Au": 4.08, "Ni": 3.52}[el] * (1 + 0.03 * rng.standard_normal()), cubic=True)
        if i % 4 == 3:  # a few binary cells
            a.symbols[0] = "Au" if el != "Au" else "Cu"
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        a.info["id"] = f"{prefix}{i}"
        out.append(a)
    return out


@pytest.fixture(scope="module")
def dng_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dng")
    write(d / "pred.extxyz", _cells(0, 10, "p"))
    write(d / "ref.extxyz", _cells(1, 4, "r"))
    write(d / "train.extxyz", _cells(2, 4, "t"))
    return d


def _dng_args(d: Path, out: Path) -> list[str]:
    return ["evaluate", "dng", f"pred={d / 'pred.extxyz'}", f"ref={d / 'ref.extxyz'}", f"train={d / 'train.extxyz'}",
            f"out={out}", "hull.relax_energies=true", "hull.steps=10", "hull.element_steps=10",
            "hull.element_prototypes=[fcc]", "potential._target_=killresume.slow_emt_potential",
            "+potential.delay_s=0.01", "coverage=false", "plots=false", "workers=1", "progress=false", "n_wdist=10"]


@pytest.mark.slow  # (three CLI runs: a minute and more on a busy machine)
def test_evaluate_dng_hull_energies_resume_after_sigkill(dng_inputs):
    d = dng_inputs
    run_cli(_dng_args(d, d / "whole"))
    whole = json.loads((d / "whole" / "metrics.json").read_text())
    n_energies = lines(d / "whole" / "hull_energies.jsonl")
    assert whole["hull"]["n_computed"] == n_energies > 6

    cache = d / "killed" / "hull_energies.jsonl"
    kill_cli_when(_dng_args(d, d / "killed"), lambda: lines(cache) >= 3)
    assert 3 <= lines(cache) < n_energies and not (d / "killed" / "metrics.json").exists()
    run_cli(_dng_args(d, d / "killed"))
    resumed = json.loads((d / "killed" / "metrics.json").read_text())
    assert resumed["hull"]["n_cached"] >= 3  # the energies computed before the kill were not computed again
    assert resumed["hull"]["n_cached"] + resumed["hull"]["n_computed"] == n_energies
    assert lines(cache) == n_energies  # and none twice
    skip = ("wall_time_s", "n_cached", "n_computed", "cache")
    assert differences(whole, resumed, skip=skip) == []
    a = (d / "whole" / "per_structure.csv").read_text()
    b = (d / "killed" / "per_structure.csv").read_text()
    assert a == b


@pytest.fixture(scope="module")
def validate_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("validate")
    frames = _cells(3, 5, "c")
    for k, a in enumerate(frames):
        a.info.update(enthalpy_per_atom=-1.0 + 0.1 * k, converged=True, pressure_gpa=5.0)
    write(d / "relaxed.extxyz", frames)
    return d


def _validate_args(d: Path, out: Path) -> list[str]:
    return ["validate", f"input={d / 'relaxed.extxyz'}", f"out={out}", "top_k=5",
            "dft._target_=killresume.EMTBackend", "+dft.delay_s=0.05"]


@pytest.mark.slow  # (three CLI runs: a minute and more on a busy machine)
def test_validate_resumes_after_sigkill(validate_input):
    d = validate_input
    run_cli(_validate_args(d, d / "whole"))
    whole = json.loads((d / "whole" / "validation.json").read_text())
    assert whole["n_validated"] == 5

    partial = d / "killed" / ".partial"
    kill_cli_when(_validate_args(d, d / "killed"), lambda: len(list(partial.glob("*.extxyz"))) >= 2)
    n_done = len(list(partial.glob("*.extxyz")))
    assert 2 <= n_done < 5 and not (d / "killed" / "validation.json").exists()
    proc = run_cli(_validate_args(d, d / "killed"))
    assert f"resuming: {n_done} of 5 DFT relaxations already done" in proc.stdout
    resumed = json.loads((d / "killed" / "validation.json").read_text())
    assert differences(whole, resumed, skip=("wall_time_s", "dft_wall_s")) == []
    e1 = [a.info["enthalpy_per_atom"] for a in read(d / "whole" / "dft_relaxed.extxyz", ":")]
    e2 = [a.info["enthalpy_per_atom"] for a in read(d / "killed" / "dft_relaxed.extxyz", ":")]
    assert np.allclose(e1, e2, rtol=0, atol=1e-9)


LEARN = ["learn", "composition=Li2", "pressures=[0]", "iterations=1", "progress=false", "seed=3",
         "candidates.perturbations=3", "candidates.volume_scale=[0.95,1.05]", "candidates.rattle=0.08",
         "relax.steps=8", "relax.frame_every=4", "select.n_per_iteration=3",
         "finetune.n_members=2", "finetune.epochs=4", "finetune.batch_size=4"]


def _frames(path: Path) -> int:
    try:
        return path.read_text().count("Lattice=")
    except OSError:
        return 0


@pytest.mark.slow
def test_learn_resumes_after_sigkill_during_labelling(tmp_path):
    """Killed after its first DFT label (test-size GPAW), the loop resumes without relabelling
    and ends with the labels and summary of an uninterrupted run."""
    pytest.importorskip("gpaw")
    run_cli([*LEARN, f"out={tmp_path / 'whole'}", f"db={tmp_path / 'whole.db'}"], timeout=1800)
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert whole["n_labels"] == 3

    labels = tmp_path / "killed" / "labels.extxyz"
    kill_cli_when([*LEARN, f"out={tmp_path / 'killed'}", f"db={tmp_path / 'killed.db'}"],
                  lambda: _frames(labels) >= 1, timeout=1800)
    assert 1 <= _frames(labels) < 3
    run_cli([*LEARN, f"out={tmp_path / 'killed'}", f"db={tmp_path / 'killed.db'}"], timeout=1800)
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    timing = ("wall_s", "wall_time_s", "seconds", "dft_wall_s", "committee", "threads")
    assert resumed["history"][0]["n_skipped_labels"] >= 1  # labels done before the kill were not recomputed
    assert differences({k: v for k, v in whole.items() if k != "history"},
                       {k: v for k, v in resumed.items() if k != "history"}, skip=timing) == []
    a = read(tmp_path / "whole" / "labels.extxyz", ":")
    b = read(tmp_path / "killed" / "labels.extxyz", ":")
    key = {x.info["label_hash"]: x for x in a}
    assert sorted(key) == sorted(x.info["label_hash"] for x in b)
    for x in b:
        y = key[x.info["label_hash"]]
        assert abs(x.get_potential_energy() - y.get_potential_energy()) < 1e-6
        assert np.allclose(x.get_forces(), y.get_forces(), atol=1e-6)


@pytest.mark.slow
def test_bench_demo_seeds_resumes_after_sigkill(tmp_path):
    """scripts/bench_demo_seeds.py killed after its first seed resumes to the uninterrupted report."""
    from killresume import REPO, kill_when

    ckpt = REPO / "checkpoints" / "gencrystal-hp-csp-small.ckpt"
    if not ckpt.is_file():
        pytest.skip("shipped checkpoint missing")
    script = [sys.executable, str(REPO / "scripts" / "bench_demo_seeds.py"), "--seeds", "3", "--report", "seeds"]
    cheap = ["num_samples=1", "steps=3", "workers=1"]

    def cmd(name):
        return [*script, "--out", str(tmp_path / name), "--reports-dir", str(tmp_path / f"{name}_reports"), *cheap]

    import subprocess

    from killresume import child_env

    for name in ("whole",):
        proc = subprocess.run(cmd(name), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-2000:]
    kill_when(cmd("killed"), lambda: (tmp_path / "killed" / "seed_0.json").is_file(), timeout=1800)
    assert not (tmp_path / "killed" / "seed_2.json").exists()
    proc = subprocess.run(cmd("killed"), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((tmp_path / "whole_reports" / "seeds.json").read_text())
    b = json.loads((tmp_path / "killed_reports" / "seeds.json").read_text())
    assert a["n_seeds"] == b["n_seeds"] == 3
    assert differences(a, b, skip=("wall_s", "metadata")) == []


def test_children_started_with_die_with_parent_preexec_end_with_their_parent(tmp_path):
    """runtime.die_with_parent_preexec: a child (through ``nice``, as the benchmarks start trainings)
    is SIGKILLed when its parent is; a child started without it outlives the parent."""
    import os
    import signal
    import subprocess
    import time

    from killresume import REPO, child_env

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    parent = (
        "import subprocess, sys, time\n"
        "from gencrystal.runtime import die_with_parent_preexec\n"
        "use = sys.argv[1] == '1'\n"
        "p = subprocess.Popen(['nice', '-n', '1', sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                     preexec_fn=die_with_parent_preexec() if use else None)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )

    def orphan_lives(use: bool) -> bool:
        proc = subprocess.Popen([sys.executable, "-c", parent, "1" if use else "0"], cwd=REPO, env=child_env(),
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            child = int(proc.stdout.readline())
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            t0 = time.time()
            while time.time() - t0 < 1.5:
                try:
                    state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    return False
                if state in ("Z", "X"):
                    return False
                time.sleep(0.05)
            return True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    assert orphan_lives(False)  # the control: without the preexec_fn the child survives its parent
    assert not orphan_lives(True)
