"""Physically absurd values are refused before any work, in every command that takes them."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.io import write

from gencrystal.cli import COMMANDS, compose, main
from gencrystal.errors import GencrystalError
from gencrystal.limits import check_config, check_count, check_quantity
from gencrystal.units import MAX_PRESSURE_GPA, check_pressure

SHIPPED = "checkpoints/gencrystal-hp-csp-small.ckpt"


def test_pressure_limit_is_documented_and_enforced():
    assert MAX_PRESSURE_GPA == 10_000.0
    assert check_pressure(MAX_PRESSURE_GPA) == MAX_PRESSURE_GPA
    with pytest.raises(GencrystalError, match=r"pressure=20000 GPa is beyond the physical limit of 10000 GPa"):
        check_pressure(20_000)


@pytest.mark.parametrize("value, message", [
    (0, "must be a positive integer"), (-3, "must be a positive integer"), (2.5, "whole number"), (10**12, "absurd"),
    (float("nan"), "not a finite number"), ("many", "not a number"), (True, "not a number"),
])
def test_check_count(value, message):
    with pytest.raises(GencrystalError, match=message):
        check_count(value, "num_samples")


def test_check_quantity_bounds():
    assert check_quantity(400, "ecut", "eV", 50, 5000, low_inclusive=True) == 400.0
    with pytest.raises(GencrystalError, match=r"ecut=1e\+06 eV is beyond the limit of 5000 eV"):
        check_quantity(1e6, "ecut", "eV", 50, 5000)
    with pytest.raises(GencrystalError, match=r"fmax=0 eV/Å must be > 0"):
        check_quantity(0, "fmax", "eV/Å", 0, 100)


def test_every_default_config_passes_the_limits():
    for cmd in COMMANDS:
        check_config(compose(cmd.config, []))
    for exp in ("mp20_csp", "hp_csp", "default_model"):
        check_config(compose("train", [f"experiment={exp}"]))


@pytest.fixture
def structure_file(tmp_path):
    path = tmp_path / "si.extxyz"
    write(path, bulk("Si", "diamond", a=5.43))
    return path


CASES = [
    # (command words + overrides, what the error names)
    (["relax", "input={s}", "pressure=20000"], "pressure=20000 GPa is beyond the physical limit"),
    (["relax", "input={s}", "steps=-5"], "steps=-5 must be >= 0"),
    (["relax", "input={s}", "fmax=0"], "fmax=0 eV/Å must be > 0"),
    (["relax", "input={s}", "guard.max_seconds=0"], "guard.max_seconds=0 s must be > 0"),
    (["sample", f"ckpt={SHIPPED}", "composition=Li16", "pressure=1e5"], "pressure=100000 GPa"),
    (["sample", f"ckpt={SHIPPED}", "composition=Li16", "pressure=10", "num_samples=100000000"], "num_samples=100000000 is absurd"),
    (["sample", f"ckpt={SHIPPED}", "composition=Li16", "pressure=10", "sampler.num_steps=0"], "sampler.num_steps=0 must be a positive integer"),
    (["search", "composition=Si", "pressure=50000"], "pressure=50000 GPa"),
    (["search", "composition=Si", "pressure=10", "budget=0"], "budget=0 must be a positive integer"),
    (["search", "composition=Si", "pressure=10", "relax.steps=10000000"], "relax.steps=10000000 is absurd"),
    (["validate", "input={s}", "dft.ecut=1e6"], "dft.ecut=1e+06 eV is beyond the limit"),
    (["validate", "input={s}", "dft.ecut=10"], "dft.ecut=10 eV must be >= 50"),
    (["validate", "input={s}", "dft.smearing=-0.1"], "dft.smearing=-0.1 eV must be >= 0"),
    (["validate", "input={s}", "dft.smearing=100"], "dft.smearing=100 eV is beyond"),
    (["validate", "input={s}", "top_k=0"], "top_k=0 must be a positive integer"),
    (["learn", "iterations=0"], "iterations=0 must be a positive integer"),
    (["learn", "pressures=[0,25,1e6]"], "pressures[2]=1e+06 GPa is beyond"),
    (["learn", "finetune.epochs=-1"], "finetune.epochs=-1 must be a positive integer"),
    (["db", "build", "source={s}", "pressures=[0,20000]"], "pressures[1]=20000 GPa"),
    (["db", "build", "source={s}", "chunk_size=0"], "chunk_size=0 must be a positive integer"),
    (["relax", "eos", "structure={s}", "pressures=[0,-5]"], "pressures[1]=-5 GPa is negative"),
    (["evaluate", "dng", "pred={s}", "hull.pressure=1e9"], "hull.pressure=1e+09 GPa"),
    (["evaluate", "csp", "pred={s}", "ref={s}", "timeout_s=-1"], "timeout_s=-1 s must be > 0"),
    (["evaluate", "csp", "pred={s}", "ref={s}", "limit=0"], "limit=0 must be a positive integer"),
    (["data", "download", "mp20", "timeout_s=0"], "timeout_s=0 s must be > 0"),
    (["train", "batch_size=0"], "batch_size=0 must be a positive integer"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:2]) + " " + a[-1] for a, _ in CASES])
def test_cli_refuses_absurd_values_before_any_work(argv, message, structure_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = [a.format(s=structure_file) for a in argv] + [f"out={out}"]
    if argv[0] == "data":
        args = args[:-1] + [f"data_root={out}"]
    if argv[0] == "db":
        args = args[:-1] + [f"db={out}/hp.db"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()  # nothing started, nothing written
