"""Operating-system errors are one line (`error: ...` naming the path), exit 2, nothing half-written;
and `threads=` sets torch/BLAS threads and is recorded in summary.json.

Permissions: the tests run as root, who ignores permission bits, so an unwritable folder is a
read-only tmpfs mount (skipped where mounting is not allowed) and, everywhere, a monkeypatched
``tempfile.mkstemp`` raising EACCES. A full disk is a small tmpfs filled up (skipped likewise)
and, everywhere, a monkeypatched ``json.dump`` raising ENOSPC.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import write

from gencrystal.cli import main


@pytest.fixture
def pair(tmp_path):
    """A one-structure prediction/reference pair for `evaluate csp` (fast, writes metrics.json)."""
    si = bulk("Si", "diamond", a=5.43)
    si.info["id"] = "si"
    pred, ref = tmp_path / "pred.extxyz", tmp_path / "ref.extxyz"
    write(ref, si)
    p = si.copy()
    p.info["ref_id"] = "si"
    write(pred, p)
    return pred, ref


def _evaluate(pair, out):
    return main(["evaluate", "csp", f"pred={pair[0]}", f"ref={pair[1]}", f"out={out}", "progress=false",
                 "plots=false", "workers=1", "threads=1"])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_out_that_is_an_existing_file(tmp_path, capsys):
    si = tmp_path / "si.extxyz"
    write(si, bulk("Si", "diamond", a=5.43))
    target = tmp_path / "taken.txt"
    target.write_text("keep me\n")
    assert main(["relax", f"input={si}", f"out={target}", "steps=0"]) == 2
    line = _one_error_line(capsys)
    assert f"out={str(target)!r} is an existing file, not a folder" in line
    assert target.read_text() == "keep me\n"


def test_out_below_a_file(tmp_path, pair, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert _evaluate(pair, blocker / "eval") == 2
    assert f"{str(blocker)!r} is a file, not a folder" in _one_error_line(capsys)


def test_unwritable_folder_monkeypatched(tmp_path, pair, capsys, monkeypatch):
    import tempfile

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "eval"
    assert _evaluate(pair, out) == 2
    assert f"{str(out)!r}: permission denied" in _one_error_line(capsys)
    assert not (out / "metrics.json").exists()


def test_full_disk_monkeypatched(tmp_path, pair, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full)
    out = tmp_path / "eval"
    assert _evaluate(pair, out) == 2
    line = _one_error_line(capsys)
    assert f"{str(out / 'metrics.json')!r}: no space left on the device" in line
    assert not (out / "metrics.json").exists() and _leftovers(out) == []


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs with the given options; skip where mounting is not allowed."""
    mounted = []

    def _mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounted.append(point)
        return point

    yield _mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_file_system(pair, mount, capsys):
    ro = mount("ro,size=64k")
    assert _evaluate(pair, ro / "eval") == 2
    assert f"{str(ro / 'eval')!r}: is on a read-only file system" in _one_error_line(capsys)


def test_really_full_disk(pair, mount, capsys):
    disk = mount("size=64k")
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    out = disk / "eval"
    assert _evaluate(pair, out) == 2
    assert "no space left on the device" in _one_error_line(capsys)
    assert not (out / "metrics.json").exists() and _leftovers(out) == []


def test_database_locked_by_another_writer(tmp_path, capsys, monkeypatch):
    import ase.db
    import ase.db.sqlite

    url = tmp_path / "hp.db"
    with ase.db.connect(url) as db:
        db.write(bulk("Si", "diamond", a=5.43), pressure_gpa=0.0)
    real_connect = sqlite3.connect
    monkeypatch.setattr(ase.db.sqlite.sqlite3, "connect", lambda name, timeout=20, **kw: real_connect(name, timeout=0.2, **kw))
    holder = real_connect(url, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code = main(["db", "export", f"db={url}", f"out={tmp_path / 'splits'}", "threads=1"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2
    line = _one_error_line(capsys)
    assert str(url) in line and "locked" in line


def test_threads_option_sets_torch_and_blas_and_is_recorded(tmp_path, capsys):
    import torch
    from threadpoolctl import threadpool_info

    from gencrystal.runtime import available_cores

    si = tmp_path / "si.extxyz"
    write(si, bulk("Si", "diamond", a=5.43))
    before = torch.get_num_threads()
    try:
        assert main(["relax", f"input={si}", f"out={tmp_path / 'r'}", "steps=0", "threads=1"]) == 0
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert json.loads((tmp_path / "r" / "summary.json").read_text())["threads"] == 1
        assert main(["relax", f"input={si}", f"out={tmp_path / 'r2'}", "steps=0"]) == 0
        assert json.loads((tmp_path / "r2" / "summary.json").read_text())["threads"] == available_cores()
        capsys.readouterr()
        assert main(["relax", f"input={si}", f"out={tmp_path / 'r3'}", "threads=0"]) == 2
        assert "threads=0 must be a positive integer" in _one_error_line(capsys)
    finally:
        torch.set_num_threads(before)
