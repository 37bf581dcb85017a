"""Kill-resume of the long benchmark scripts: each is started on a tiny input, SIGKILLed (its
whole process group) once part of its work is on disk, run again, and its report must equal
an uninterrupted run's, with nothing recomputed twice and nothing lost.

(scripts/bench_demo_seeds.py is covered in tests/test_kill_resume.py. The timing benchmarks
bench_data, bench_relax, bench_sample and bench_train measure one invocation's wall times and
take a few minutes at most: a resumed timing would not be a timing, so they have no resume.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from killresume import REPO, differences, kill_when, run_script, sqlite_count  # noqa: E402


def _rows(db: Path) -> list[tuple]:
    """(search_id, candidate, status, enthalpy per atom) of every row of a search database."""
    from ase.db import connect

    return sorted((r.search_id, int(r.candidate), r.status, round(float(r.get("enthalpy_per_atom", float("nan"))), 7))
                  for r in connect(str(db)).select())


@pytest.mark.slow
def test_bench_hp_phases_resumes_mid_search_after_sigkill(tmp_path):
    """Killed after the first structure of its search (CHGNet, 2 structures), the re-run continues the
    search at its next structure and ends with the uninterrupted run's report and candidates.
    (A finished search's record being reused: tests/search/test_target_check.py.)"""
    pytest.importorskip("chgnet")

    def args(name):
        return ["--targets", "sio2_rutile", "--methods", "random", "--budget", "2", "--seeds", "0",
                "--dft-config", "none", "--steps", "8", "--chunk", "1", "--work", str(tmp_path / name),
                "--report", "hp", "--reports-dir", str(tmp_path / f"{name}_reports")]

    run_script("bench_hp_phases.py", args("whole"))
    whole = json.loads((tmp_path / "whole_reports" / "hp.json").read_text())
    runs = whole["targets"][0]["runs"]
    assert [r["seed"] for r in runs] == [0] and runs[0]["relaxed"] >= 2
    level = whole["targets"][0]["level_of_theory"]
    folder = tmp_path / "killed" / "sio2_rutile" / level
    db = folder / "candidates-fmax0.1-steps8.db"

    kill_when([sys.executable, str(REPO / "scripts" / "bench_hp_phases.py"), *args("killed")],
              lambda: sqlite_count(db) >= 1, timeout=600)
    assert not (folder / "random-fmax0.1-steps8-seed0.json").exists() and not (tmp_path / "killed_reports").exists()
    n_before = len(_rows(db))
    assert 1 <= n_before < runs[0]["relaxed"]  # killed mid-search

    run_script("bench_hp_phases.py", args("killed"))
    resumed = json.loads((tmp_path / "killed_reports" / "hp.json").read_text())
    assert differences(whole, resumed, skip=("wall_s", "metadata")) == []
    a, b = _rows(tmp_path / "whole" / "sio2_rutile" / level / "candidates-fmax0.1-steps8.db"), _rows(db)
    assert a == b  # the same candidates, none twice, none lost
    assert len({(r[0], r[1]) for r in b}) == len(b) == runs[0]["relaxed"]
    assert "| SiO2 rutile-type (stishovite) |" in (tmp_path / "killed_reports" / "hp.md").read_text()

FLOW = ["--datasets", "perov5", "--steps", "perov5=4", "--batch-size", "8", "--n-test", "perov5=2", "--pc-n", "perov5=1",
        "--pc-steps", "20", "--flow-nfe", "2", "--flow-extra", "--parallel", "2", "--workers", "1", "--no-metre"]


def _flow_args(root: Path, name: str) -> list[str]:
    return [*FLOW, "--run-dir", str(root / name), "--reports-dir", str(root / f"{name}_reports")]


def _frames_close(a: Path, b: Path, atol: float = 1e-6) -> bool:
    import numpy as np
    from ase.io import read

    fa, fb = read(str(a), ":"), read(str(b), ":")
    return len(fa) == len(fb) > 0 and all(
        x.get_chemical_formula() == y.get_chemical_formula() and np.allclose(x.cell[:], y.cell[:], atol=atol)
        and np.allclose(x.positions, y.positions, atol=atol) for x, y in zip(fa, fb))


@pytest.fixture(scope="module")
def flow_whole(tmp_path_factory, data_root):
    """An uninterrupted reduced run of scripts/bench_flow_vs_diffusion.py (two 4-step perov5 trainings)."""
    root = tmp_path_factory.mktemp("flow")
    run_script("bench_flow_vs_diffusion.py", _flow_args(root, "whole"))
    return root


@pytest.mark.slow
def test_bench_flow_vs_diffusion_trainings_die_with_the_script(tmp_path, data_root):
    """The script alone SIGKILLed (as by the OOM killer) while its two training subprocesses run:
    they must end with it, not race the trainings a re-run starts in the same folders."""
    script = [sys.executable, str(REPO / "scripts" / "bench_flow_vs_diffusion.py"), *_flow_args(tmp_path, "killed")]
    marker = f"out={tmp_path / 'killed' / 'train_perov5_'}"

    def training() -> bool:  # both `gencrystal train` subprocesses run (their command lines name their folders)
        n = 0
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            n += any(a.decode(errors="replace").startswith(marker) for a in args) and b"train" in args
        return n >= 2

    kill_when(script, training, parent_only=True, timeout=600)  # fails if a training outlives the script
    assert not list((tmp_path / "killed").glob("train_*/bench_train.json"))
    assert not list((tmp_path / "killed").glob("train_*/checkpoints/*.ckpt"))


@pytest.mark.slow
def test_bench_flow_vs_diffusion_resumes_after_sigkill_in_sampling(flow_whole):
    """Its trainings done (those of the uninterrupted run), the script is SIGKILLed after its first
    sample file; the re-run reuses it and its report and sample files equal the uninterrupted run's."""
    import shutil

    root = flow_whole
    whole = json.loads((root / "whole_reports" / "flow_vs_diffusion.json").read_text())
    for k in ("diffusion", "flow"):  # (the trainings' own kill-resume: tests/model/test_training.py)
        shutil.copytree(root / "whole" / f"train_perov5_{k}", root / "killed" / f"train_perov5_{k}")
    script = [sys.executable, str(REPO / "scripts" / "bench_flow_vs_diffusion.py"), *_flow_args(root, "killed")]
    samples = root / "killed" / "samples"
    kill_when(script, lambda: (samples / "perov5_diffusion_fast.json").is_file(), timeout=600)
    assert not (samples / "perov5_flow_euler_2.json").exists() and not (root / "killed_reports").exists()
    run_script("bench_flow_vs_diffusion.py", _flow_args(root, "killed"))
    resumed = json.loads((root / "killed_reports" / "flow_vs_diffusion.json").read_text())
    skip = ("wall_s", "sampling_wall_s", "wall_per_structure_s", "metadata", "run_dir", "reports_dir")
    assert differences(whole, resumed, skip=skip) == []
    assert [r["label"] for r in resumed["datasets"]["perov5"]["main"]] == ["diffusion fast", "flow euler 2"]
    for name in ("perov5_diffusion_fast", "perov5_diffusion_pc", "perov5_flow_euler_2"):
        assert _frames_close(root / "whole" / "samples" / f"{name}.extxyz", samples / f"{name}.extxyz"), name


def _mp20_args(root: Path, name: str, ckpt: Path) -> list[str]:
    return ["--dataset", "perov5", "--ckpt", str(ckpt), "--n-test", "3", "--samplers", "fast", "--nfe-sweep",
            "--prerelax-n", "3", "--relax-steps", "6", "--potential", "chgnet", "--dft-n", "0", "--no-leakage",
            "--no-metre", "--workers", "1", "--run-dir", str(root / name), "--reports-dir", str(root / f"{name}_reports")]


@pytest.mark.slow
def test_bench_mp20_resumes_after_sigkill_in_the_mlp_stage(flow_whole):
    """scripts/bench_mp20.py (the flow benchmark's 4-step diffusion model as --ckpt, CHGNet pre-relaxation)
    killed after its first cached MLP relaxation: the re-run reuses its samples and relaxations and
    writes the uninterrupted run's report."""
    pytest.importorskip("chgnet")
    root = flow_whole
    ckpt = root / "whole" / "train_perov5_diffusion" / "checkpoints" / "last.ckpt"
    run_script("bench_mp20.py", _mp20_args(root, "mp_whole", ckpt))
    whole = json.loads((root / "mp_whole_reports" / "perov5_csp.json").read_text())
    assert whole["stages"]["mlp"]["n_samples"] == 3
    n_relaxed = whole["stages"]["mlp"]["n_relaxed"]  # samples the structure check flags are not relaxed
    assert n_relaxed >= 2 and len(list((root / "mp_whole" / "mlp_cache").glob("*.extxyz"))) == n_relaxed

    cache = root / "mp_killed" / "mlp_cache"
    kill_when([sys.executable, str(REPO / "scripts" / "bench_mp20.py"), *_mp20_args(root, "mp_killed", ckpt)],
              lambda: len(list(cache.glob("*.extxyz"))) >= 1, timeout=600)
    n_before = len(list(cache.glob("*.extxyz")))
    assert 1 <= n_before < n_relaxed and not (root / "mp_killed_reports").exists()
    assert not list(cache.glob(".*"))  # no half-written temporary file left behind as a cache entry
    run_script("bench_mp20.py", _mp20_args(root, "mp_killed", ckpt))
    resumed = json.loads((root / "mp_killed_reports" / "perov5_csp.json").read_text())
    assert resumed["stages"]["mlp"]["n_cached"] == n_before  # relaxed before the kill, not again
    assert len(list(cache.glob("*.extxyz"))) == n_relaxed
    skip = ("wall_s", "wall_s_this_invocation", "metadata", "run_dir", "reports_dir", "n_cached", "reused",
            "main_sampling_wall_s")
    # the structure relaxed after the kill is relaxed in a fresh process: CHGNet (float32) moves
    # atoms of an unconverged 6-step relaxation by up to ~1e-5 Å between processes, which shifts
    # an RMSE by a few 1e-6 relative; the counts (nothing lost, nothing relaxed twice) are exact
    assert differences(whole, resumed, skip=skip, rel=1e-4) == []
    assert _frames_close(root / "mp_whole" / "samples_mlp_relaxed.extxyz", root / "mp_killed" / "samples_mlp_relaxed.extxyz",
                         atol=1e-4)


# the smallest loop `learn` runs (test-size GPAW labels; as in tests/test_kill_resume.py)
AL_LOOP = ["seed=3", "candidates.perturbations=3", "candidates.volume_scale=[0.95,1.05]", "candidates.rattle=0.08",
           "relax.steps=8", "relax.frame_every=4", "select.n_per_iteration=3",
           "finetune.n_members=2", "finetune.epochs=4", "finetune.batch_size=4"]


@pytest.mark.slow
def test_bench_active_learning_resumes_after_sigkill_in_the_dft_eos(tmp_path):
    """Killed after the first of its two DFT EOS points (the loop done), the re-run reuses the
    loop and that point, computes only the second, and writes the uninterrupted run's report."""
    pytest.importorskip("gpaw")
    pytest.importorskip("chgnet")

    def args(name):
        return ["--system", "li", "--iterations", "1", "--eos-pressures", "0,25", "--fmax", "0.05", "--steps", "30",
                "--cutoff-check", "0", "--convergence-factor", "0", "--out", str(tmp_path / name),
                "--reports-dir", str(tmp_path / f"{name}_reports"), "--", "pressures=[0]", *AL_LOOP]

    run_script("bench_active_learning.py", args("whole"), timeout=1800)
    whole = json.loads((tmp_path / "whole_reports" / "active_learning.json").read_text())["systems"]["li"]
    assert list(whole["dft_reference"]) == ["0", "25"]
    # bcc Li shrinks under 25 GPa with DFT and with every potential
    assert whole["dft_reference"]["25"]["volume_per_atom"] < whole["dft_reference"]["0"]["volume_per_atom"]

    eos_dft = tmp_path / "killed" / "eos_dft.json"

    def one_point_done() -> bool:
        try:
            return len(json.loads(eos_dft.read_text())) >= 1
        except (OSError, ValueError):
            return False

    kill_when([sys.executable, str(REPO / "scripts" / "bench_active_learning.py"), *args("killed")], one_point_done,
              timeout=1800)
    assert list(json.loads(eos_dft.read_text())) == ["0"] and not (tmp_path / "killed_reports").exists()
    proc = run_script("bench_active_learning.py", args("killed"), timeout=1800)
    assert "DFT 0 GPa" not in proc.stdout and "DFT 25 GPa" in proc.stdout  # the point done before the kill is reused
    resumed = json.loads((tmp_path / "killed_reports" / "active_learning.json").read_text())["systems"]["li"]
    timing = ("wall_s", "wall_time_s", "seconds", "dft_wall_s", "loop_wall_s", "loop_wall_s_this_run",
              "eos_wall_s_this_run", "dft_eos_wall_s", "metadata", "committee", "threads", "config")
    assert differences(whole, resumed, skip=timing) == []


def _samples_args(root: Path, name: str) -> list[str]:
    return ["--ckpt", str(REPO / "checkpoints" / "gencrystal-hp-csp-heldout.ckpt"), "--targets", "li_ci16,b_alpha_ga",
            "--num-samples", "2", "--work", str(root / name), "--reports-dir", str(root / f"{name}_reports")]


@pytest.mark.slow
def test_bench_hp_samples_resumes_after_sigkill_between_targets(tmp_path):
    """scripts/bench_hp_samples.py (held-out model, two targets, two samples each) SIGKILLed once its
    first target is on disk: the re-run reuses that target, samples only the second and writes the
    uninterrupted run's report."""
    run_script("bench_hp_samples.py", _samples_args(tmp_path, "whole"))
    whole = json.loads((tmp_path / "whole_reports" / "hp_samples.json").read_text())
    assert whole["reused_targets"] == 0 and [t["key"] for t in whole["targets"]] == ["li_ci16", "b_alpha_ga"]

    killed = tmp_path / "killed"
    script = [sys.executable, str(REPO / "scripts" / "bench_hp_samples.py"), *_samples_args(tmp_path, "killed")]
    kill_when(script, lambda: len(list(killed.glob("*.json"))) >= 1, timeout=600)
    assert [p.name.split("-")[0] for p in killed.glob("*.json")] == ["li_ci16"]
    assert not (tmp_path / "killed_reports").exists()
    proc = run_script("bench_hp_samples.py", _samples_args(tmp_path, "killed"))
    assert "Li cI16: reused" in proc.stdout and proc.stdout.count("samples\n") == 1  # only B was sampled again
    resumed = json.loads((tmp_path / "killed_reports" / "hp_samples.json").read_text())
    assert resumed["reused_targets"] == 1
    assert differences(whole, resumed, skip=("wall_s", "metadata", "reused_targets", "plot")) == []
