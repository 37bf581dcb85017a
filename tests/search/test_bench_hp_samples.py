"""scripts/bench_hp_samples.py: the per-sample diagnosis on structures whose answers are known."""

from __future__ import annotations

from pathlib import Path

from tests.scripts import load_script


def _script():
    mod = load_script("bench_hp_samples")
    return mod


def test_describe_counts_the_target_itself_a_collapsed_copy_and_a_p1_rattle():
    from gencrystal.known_structures import TARGETS

    bench = _script()
    known = TARGETS["sio2_rutile"].structure()
    v = known.get_volume() / len(known)
    collapsed = known.copy()
    collapsed.set_cell(known.cell * 0.3, scale_atoms=True)  # 0.027 of the volume (0.21 Å³/atom): refused by the guard
    rattled = known.copy()
    rattled.set_cell(known.cell * 1.1, scale_atoms=True)
    rattled.rattle(0.3, seed=1)
    d = bench.describe([known, collapsed, rattled], known, v)
    assert d["n"] == 3 and d["n_usable"] == 2 and d["guard_reasons"] == {"volume": 1}
    assert abs(d["volume_ratio_median"] - 1.0) < 1e-9 and d["denser_than_half"] == 1 / 3
    assert d["within_10pct"] == 1 / 3  # the rattled copy is 1.1³ = 1.33 times the volume
    assert d["target_space_group"] == "P4_2/mnm (136)" and d["with_target_space_group"] == 1
    assert d["matches_raw"] >= 1 and d["p1_fraction_of_usable"] == 0.5


def test_guard_kinds_and_reference_volumes_from_a_check_report(tmp_path):
    import json

    bench = _script()
    assert bench.guard_kind("input guard: 0.6 Å³/atom outside [1, 200]") == "volume"
    assert bench.guard_kind("input guard: atoms 0.2 Å apart (min distance 0.5 Å)") == "distance"
    assert bench.guard_kind("input guard: an atom has 89 neighbours within 3 Å (max_neighbors 60)") == "neighbours"
    rep = {"dft_level": "gpaw", "targets": [
        {"key": "a", "pressure_gpa": 50.0, "check": {"dft": {"volume_per_atom": 7.1, "converged": True}}},
        {"key": "b", "pressure_gpa": 80.0, "check": {"dft": {"volume_per_atom": 6.7, "converged": False}}},
        {"key": "c", "pressure_gpa": 0.0, "check": {"dft": None}}]}
    (tmp_path / "check.json").write_text(json.dumps(rep))
    assert bench.dft_volumes(str(tmp_path / "check.json")) == {"a": {"volume_per_atom": 7.1, "pressure_gpa": 50.0, "level": "gpaw"}}
    assert bench.dft_volumes(str(tmp_path / "absent.json")) == {}


def test_an_unusable_work_folder_is_one_line_before_any_sampling(tmp_path, capsys):
    import pytest

    from gencrystal.errors import GencrystalError

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(GencrystalError, match="--work .*cannot create it"):
        ckpt = Path(__file__).resolve().parents[2] / "checkpoints" / "gencrystal-hp-csp-heldout.ckpt"
        _script().main(["--ckpt", str(ckpt), "--targets", "li_ci16",
                        "--num-samples", "2", "--work", str(blocker / "x"), "--reports-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
