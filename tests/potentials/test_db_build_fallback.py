"""`gencrystal db build potential=<committee> potential@fallback_potential=chgnet`: each structure is
relaxed by the potential whose DFT labels cover it, and each row records that level of theory."""

from __future__ import annotations

from ase.io import write

from gencrystal.cli import main
from gencrystal.db.schema import connect
from gencrystal.known_structures import prototypes


def test_structures_outside_the_committee_go_to_the_fallback(committee_dir, tmp_path, capsys):
    two = [a for a in prototypes() if a.info["id"] in ("Li-bcc", "SiO2-stishovite")]
    src = tmp_path / "two.extxyz"
    write(str(src), two)
    db = tmp_path / "hp.db"
    args = ["db", "build", f"source={src}", "pressures=[50,150]", f"db={db}", f"potential.path={committee_dir}",
            "potential=hp_committee", "potential@fallback_potential=chgnet", "relax.fmax=0.5", "relax.steps=200",
            "progress=false", "cluster.workers=1"]
    assert main(args) == 0
    levels = {(r.material_id.split(":")[-1], round(r.pressure_gpa)): r.level_of_theory for r in connect(str(db)).select()}
    # Li at 50 GPa lies inside the committee's labels (Li, Si; 0-100 GPa); SiO2 (O) and 150 GPa do not
    assert levels[("Li-bcc", 50)] == "chgnet-committee-test"
    assert levels[("SiO2-stishovite", 50)] == "chgnet-0.3.0"
    assert levels[("Li-bcc", 150)] == levels[("SiO2-stishovite", 150)] == "chgnet-0.3.0"
    out = capsys.readouterr().out
    assert out.count("db build:") == 3  # committee at 50 GPa, CHGNet at 50 GPa, CHGNet at 150 GPa
    assert main(args) == 0  # resumed: every task is in the ledger
    again = capsys.readouterr().out
    assert again.count("0 relaxed now") == 3 and len(connect(str(db))) == 4  # 2 structures x 2 pressures
