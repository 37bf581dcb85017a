"""Composition-grouped splits and the leakage report, on a constructed dataset whose counts are known by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from gencrystal.cli import compose, main
from gencrystal.errors import GencrystalError

PAIRS = [("Na", "Cl"), ("K", "Cl"), ("Na", "Br"), ("K", "Br"), ("Li", "F"), ("Na", "F"), ("K", "F"), ("Rb", "Cl"),
         ("Cs", "Cl"), ("Li", "Cl"), ("Rb", "Br"), ("Cs", "Br")]


def rocksalt(a, el):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(el), [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()


def cscl(a, el):
    return Structure(Lattice.cubic(a), list(el), [[0, 0, 0], [0.5, 0.5, 0.5]])


def _csv(rows, path):
    pd.DataFrame([{"material_id": sid, "cif": s.to(fmt="cif"), "formula": s.composition.reduced_formula}
                  for sid, s in rows]).to_csv(path, index=False)


@pytest.fixture()
def toy(tmp_path):
    """12 AB compositions x 2 polymorphs. val: both polymorphs of the first 6 and rock salt of the rest;
    test: CsCl of the last 6 (their composition also in val), plus an exact duplicate of val's NaCl rock salt
    and one new composition (MgO). Known leakage of test into val: 7 of 8 compositions, 7 structures; 1 duplicate."""
    folder = tmp_path / "toy"
    folder.mkdir()
    val = []
    for k, el in enumerate(PAIRS):
        val.append((f"rs-{k}", rocksalt(5.0 + 0.1 * k, el)))
        if k < 6:
            val.append((f"cs-{k}", cscl(3.0 + 0.1 * k, el)))
    test = [(f"cs-{k}", cscl(3.0 + 0.1 * k, el)) for k, el in enumerate(PAIRS) if k >= 6]
    test.append(("rs-0-again", rocksalt(5.0, PAIRS[0])))
    test.append(("mgo", rocksalt(4.2, ("Mg", "O"))))
    _csv(val, folder / "val.csv")
    _csv(test, folder / "test.csv")
    return tmp_path


def _args(root, *extra):
    return ["data=perov5", "data.folder=toy", f"data_root={root}", "data.cache_dir=false", "data.parse_workers=1",
            "data.progress=false", *extra]


def _comps(path):
    return set(pd.read_csv(path)["formula"])


def test_split_by_composition_is_disjoint_seeded_and_close_to_sizes(toy, capsys):
    assert main(["data", "split", *_args(toy, "seed=3")]) == 0
    d = toy / "toy" / "splits" / "polymorph"
    m = json.loads((d / "split.json").read_text())
    # offline protocol: val (18) + test (8) pooled; train/val from val's 18 rows (10 % hold-out -> 2), test 8
    assert m["source_protocol"] == "offline" and m["target_sizes"] == {"train": 16, "val": 2, "test": 8}
    assert sum(m["sizes"].values()) == 26
    for s in ("train", "val", "test"):
        assert abs(m["sizes"][s] - m["target_sizes"][s]) <= 2  # groups hold at most 2 rows (3 for NaCl)
    tr, va, te = (_comps(d / f"{s}.csv") for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr | va | te) == 13
    assert m["compositions_shared_between_splits"] == {"train-val": 0, "train-test": 0, "val-test": 0}
    first = (d / "test.csv").read_text()
    assert "polymorph split" in capsys.readouterr().out
    # an existing split is kept unless force=true; the same seed gives the same split, another seed another
    assert main(["data", "split", *_args(toy, "seed=3")]) == 2
    assert main(["data", "split", *_args(toy, "seed=3", "force=true")]) == 0
    assert (d / "test.csv").read_text() == first
    assert main(["data", "split", *_args(toy, "seed=4", "force=true")]) == 0
    assert (d / "test.csv").read_text() != first


def test_split_scheme_polymorph_loads_the_written_split(toy):
    from gencrystal.data.dataset import load_split

    cfg = compose("data_info", _args(toy))
    with pytest.raises(GencrystalError, match="gencrystal data split"):
        load_split({**dict(cfg.data), "split_scheme": "polymorph"}, "train", data_root=str(toy))
    assert main(["data", "split", *_args(toy)]) == 0
    data = {**dict(compose("data_info", _args(toy, "data.split_scheme=polymorph")).data)}
    parts = {s: load_split(data, s, data_root=str(toy)) for s in ("train", "val", "test")}
    assert {p.protocol for p in parts.values()} == {"polymorph"}
    comps = {s: set(p.table["formula"]) for s, p in parts.items()}
    assert not (comps["train"] & comps["test"]) and not (comps["val"] & comps["test"])
    assert sum(len(p) for p in parts.values()) == 26


def test_leakage_counts_on_the_constructed_example(toy, tmp_path):
    out = tmp_path / "info"
    assert main(["data", "info", *_args(toy, "split=test", "leakage=train+val", f"out={out}", "plot=false")]) == 0
    lk = json.loads((out / "summary.json").read_text())["leakage"]
    assert lk["n_test"] == 8 and lk["n_test_compositions"] == 8
    both = lk["against"]["train+val"]
    # offline: train + val = the val file; test compositions in it: the 6 CsCl ones + NaCl; MgO is new
    assert both["n_compositions_shared"] == 7 and both["n_test_structures_with_shared_composition"] == 7
    assert both["n_test_structures_duplicated"] == 1  # rs-0-again; the CsCl polymorphs of the last 6 are new
    # after the composition-grouped re-split nothing is shared
    assert main(["data", "split", *_args(toy)]) == 0
    out2 = tmp_path / "info2"
    assert main(["data", "info", *_args(toy, "data.split_scheme=polymorph", "split=test", "leakage=train+val",
                                          f"out={out2}", "plot=false")]) == 0
    c = json.loads((out2 / "summary.json").read_text())["leakage"]["against"]["train+val"]
    assert c["n_compositions_shared"] == 0 and c["n_test_structures_duplicated"] == 0


def test_leakage_report_closed_form():
    from gencrystal.metrics.leakage import leakage_report

    test = [rocksalt(5.0, ("Na", "Cl")), cscl(3.0, ("Na", "Cl")), rocksalt(4.2, ("Mg", "O"))]
    train = [rocksalt(5.3, ("Na", "Cl")), cscl(3.5, ("K", "Cl"))]
    r = leakage_report(test, {"train": train})
    c = r["against"]["train"]
    assert r["n_test_compositions"] == 2 and c["n_compositions_shared"] == 1
    assert c["n_test_structures_with_shared_composition"] == 2
    assert c["n_test_structures_duplicated"] == 1  # the rock salt (rescaled lattice); the CsCl polymorph is not
    assert c["fraction_test_structures_duplicated"] == pytest.approx(1 / 3)


def test_single_composition_needs_by_structure_and_dedupe_removes_duplicates(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = [(f"c{k}", rocksalt(5.0 + 0.2 * k, ("Na", "Cl"))) for k in range(3)]  # all one crystal, rescaled
    rows += [(f"d{k}", cscl(3.0 + 0.2 * k, ("Na", "Cl"))) for k in range(3)]
    _csv(rows[:4], folder / "val.csv")
    _csv(rows[4:], folder / "test.csv")
    assert main(["data", "split", *_args(tmp_path)]) == 2  # one composition: refused, nothing written
    assert not (folder / "splits").exists()
    assert main(["data", "split", *_args(tmp_path, "by=structure", "dedupe=true")]) == 0
    m = json.loads((folder / "splits" / "unique" / "split.json").read_text())
    assert m["n_duplicates_removed"] == 4 and sum(m["sizes"].values()) == 2 and m["n_groups"] == 2
