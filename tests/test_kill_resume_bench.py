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
    """Killed in its second seed's search (CHGNet, 3 structures per seed), the re-run reuses the
    first seed's record and continues the second search at its next structure."""
    pytest.importorskip("chgnet")

    def args(name):
        return ["--targets", "sio2_rutile", "--methods", "random", "--budget", "3", "--seeds", "0,1",
                "--dft-config", "none", "--steps", "8", "--chunk", "1", "--work", str(tmp_path / name),
                "--report", "hp", "--reports-dir", str(tmp_path / f"{name}_reports")]

    run_script("bench_hp_phases.py", args("whole"))
    whole = json.loads((tmp_path / "whole_reports" / "hp.json").read_text())
    runs = whole["targets"][0]["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and runs[1]["relaxed"] >= 2
    level = whole["targets"][0]["level_of_theory"]
    db = tmp_path / "killed" / "sio2_rutile" / level / "candidates-fmax0.1-steps8.db"
    seed0 = runs[0]["relaxed"]

    kill_when([sys.executable, str(REPO / "scripts" / "bench_hp_phases.py"), *args("killed")],
              lambda: sqlite_count(db) >= seed0 + 1, timeout=600)
    records = tmp_path / "killed" / "sio2_rutile" / level
    assert (records / "random-fmax0.1-steps8-seed0.json").is_file()
    assert not (records / "random-fmax0.1-steps8-seed1.json").exists()
    assert not (tmp_path / "killed_reports").exists()
    n_before = len(_rows(db))
    assert seed0 + 1 <= n_before < seed0 + runs[1]["relaxed"]  # killed mid-way through seed 1

    proc = run_script("bench_hp_phases.py", args("killed"))
    assert "random seed 0: located after" in proc.stdout and "from an earlier run" in proc.stdout
    resumed = json.loads((tmp_path / "killed_reports" / "hp.json").read_text())
    assert differences(whole, resumed, skip=("wall_s", "reused", "metadata")) == []
    a, b = _rows(tmp_path / "whole" / "sio2_rutile" / level / "candidates-fmax0.1-steps8.db"), _rows(db)
    assert a == b  # the same candidates, none twice, none lost
    assert len({(r[0], r[1]) for r in b}) == len(b) == sum(r["relaxed"] for r in runs)
    assert (tmp_path / "killed_reports" / "hp.md").read_text().count("| SiO2 rutile-type") >= 2
