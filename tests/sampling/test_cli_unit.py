"""`gencrystal sample` through gencrystal.cli.main with a stand-in model: files, seeding, bad input.

Every bad input must give one `error:` line, exit code 2 and write nothing.
"""

from __future__ import annotations

import json

import pytest
from ase.io import read

from gencrystal.cli import main


def _run(capsys, *args):
    code = main(["sample", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_writes_extxyz_cifs_and_summary(fake_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, f"ckpt={fake_ckpt.path}", "composition=SiO2", "formula_units=1-2", "pressure=30",
                             "num_samples=5", "batch_size=2", "seed=4", f"out={out}", "progress=false")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["cif", "samples.extxyz", "summary.json"]
    frames = read(out / "samples.extxyz", index=":")
    assert [f.get_chemical_formula() for f in frames] == ["O2Si"] * 3 + ["O4Si2"] * 2
    for i, f in enumerate(frames):
        assert f.info["sample_index"] == i and f.info["pressure_gpa"] == 30.0 and f.info["seed"] == 4
        assert f.info["ckpt"] == str(fake_ckpt.path)
    assert f.info["composition"] == "Si2O4" and frames[0].info["composition"] == "Si1O2"
    assert len(list((out / "cif").glob("*.cif"))) == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requested"] == 5 and summary["written"] == 5
    assert summary["flagged"] == sum(bool(f.info["flagged"]) for f in frames)
    assert summary["nfe"] == 10 and summary["num_batches"] == 3 and summary["sampler"] == "fast"
    assert summary["device"] == "cpu" and summary["wall_time_s"] > 0
    assert [r["composition"] for r in summary["requests"]] == ["Si1O2", "Si2O4"]
    assert "wrote 5 structures" in stdout


def test_same_seed_identical_files(fake_ckpt, tmp_path, capsys):
    args = [f"ckpt={fake_ckpt.path}", "composition=Li4", "pressure=10", "num_samples=3", "seed=11", "progress=false"]
    assert _run(capsys, *args, f"out={tmp_path / 'a'}")[0] == 0
    assert _run(capsys, *args, f"out={tmp_path / 'b'}")[0] == 0
    assert (tmp_path / "a/samples.extxyz").read_bytes() == (tmp_path / "b/samples.extxyz").read_bytes()
    cifs = sorted(p.name for p in (tmp_path / "a/cif").iterdir())
    assert cifs == sorted(p.name for p in (tmp_path / "b/cif").iterdir())
    for name in cifs:
        assert (tmp_path / "a/cif" / name).read_bytes() == (tmp_path / "b/cif" / name).read_bytes()
    assert _run(capsys, *args[:-2], "seed=12", "progress=false", f"out={tmp_path / 'c'}")[0] == 0
    assert (tmp_path / "a/samples.extxyz").read_bytes() != (tmp_path / "c/samples.extxyz").read_bytes()


def test_sampler_choice_and_overrides_reach_the_model(fake_ckpt, tmp_path, capsys):
    base = [f"ckpt={fake_ckpt.path}", "composition=Li2", "pressure=1", "num_samples=1", "seed=0", "progress=false"]
    assert _run(capsys, *base, "sampler=pc", "guidance_scale=2", f"out={tmp_path / 'pc'}")[0] == 0
    summary = json.loads((tmp_path / "pc/summary.json").read_text())
    assert summary["sampler"] == "pc" and summary["nfe"] == 100 and summary["guidance_scale"] == 2.0
    assert summary["network_passes_per_sample"] == 200  # guided: conditional + unconditional pass
    call = fake_ckpt.module.calls[-1]
    assert call["sampler"]["_target_"] == "gencrystal.diffusion.PCSampler" and call["guidance_scale"] == 2.0
    assert _run(capsys, *base, "sampler.num_steps=7", f"out={tmp_path / 'custom'}")[0] == 0
    assert fake_ckpt.module.calls[-1]["sampler"]["num_steps"] == 7
    assert json.loads((tmp_path / "custom/summary.json").read_text())["sampler"] == "custom"


def test_formula_units_as_a_list(fake_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, f"ckpt={fake_ckpt.path}", "composition=MgO", "formula_units=[2,4]", "pressure=3",
                        "num_samples=4", "seed=0", f"out={out}", "progress=false")
    assert code == 0, err
    assert [len(f) for f in read(out / "samples.extxyz", index=":")] == [4, 4, 8, 8]


def test_input_table(fake_ckpt, tmp_path, capsys):
    table = tmp_path / "req.csv"
    table.write_text("composition,pressure,num_samples\nLi16,50,2\nMgO,0,1\n")
    out = tmp_path / "run"
    code, _, err = _run(capsys, f"ckpt={fake_ckpt.path}", f"input={table}", f"out={out}", "seed=0", "progress=false")
    assert code == 0, err
    frames = read(out / "samples.extxyz", index=":")
    assert [(f.info["composition"], f.info["pressure_gpa"]) for f in frames] == [("Li16", 50.0), ("Li16", 50.0), ("Mg1O1", 0.0)]


def test_pressure_outside_range_is_a_warning(fake_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, f"ckpt={fake_ckpt.path}", "composition=Li2", "pressure=250", "num_samples=1", f"out={out}", "progress=false")
    assert code == 0 and "warning: pressure=250 GPa is outside the trained range 0-100 GPa" in err
    assert json.loads((out / "summary.json").read_text())["warnings"]


BAD = [
    (["composition=Xx4", "pressure=10"], "unknown element 'Xx'"),
    (["composition=Li0", "pressure=10"], "must be positive"),
    (["composition=Li-3", "pressure=10"], "negative count"),
    (["composition=Li21", "pressure=10"], "Li21 has 21 atoms per cell; the model was trained for at most 20"),
    (["composition=Li", "formula_units=1-30", "pressure=10"], "Li21 (Z=21 of Li) has 21 atoms"),
    (["composition=Li4", "pressure=nan"], "pressure=nan is not a finite number"),
    (["composition=Li4", "pressure=-1"], "pressure=-1 GPa is negative"),
    (["composition=Li4"], "pressure= is required"),
    (["composition=Li4", "pressure=5", "seed=-2"], "seed=-2 must be a non-negative integer"),
    (["composition=Li4", "pressure=5", "batch_size=0"], "batch_size=0 must be a positive integer"),
    (["composition=Li4", "pressure=5", "guidance_scale=-1"], "guidance_scale=-1 must be a finite number"),
    (["composition=Li4", "pressure=5", "chemical_system=Li-Xq"], "unknown element 'Xq'"),
    (["composition=Li4", "pressure=5", "input=req.csv"], "give either input=FILE or composition"),
    (["input=missing.csv", "pressure=5"], "input='missing.csv' does not exist"),
    (["composition=Li4", "pressure=5", "num_samples=0"], "num_samples=0"),
    (["pressure=5"], "CSP model: composition= is required"),
    (["composition=Li4", "pressure=5", "sampler=euler"], "sampler/euler"),
    (["composition=Li4", "pressure=5", "checks.min_volume_per_atom=500"], "must be below"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_input_one_line_exit_2_nothing_written(fake_ckpt, tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, f"ckpt={fake_ckpt.path}", *args, f"out={out}", "progress=false")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.ckpt"]  # no temp folders left behind
    assert fake_ckpt.module.calls == []


def test_missing_ckpt_argument(tmp_path, capsys):
    code, _, err = _run(capsys, "composition=Li4", "pressure=5", f"out={tmp_path / 'run'}")
    assert code == 2 and err.strip() == "error: ckpt= is required (path to a trained checkpoint)"
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, f"ckpt={tmp_path / 'missing.ckpt'}", "composition=Li4", "pressure=5", f"out={out}")
    assert code == 2 and "missing.ckpt' does not exist" in err and len(err.strip().splitlines()) == 1
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    code, _, err = _run(capsys, f"ckpt={corrupt}", "composition=Li4", "pressure=5", f"out={out}")
    assert code == 2 and "corrupt.ckpt" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_existing_output_is_kept_unless_overwrite(fake_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [f"ckpt={fake_ckpt.path}", "composition=Li2", "pressure=1", "num_samples=1", f"out={out}", "progress=false"]
    code, _, err = _run(capsys, *args)
    assert code == 2 and "not empty" in err and (out / "keep.txt").read_text() == "mine"
    assert _run(capsys, *args, "overwrite=true")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["cif", "samples.extxyz", "summary.json"]
