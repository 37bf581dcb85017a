"""End to end with a real tiny checkpoint trained in this test session (toy database,
max 16 atoms per cell, pressures 0-100 GPa): `gencrystal sample` via gencrystal.cli.main
and the Generator API."""

from __future__ import annotations

import json

import pytest
from ase.io import read
from pymatgen.core import Composition, Structure

from gencrystal.cli import main
from gencrystal.sampling import Generator, PressureRangeWarning, expand_request


def _sample(capsys, *args):
    code = main(["sample", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_checkpoint_facts(tiny_ckpt):
    gen = Generator(tiny_ckpt)
    assert gen.csp and gen.max_atoms == 16
    assert gen.pressure_range == (0.0, 100.0)
    run_folder = tiny_ckpt.parent.parent  # gencrystal train out=DIR
    assert Generator(run_folder).ckpt == str(run_folder / "checkpoints" / tiny_ckpt.name)


def test_csp_samples_have_exactly_the_requested_composition(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "li"
    code, stdout, err = _sample(capsys, f"ckpt={tiny_ckpt}", "composition=CaF2", "formula_units=1-4", "pressure=50",
                                "num_samples=6", "batch_size=4", "seed=1", f"out={out}", "progress=false")
    assert code == 0, err
    frames = read(out / "samples.extxyz", index=":")
    assert len(frames) == 6
    for f in frames:
        z = f.info["formula_units"]
        assert Composition(f.get_chemical_formula()) == Composition({"Ca": z, "F": 2 * z})
        assert f.info["composition"] == Composition({"Ca": z, "F": 2 * z}).formula.replace(" ", "")
    # Z enumeration: 6 samples over Z = 1..4 with seed 1 -> 1, 2, 2, 1; 3 atoms per formula unit
    assert [len(f) for f in frames] == [3, 6, 6, 9, 9, 12]
    cifs = sorted((out / "cif").glob("*.cif"))
    assert len(cifs) == 6
    for cif, f in zip(cifs, frames):
        assert Structure.from_file(cif).composition == Composition(f.get_chemical_formula())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requested"] == summary["written"] == 6 and summary["device"] == "cpu"
    assert summary["nfe"] > 0 and summary["sampler"] == "fast"
    assert summary["flagged"] == sum(bool(f.info["flagged"]) for f in frames)


def test_same_seed_gives_identical_files(tiny_ckpt, tmp_path, capsys):
    args = [f"ckpt={tiny_ckpt}", "composition=MgO", "formula_units=1-2", "pressure=25", "num_samples=3",
            "batch_size=2", "seed=5", "progress=false"]
    for name in ("a", "b"):
        assert _sample(capsys, *args, f"out={tmp_path / name}")[0] == 0
    assert (tmp_path / "a/samples.extxyz").read_bytes() == (tmp_path / "b/samples.extxyz").read_bytes()
    names = sorted(p.name for p in (tmp_path / "a/cif").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b/cif").iterdir()) and len(names) == 3
    for n in names:
        assert (tmp_path / "a/cif" / n).read_bytes() == (tmp_path / "b/cif" / n).read_bytes()
    timing = {"wall_time_s", "load_time_s", "structures_per_s"}
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("a", "b"))
    assert {k: v for k, v in sa.items() if k not in timing} == {k: v for k, v in sb.items() if k not in timing}
    assert _sample(capsys, *args[:-2], "seed=6", "progress=false", f"out={tmp_path / 'c'}")[0] == 0
    assert (tmp_path / "a/samples.extxyz").read_bytes() != (tmp_path / "c/samples.extxyz").read_bytes()


BAD = [
    (["composition=Qx2", "pressure=10"], "unknown element 'Qx'"),
    (["composition=Li0", "pressure=10"], "count 0 of Li must be positive"),
    (["composition=Mg-2O2", "pressure=10"], "negative count"),
    (["composition=Li17", "pressure=10"], "Li17 has 17 atoms per cell; the model was trained for at most 16"),
    (["composition=MgO", "formula_units=1-9", "pressure=10"], "Mg9O9 (Z=9 of MgO) has 18 atoms"),
    (["composition=Li4", "pressure=nan"], "pressure=nan is not a finite number"),
    (["composition=Li4", "pressure=-3"], "pressure=-3 GPa is negative"),
    (["pressure=10"], "CSP model: composition= is required"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1][:28] for b in BAD])
def test_bad_input_exit_2_one_line_nothing_written(tiny_ckpt, tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    code, _, err = _sample(capsys, f"ckpt={tiny_ckpt}", *args, f"out={out}", "progress=false")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_checkpoint(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _sample(capsys, f"ckpt={tmp_path / 'nope.ckpt'}", "composition=Li4", "pressure=1", f"out={out}")
    assert code == 2 and "nope.ckpt" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_ckpt.read_bytes()[:2000])
    code, _, err = _sample(capsys, f"ckpt={truncated}", "composition=Li4", "pressure=1", f"out={out}")
    assert code == 2 and "truncated.ckpt" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.ckpt"]


def test_pressure_outside_trained_range_warns_and_samples(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _sample(capsys, f"ckpt={tiny_ckpt}", "composition=Li2", "pressure=300", "num_samples=1", "seed=0",
                           f"out={out}", "progress=false")
    assert code == 0 and "warning: pressure=300 GPa is outside the trained range 0-100 GPa" in err
    assert json.loads((out / "summary.json").read_text())["warnings"]


def test_python_api_atoms_and_structures(tiny_ckpt):
    gen = Generator(tiny_ckpt, sampler="fast", batch_size=8)
    frames = gen.sample("Si8", pressure=50, n=2, seed=0)
    assert [a.get_chemical_formula() for a in frames] == ["Si8", "Si8"]
    assert all(a.pbc.all() and a.info["pressure_gpa"] == 50.0 for a in frames)
    again = gen.sample("Si8", pressure=50, n=2, seed=0)
    assert all((a.positions == b.positions).all() for a, b in zip(frames, again))
    structures = gen.sample("SiO2", pressure=10, n=2, seed=0, formula_units=[1, 2], output="structure")
    assert [s.composition for s in structures] == [Composition("SiO2"), Composition("Si2O4")]
    with pytest.warns(PressureRangeWarning):
        gen.sample("Li2", pressure=150, n=1, seed=0)


@pytest.mark.slow
def test_pc_sampler_costs_more_network_evaluations(tiny_ckpt):
    fast = Generator(tiny_ckpt, sampler="fast").run(
        expand_request("Li2", 10, 1), seed=0)
    pc = Generator(tiny_ckpt, sampler="pc").run(
        expand_request("Li2", 10, 1), seed=0)
    assert pc.nfe_per_sample > fast.nfe_per_sample > 0
    assert pc.frames[0].get_chemical_formula() == "Li2"


@pytest.mark.slow
def test_denovo_chemical_system_and_histogram_counts(tiny_dng_ckpt, tmp_path, capsys):
    gen = Generator(tiny_dng_ckpt)
    assert not gen.csp
    out = tmp_path / "dng"
    code, _, err = _sample(capsys, f"ckpt={tiny_dng_ckpt}", "chemical_system=Mg-O", "pressure=50", "num_samples=6",
                           "seed=0", f"out={out}", "progress=false")
    assert code == 0, err
    frames = read(out / "samples.extxyz", index=":")
    trained_counts = set(gen.module.data_stats.num_atoms_hist)  # {1, 2, 3, 4, 8, 12, 16}
    assert len(frames) == 6
    for f in frames:
        assert set(f.get_chemical_symbols()) <= {"Mg", "O"}
        assert len(f) in trained_counts
        assert "outside_chemical_system" not in f.info["flags"]
    # without a restriction and without a composition the model may use any element
    unrestricted = gen.sample(None, 50, 4, seed=0)
    assert all(len(a) in trained_counts for a in unrestricted)
