"""The demo with a committee: which systems the committee relaxes, the named fallback, and the
uncertainty column beside each enthalpy."""

from __future__ import annotations

import json

from ase.build import bulk


def _relaxed(atoms, sid, h, potential):
    a = atoms.copy()
    a.info = {"id": sid, "enthalpy_per_atom": h, "converged": True, "potential": potential}
    return a


def test_split_by_coverage_names_the_element_and_the_fallback(committee_dir):
    from gencrystal.demo import prototypes, split_by_coverage

    stish = next(a for a in prototypes() if a.info["id"] == "SiO2-stishovite")
    li = bulk("Li", "bcc", a=3.0, cubic=True)
    covered, rest, messages = split_by_coverage([li, stish, li.repeat((2, 1, 1))], str(committee_dir), "chgnet", 50.0)
    assert [a.get_chemical_formula() for a in covered] == ["Li2", "Li4"] and len(rest) == 1
    assert any(m.startswith("SiO2: element O is outside") and "fallback potential chgnet" in m for m in messages)
    _, rest_hp, msgs = split_by_coverage([li], str(committee_dir), "chgnet", 150.0)
    assert len(rest_hp) == 1 and "150 GPa is outside" in msgs[0]
    every, none, _ = split_by_coverage([li, stish], "chgnet", "chgnet", 50.0)  # a universal potential covers all
    assert len(every) == 2 and not none


def test_summarize_prints_the_committee_spread_beside_the_enthalpy(committee_dir, tmp_path):
    from gencrystal.demo import CAUTION, summarize
    from gencrystal.io import write_extxyz
    from gencrystal.potentials.shared_trunk import load_shared_trunk

    level = load_shared_trunk(committee_dir, "cpu").meta["level_of_theory"]
    li = [_relaxed(bulk("Li", "bcc", a=2.6, cubic=True), "known:Li-bcc", -1.0, level),
          _relaxed(bulk("Li", "fcc", a=3.3), "known:Li-fcc", -0.99, level)]
    sio2 = [_relaxed(bulk("Si", "diamond", a=5.43), "x", -5.0, "chgnet-0.3.0")]  # stand-in for a fallback system
    sio2[0].info["formula"] = "Si2"
    write_extxyz(li, tmp_path / "main.extxyz")
    write_extxyz(sio2, tmp_path / "fallback.extxyz")
    text = summarize([tmp_path / "main.extxyz", tmp_path / "fallback.extxyz"], tmp_path / "demo", 50.0,
                     uncertainty=str(committee_dir))
    li_row = next(line for line in text.splitlines() if "known:Li-bcc" in line and "Im-3m" in line)
    # head 1 = head 0 + 10 meV/atom, head 2 rescaled: the spread is at least the 10 meV/atom shift's share
    assert float(li_row.split()[6]) > 3.0  # rank, id, formula, space group (2 words), H, +-H
    assert "+-H (meV/at)" in text and f"potential: {level}" in text and "potential: chgnet-0.3.0" in text
    assert f"Si: {CAUTION}" in text  # the CHGNet-relaxed system keeps the caution
    saved = json.loads((tmp_path / "demo" / "ranking.json").read_text())["ranking"]
    assert saved["Li"][0]["committee_spread"]["energy_std_mev"] > 3.0 and "committee_spread" not in saved["Si"][0]


def test_relax_with_fallback_relaxes_each_system_on_the_potential_that_covers_it(committee_dir):
    """The demo and its over-seeds benchmark relax Li with the committee and SiO2 (O outside its
    labels) with the named fallback; without a fallback the uncovered system is refused."""
    import pytest
    from omegaconf import OmegaConf

    from gencrystal.demo import prototypes, relax_with_fallback
    from gencrystal.errors import GencrystalError

    stish = next(a for a in prototypes() if a.info["id"] == "SiO2-stishovite").copy()
    stish.info["id"] = "known:SiO2-stishovite"
    li = bulk("Li", "bcc", a=3.0, cubic=True)
    li.info["id"] = "known:Li-bcc"
    committee = {"_target_": "gencrystal.potentials.shared_trunk.load_shared_trunk_potential",
                 "path": str(committee_dir), "device": "cpu"}
    cfg = OmegaConf.create({"potential": committee, "fallback_potential": "chgnet", "pressure": 50.0,
                            "optimizer": "FIRE", "fmax": 0.5, "steps": 2, "workers": 1, "matcher": "csp"})
    lines: list[str] = []
    parts = relax_with_fallback([li, stish], cfg, log=lines.append)
    assert [(part, [r.atoms.info["id"] for r in results]) for part, _, results in parts] == [
        ("main", ["known:Li-bcc"]), ("fallback", ["known:SiO2-stishovite"])]
    assert parts[1][1] == "chgnet" and parts[0][1] != "chgnet"
    assert parts[0][2][0].atoms.info["potential"] == "chgnet-committee-test"
    assert any("element O is outside" in m for m in lines) and sum(m.startswith("relaxing 1 structures") for m in lines) == 2
    with pytest.raises(GencrystalError, match="does not cover SiO2"):
        relax_with_fallback([stish], OmegaConf.merge(cfg, {"fallback_potential": None}))
