"""`gencrystal db build | export | stats` through the console entry point."""

from __future__ import annotations

import pytest

from gencrystal.cli import main
from gencrystal.db.schema import connect


def _cif_folder(data_root, folder, n):
    import pandas as pd

    df = pd.read_csv(data_root / "perov_5_dev" / "train.csv", nrows=n)
    folder.mkdir()
    for r in df.itertuples():
        (folder / f"perov-{r.material_id}.cif").write_text(r.cif)
    return folder


def test_db_commands_report_bad_input(tmp_path, capsys):
    assert main(["db", "stats", f"db={tmp_path / 'none.db'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["db", "export", f"db={tmp_path / 'none.db'}", f"out={tmp_path / 'o'}"]) == 2
    assert main(["db", "build", f"source={tmp_path / 'missing'}", f"db={tmp_path / 'x.db'}"]) == 2
    assert "neither an existing" in capsys.readouterr().err
    assert main(["db", "build", f"source={tmp_path}", "pressures=[-5]", f"db={tmp_path / 'x.db'}"]) == 2


def test_dataset_source_is_read_by_name(data_root):
    from gencrystal.data.sources import load_source

    pairs, label = load_source("perov5_dev", split="val", limit=3, data_root=str(data_root))
    assert label == "perov5_dev:val" and len(pairs) == 3
    assert all(len(a) == 5 for _, a in pairs)  # perovskites: 5 atoms


@pytest.mark.slow
def test_db_build_with_chgnet_then_stats_and_export(tmp_path, data_root, capsys):
    """Two perov_5_dev structures at 0 and 50 GPa with CHGNet, resumed, exported, plotted."""
    src = _cif_folder(data_root, tmp_path / "src", 2)
    db = tmp_path / "hp.db"
    args = ["db", "build", f"source={src}", "pressures=[0,50]", "potential=chgnet", f"db={db}", "relax.steps=150",
            "chunk_size=2", "progress=false"]
    assert main(args) == 0
    rows = list(connect(str(db)).select())
    assert rows and all(r.level_of_theory == "chgnet-0.3.0" for r in rows)
    assert {r.pressure_gpa for r in rows} <= {0.0, 50.0}
    # compression at 50 GPa: smaller volume than the same structure at 0 GPa
    by = {(r.material_id, r.pressure_gpa): r.volume / r.natoms for r in rows}
    for (mid, p), v in by.items():
        if p == 50.0 and (mid, 0.0) in by:
            assert v < by[(mid, 0.0)]
    capsys.readouterr()
    assert main(args) == 0  # resumed: nothing left to do
    assert "4 already done, 0 relaxed now" in capsys.readouterr().out
    assert main(["db", "stats", f"db={db}", f"plot={tmp_path / 'v.png'}"]) == 0
    assert (tmp_path / "v.png").stat().st_size > 0
    assert main(["db", "export", f"db={db}", f"out={tmp_path / 'splits'}"]) == 0
    assert all((tmp_path / "splits" / f"{s}.csv").exists() for s in ("train", "val", "test"))
