"""Export (composition-grouped splits) and statistics of the structure database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from gencrystal.db.build import build_database
from gencrystal.db.export import assign_splits, export_splits
from gencrystal.db.schema import connect
from gencrystal.db.stats import collect_stats


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    from ase.calculators.emt import EMT

    from gencrystal.potentials import calculator_potential

    pairs = [(el, bulk(el, "fcc", a=a)) for el, a in [("Cu", 3.6), ("Ni", 3.5), ("Al", 4.05), ("Ag", 4.1),
                                                        ("Au", 4.1), ("Pd", 3.9), ("Pt", 3.9)]]
    pairs.append(("Cu-bcc", bulk("Cu", "bcc", a=2.9)))
    url = str(tmp_path_factory.mktemp("db") / "hp.db")
    build_database(pairs, [0.0, 20.0], url, calculator_potential(EMT, "emt-test"),
                   relax_options={"fmax": 0.02, "steps": 200}, chunk_size=8, progress=False, source_label="t")
    return url


def test_assign_splits_is_seeded_and_close_to_fractions():
    sizes = {f"F{i}": 1 + i % 3 for i in range(60)}
    a = assign_splits(sizes, [0.8, 0.1, 0.1], seed=3)
    assert a == assign_splits(sizes, [0.8, 0.1, 0.1], seed=3)
    assert a != assign_splits(sizes, [0.8, 0.1, 0.1], seed=4)
    total = sum(sizes.values())
    train = sum(sizes[k] for k, v in a.items() if v == "train")
    assert abs(train / total - 0.8) < 0.05
    assert set(a.values()) == {"train", "val", "test"}


def test_export_groups_by_composition_and_sets_split(small_db, tmp_path):
    counts = export_splits(small_db, tmp_path / "splits", fractions=[0.6, 0.2, 0.2], seed=0)
    db = connect(small_db)
    assert sum(counts.values()) == db.count()
    seen = {}
    for split in ("train", "val", "test"):
        frame = pd.read_csv(tmp_path / "splits" / f"{split}.csv")
        assert len(frame) == counts[split]
        assert connect(str(tmp_path / "splits" / f"{split}.db")).count() == counts[split]
        for formula in frame.formula:
            assert seen.setdefault(formula, split) == split  # no composition in two splits
        if len(frame):
            assert set(frame.pressure) <= {0.0, 20.0}
            from pymatgen.core import Structure

            s = Structure.from_str(frame.cif.iloc[0], fmt="cif")
            assert s.composition.reduced_formula == frame.formula.iloc[0]
    # the split key is written back, consistent with the files
    for row in db.select():
        assert row.split == seen[row.reduced_formula]
    # Cu (fcc and bcc, two pressures) moves as one group
    assert len({row.split for row in db.select(reduced_formula="Cu")}) == 1


def test_export_refuses_missing_db(tmp_path):
    from gencrystal.errors import GencrystalError

    with pytest.raises(GencrystalError, match="does not exist"):
        export_splits(str(tmp_path / "none.db"), tmp_path / "o")


def test_stats_counts_and_plot(small_db, tmp_path):
    from gencrystal.db.stats import format_stats, plot_volume_vs_pressure

    st = collect_stats(small_db)
    db = connect(small_db)
    assert st["rows"] == db.count()
    assert sum(st["per_pressure"].values()) == db.count()
    assert set(st["per_pressure"]) == {"0", "20"}
    assert st["per_element"]["Cu"] == db.count(reduced_formula="Cu")
    # compression: the median volume per atom is smaller at 20 GPa than at 0 GPa
    import numpy as np

    v0 = np.median([v for p, v, _ in st["points"] if p == 0])
    v20 = np.median([v for p, v, _ in st["points"] if p == 20])
    assert v20 < v0
    png = plot_volume_vs_pressure(st["points"], tmp_path / "v.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "rows per pressure" in format_stats(st)


def test_exported_splits_load_with_the_asedb_dataset(small_db, tmp_path):
    """`db export` sets `split`; the asedb dataset config (used by experiment=hp_csp) reads it."""
    from omegaconf import OmegaConf

    from gencrystal.config import compose
    from gencrystal.data.dataset import load_split

    counts = export_splits(small_db, tmp_path / "splits", fractions=[0.6, 0.2, 0.2], seed=1)
    cfg = compose("data/asedb").data
    OmegaConf.update(cfg, "url", small_db)
    OmegaConf.update(cfg, "cache_dir", False)
    OmegaConf.update(cfg, "progress", False)
    for split in ("train", "val", "test"):
        if counts[split] == 0:
            continue
        ds = load_split(cfg, split)
        assert len(ds) == counts[split]
        assert set(np.round(ds.pressure.numpy(), 3)) <= {0.0, 20.0}
