"""`gencrystal evaluate dng hull.relax_energies=true potential=chgnet`: energies computed with a
potential, elemental references built from prototypes, energy above the hull, resume from the cache.

CHGNet 0.3.0 ships in its wheel (offline); cells here have 1-2 atoms so that it stays fast.
"""

from __future__ import annotations

import csv
import json

import pytest

from gencrystal.cli import main
from gencrystal.io import write_extxyz
from gencrystal.structures import to_atoms

pytest.importorskip("chgnet")


def _nacl(a: float = 5.64, x: str = "Na", y: str = "Cl"):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [x, y], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


@pytest.fixture()
def files(tmp_path):
    from pymatgen.core import Lattice, Structure

    ref = to_atoms(_nacl())
    ref.info["id"] = "rocksalt"
    same = ref.copy()
    same.info["id"] = "same-as-ref"
    strained = ref.copy()
    strained.set_cell(ref.cell * 1.08, scale_atoms=True)  # 8 % linear strain, 26 % volume
    strained.info["id"] = "strained"
    cscl = to_atoms(Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    cscl.info["id"] = "cscl"
    pred, ref_path = tmp_path / "pred.extxyz", tmp_path / "ref.extxyz"
    write_extxyz([same, strained, cscl], pred)
    write_extxyz([ref], ref_path)
    return pred, ref_path


def _run(pred, ref, out, *extra):
    return main(["evaluate", "dng", f"pred={pred}", f"ref={ref}", f"train={ref}", f"out={out}", "coverage=false",
                 "hull.relax_energies=true", "potential=chgnet", "potential.device=cpu", "workers=1",
                 "progress=false", "plots=false", "hull.element_prototypes=[reference,fcc]", *extra])


def _e_hull(out):
    with open(out / "per_structure.csv") as fh:
        return {r["id"]: float(r["e_above_hull_eV_per_atom"]) for r in csv.DictReader(fh)}


def test_single_point_hull_reference_on_hull_strained_above_and_resume(files, tmp_path):
    pred, ref = files
    out = tmp_path / "static"
    assert _run(pred, ref, out, "hull.steps=0") == 0
    m = json.loads((out / "metrics.json").read_text())
    h = m["hull"]
    assert h["level_of_theory"].startswith("chgnet")
    assert h["reference_set"] == "train" and h["n_reference_structures"] == 1
    assert set(h["elemental_references_added"]) == {"Na", "Cl"}  # built from prototypes, relaxed with CHGNet
    assert h["elements_without_reference"] == []
    eh = _e_hull(out)
    assert eh["same-as-ref"] == pytest.approx(0.0, abs=1e-6)  # the reference itself lies on the hull
    assert eh["strained"] > 0.02                             # a strained copy (single point) lies above it
    # S.U.N. is consistent with its parts: the copies are not novel, so only the CsCl cell may count
    assert m["novel_rate"] == pytest.approx(1 / 3)
    assert m["n_sun"] == int(eh["cscl"] <= m["stability_threshold_eV_per_atom"])
    # a re-run computes nothing: every energy comes from out/hull_energies.jsonl
    n_lines = len((out / "hull_energies.jsonl").read_text().splitlines())
    assert n_lines == h["n_computed"] >= 3
    assert _run(pred, ref, out, "hull.steps=0") == 0
    h2 = json.loads((out / "metrics.json").read_text())["hull"]
    assert h2["n_computed"] == 0 and h2["n_cached"] == h["n_computed"] + h["n_cached"]
    assert _e_hull(out) == eh


def test_relaxed_hull_strained_copy_relaxes_back(files, tmp_path):
    pred, ref = files
    out = tmp_path / "relaxed"
    assert _run(pred, ref, out, "hull.steps=200", "hull.fmax=0.02") == 0
    eh = _e_hull(out)
    assert eh["same-as-ref"] == pytest.approx(0.0, abs=1e-6)
    assert abs(eh["strained"]) < 5e-3  # relaxed with the potential, the strained copy returns to the reference
    assert json.loads((out / "metrics.json").read_text())["hull"]["relaxation"]["steps"] == 200


@pytest.mark.parametrize("arg, needle", [("hull.reference=bogus", "hull.reference"),
                                         ("hull.pressure=-1", "negative"),
                                         ("hull.steps=-2", "hull.steps")])
def test_bad_hull_settings_one_line_nothing_written(files, tmp_path, capsys, arg, needle):
    pred, ref = files
    out = tmp_path / "bad"
    assert _run(pred, ref, out, arg) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_hull_without_energies_or_potential_is_explained(files, tmp_path, capsys):
    from gencrystal.metrics.stability import stability

    with pytest.raises(Exception, match="energies.key"):
        stability([], [], energy_key=None, compute=False)


def test_elemental_candidates_are_real_crystals():
    from gencrystal.metrics.stability import elemental_candidates
    from gencrystal.structures import min_interatomic_distance

    names = [n for n, _ in elemental_candidates("Si")]
    assert names == ["Si:reference", "Si:fcc", "Si:bcc", "Si:sc", "Si:hcp", "Si:diamond"]
    assert all(min_interatomic_distance(a) >= 2.0 - 1e-6 for _, a in elemental_candidates("Si")[1:])
    # oxygen has no crystalline ASE reference state (diatomic gas): prototypes only
    assert [n for n, _ in elemental_candidates("O")][0] == "O:fcc"
