"""Readers, cache, protocols, bad input, ASE-db source/sink, download and `data info` on small project-made files."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from gencrystal.cli import main
from gencrystal.config import compose
from gencrystal.data.asedb import dataset_to_db, write_structures
from gencrystal.data.dataset import load_split
from gencrystal.errors import GencrystalError

CORRUPT_CIF = "data_broken\n_cell_length_a 4.0\nloop_\n_atom_site_label\nthis is not a CIF\n"


def _structures() -> list[Structure]:
    rock = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    mgo = Structure(Lattice.hexagonal(3.2, 5.1), ["Mg", "O"], [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5]])
    li = Structure(Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tri = Structure(Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 105), ["Fe", "O", "O"],
                    [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.35, 0.7, 0.55]])
    return [rock, si, mgo, li, tri]


def _write_split(folder, name, ids, structures, pressures=None, corrupt_id=None, fmt="csv"):
    rows = [{"material_id": i, "cif": str(CifWriter(s)), "band_gap": 0.1 * k, "spacegroup.number": 1}
            for k, (i, s) in enumerate(zip(ids, structures))]
    if pressures is not None:
        for row, p in zip(rows, pressures):
            row["pressure"] = p
    if corrupt_id is not None:
        rows.insert(1, {"material_id": corrupt_id, "cif": CORRUPT_CIF, "band_gap": 9.9, "spacegroup.number": 1, "pressure": 0.0})
    df = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.to_csv(folder / f"{name}.csv", index=False)
    else:
        df.to_feather(folder / f"{name}.feather")
    return df


def _cfg(root, *overrides):
    return compose("data_info", ["data=mp20", f"data.root={root}", f"data.cache_dir={root / 'cache'}",
                                 "data.parse_workers=1", "data.progress=false", *overrides]).data


@pytest.fixture()
def mini_root(tmp_path):
    """A data root with mp_20/{val,test}.csv (no train): 5 good structures in each split, one corrupt row in val."""
    s = _structures()
    folder = tmp_path / "mp_20"
    _write_split(folder, "val", [f"v-{k}" for k in range(5)], s, pressures=[0.0, 10.0, 20.0, 50.0, 100.0], corrupt_id="bad-42")
    _write_split(folder, "test", [f"t-{k}" for k in range(5)], s)
    return tmp_path


def test_corrupt_cif_row_is_skipped_counted_and_named(mini_root, caplog):
    caplog.set_level(logging.INFO, logger="gencrystal")
    ds = load_split(_cfg(mini_root, "data.protocol=standard"), "val")
    assert len(ds) == 5
    assert [sid for sid, _ in ds.skipped] == ["bad-42"]
    assert "bad-42" in caplog.text and "skipped 1 of 6 rows" in caplog.text
    assert ds.table["material_id"].tolist() == [f"v-{k}" for k in range(5)]
    assert ds.table["band_gap"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert ds.table["pressure"].tolist() == [0.0, 10.0, 20.0, 50.0, 100.0]
    assert ds.pressure.tolist() == [0.0, 10.0, 20.0, 50.0, 100.0]
    # pressure-binned volume statistics use the bins of the config
    by_p = {b["lo"]: b["count"] for b in ds.stats.volume_per_atom_by_pressure}
    assert by_p[0.0] == 1 and by_p[10.0] == 2 and by_p[50.0] == 1 and by_p[100.0] == 1 and by_p[25.0] == 0
    # the cached load reports the same bad id again
    caplog.clear()
    again = load_split(_cfg(mini_root, "data.protocol=standard"), "val")
    assert "from cache" in caplog.text and "bad-42" in caplog.text
    assert (again.frac_coords == ds.frac_coords).all() and (again.lattices == ds.lattices).all()


def test_pressure_is_zero_without_a_column_and_rows_with_bad_pressure_are_skipped(tmp_path):
    s = _structures()
    _write_split(tmp_path / "mp_20", "test", ["a", "b", "c", "d", "e"], s)
    ds = load_split(_cfg(tmp_path), "test")
    assert (ds.pressure == 0).all() and (ds.table["pressure"] == 0).all()
    _write_split(tmp_path / "mp_20", "val", ["a", "b", "c", "d", "e"], s, pressures=[1.0, -3.0, float("nan"), 2.0, 3.0])
    ds = load_split(_cfg(tmp_path, "data.protocol=standard"), "val")
    assert ds.table["material_id"].tolist() == ["a", "d", "e"]
    assert {sid for sid, _ in ds.skipped} == {"b", "c"}


def test_offline_protocol_partitions_val_and_is_logged(mini_root, caplog):
    caplog.set_level(logging.INFO, logger="gencrystal")
    cfg = _cfg(mini_root, "data.offline.holdout_fraction=0.4")
    train, val, test = (load_split(cfg, s) for s in ("train", "val", "test"))
    assert "offline protocol" in caplog.text
    assert train.protocol == val.protocol == test.protocol == "offline"
    assert len(train) == 3 and len(val) == 2 and len(test) == 5
    ids_train, ids_val = set(train.table["material_id"]), set(val.table["material_id"])
    assert not ids_train & ids_val and ids_train | ids_val == {f"v-{k}" for k in range(5)}
    assert set(test.table["material_id"]) == {f"t-{k}" for k in range(5)}
    # seeded: the same partition again, a different one for another seed
    assert set(load_split(cfg, "train").table["material_id"]) == ids_train
    other = [set(load_split(_cfg(mini_root, "data.offline.holdout_fraction=0.4", f"data.offline.seed={s}"), "train").table["material_id"])
             for s in range(5)]
    assert any(o != ids_train for o in other)


def test_standard_protocol_without_train_names_the_path_and_download(mini_root):
    with pytest.raises(GencrystalError) as err:
        load_split(_cfg(mini_root, "data.protocol=standard"), "train")
    msg = str(err.value)
    assert str(mini_root / "mp_20") in msg and "gencrystal data download mp20" in msg and "\n" not in msg


def test_standard_protocol_is_chosen_when_train_exists(mini_root):
    _write_split(mini_root / "mp_20", "train", ["x", "y"], _structures()[:2])
    ds = load_split(_cfg(mini_root), "train")
    assert ds.protocol == "standard" and ds.table["material_id"].tolist() == ["x", "y"]


def test_missing_data_root_is_one_line_naming_path_and_download(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(GencrystalError) as err:
        load_split(_cfg(missing), "test")
    msg = str(err.value)
    assert str(missing) in msg and "gencrystal data download mp20" in msg and "\n" not in msg
    (missing).mkdir()
    with pytest.raises(GencrystalError, match="mp_20"):
        load_split(_cfg(missing), "test")


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "mp_20").mkdir()
    pd.DataFrame({"material_id": [], "cif": []}).to_csv(tmp_path / "mp_20" / "test.csv", index=False)
    with pytest.raises(GencrystalError, match="empty"):
        load_split(_cfg(tmp_path), "test")
    pd.DataFrame({"material_id": ["b1", "b2"], "cif": [CORRUPT_CIF, "nonsense"]}).to_csv(tmp_path / "mp_20" / "val.csv", index=False)
    with pytest.raises(GencrystalError, match="2 unreadable"):
        load_split(_cfg(tmp_path, "data.protocol=standard"), "val")


def test_feather_and_csv_give_the_same_dataset_and_cache_keys_follow_the_transform(tmp_path):
    s = _structures()
    _write_split(tmp_path / "mp_20", "test", list("abcde"), s, fmt="csv")
    _write_split(tmp_path / "mp_20", "test", list("abcde"), s, fmt="feather")
    feather = load_split(_cfg(tmp_path), "test")  # format=auto prefers feather
    csv = load_split(_cfg(tmp_path, "data.format=csv"), "test")
    assert feather.source.endswith("test.feather") and csv.source.endswith("test.csv")
    assert (feather.lattices == csv.lattices).all() and (feather.atom_types == csv.atom_types).all()
    prim = load_split(_cfg(tmp_path, "data.format=csv", "data.transform.primitive=true"), "test")
    assert prim.num_atoms.tolist() == [2, 2, 2, 1, 3]  # conventional NaCl (8) and Si (8) become primitive
    assert csv.num_atoms.tolist() == [8, 8, 2, 2, 3]
    caches = sorted(p.name for p in (tmp_path / "cache" / "mp_20").glob("*.pkl"))
    assert len(caches) == 3 and any(n.startswith("test-feather-") for n in caches)
    stats_files = list((tmp_path / "cache" / "mp_20").glob("*.stats.json"))
    assert stats_files and json.loads(stats_files[0].read_text())["n_structures"] == 5


def test_read_only_data_root_caches_in_the_repository(tmp_path):
    from gencrystal.data.readers import REPO_DATA, default_cache_dir

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert default_cache_dir(ro) == REPO_DATA / "cache"
    finally:
        ro.chmod(0o755)
    assert default_cache_dir(tmp_path) == tmp_path / "cache"


def test_ase_db_sink_and_source_round_trip(mini_root, tmp_path):
    ds = load_split(_cfg(mini_root), "test")
    url = str(tmp_path / "hp.db")
    ids = dataset_to_db(ds, url, split="val")
    assert len(ids) == 5
    assert dataset_to_db(ds, url, split="val") == []  # resumable: nothing duplicated
    import ase.db

    row = ase.db.connect(url).get(id=ids[0])
    assert row.pressure_gpa == 0.0 and row.split == "val" and row.source == "mp20:t-0"
    assert row.spacegroup_number == 1 and row.band_gap == pytest.approx(0.0)
    cfg = compose("data_info", ["data=asedb", f"data.url={url}", "data.progress=false", f"data.cache_dir={tmp_path / 'c'}"]).data
    back = load_split(cfg, "val")
    assert back.table["material_id"].tolist() == ds.table["material_id"].tolist()
    assert np.allclose(back.lattices.numpy(), ds.lattices.numpy(), atol=1e-5)
    d = back.frac_coords - ds.frac_coords
    assert np.allclose(d - d.round(), 0.0, atol=1e-5)
    with pytest.raises(GencrystalError, match="empty"):
        load_split(cfg, "train")
    # pressure labels and extra selections
    write_structures(url, [_structures()[3]], pressures_gpa=[30.0], level_of_theory="chgnet", sources=["hp:li"],
                     key_values=[{"material_id": "li-30"}], split="train")
    train = load_split(cfg, "train")
    assert train.table["material_id"].tolist() == ["li-30"] and train.pressure.tolist() == [30.0]
    cfg_sel = compose("data_info", ["data=asedb", f"data.url={url}", "data.progress=false", "data.splits.val=null",
                                    "data.selection='pressure_gpa>10'", "data.cache_dir=false"]).data
    assert load_split(cfg_sel, "val").table["material_id"].tolist() == ["li-30"]
    with pytest.raises(GencrystalError, match="does not exist"):
        load_split(compose("data_info", ["data=asedb", f"data.url={tmp_path / 'none.db'}"]).data, "val")


def test_offline_download_fails_at_once_naming_url_and_target(tmp_path, capsys):
    rc = main(["data", "download", "mp20", f"data_root={tmp_path}", "base_url=http://127.0.0.1:9/cdvae/mp_20", "timeout_s=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "http://127.0.0.1:9/cdvae/mp_20/train.csv" in err[0] and str(tmp_path / "mp_20" / "train.csv") in err[0]
    assert not (tmp_path / "mp_20" / "train.csv").exists()
    assert not list((tmp_path / "mp_20").glob(".*"))  # no temporary leftovers


def test_download_from_a_local_mirror_is_atomic_and_resumable(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    _write_split(mirror, "train", ["a"], _structures()[:1])
    _write_split(mirror, "val", ["b"], _structures()[1:2])
    _write_split(mirror, "test", ["c"], _structures()[2:3])
    root = tmp_path / "root"
    assert main(["data", "download", "mp20", f"data_root={root}", f"base_url={mirror.as_uri()}"]) == 0
    for split in ("train", "val", "test"):
        assert (root / "mp_20" / f"{split}.csv").read_bytes() == (mirror / f"{split}.csv").read_bytes()
    ds = load_split(_cfg(root), "train")
    assert ds.protocol == "standard" and len(ds) == 1
    # an existing file is kept; a page that is not a dataset CSV is rejected and removed
    (root / "mp_20" / "val.csv").unlink()
    (mirror / "val.csv").write_text("<html>not found</html>\n")
    assert main(["data", "download", "mp20", f"data_root={root}", f"base_url={mirror.as_uri()}"]) == 2
    assert "no 'cif' column" in capsys.readouterr().err
    assert not (root / "mp_20" / "val.csv").exists() and (root / "mp_20" / "train.csv").exists()


def test_download_of_unknown_dataset_or_without_source(capsys):
    assert main(["data", "download", "mp21"]) == 2
    assert "unknown dataset 'mp21'" in capsys.readouterr().err
    assert main(["data", "download", "perov5_dev"]) == 2
    assert "no download source" in capsys.readouterr().err


def test_data_info_prints_statistics_and_writes_summary_and_plot(mini_root, tmp_path, capsys):
    out = tmp_path / "info"
    rc = main(["data", "info", "data=mp20", f"data_root={mini_root}", "split=val", f"out={out}",
               "data.protocol=standard", "data.parse_workers=1", "data.progress=false", f"data.cache_dir={mini_root / 'cache'}"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mp20 / val" in text and "structures" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_structures"] == 5 and summary["n_skipped"] == 1 and summary["skipped"][0]["id"] == "bad-42"
    assert summary["stats"]["num_atoms_hist"] == {"2": 2, "3": 1, "8": 2}
    png = (out / "histograms.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_data_info_missing_root_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["data", "info", "data=mp20", f"data_root={tmp_path / 'absent'}", f"out={tmp_path / 'o'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(tmp_path / "absent") in err[0] and "gencrystal data download mp20" in err[0]
