"""Typed command configs (gencrystal.schemas): a misspelt key or a wrongly typed value is refused
with one line, and every schema names exactly the keys of its YAML."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from gencrystal.cli import main
from gencrystal.config import compose, conf_dir
from gencrystal.schemas import SCHEMAS


@pytest.mark.parametrize("config", sorted(SCHEMAS))
def test_schema_names_exactly_the_keys_of_its_yaml(config):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        raw = hydra_compose(config_name=config)
    names = {f.name for f in dataclasses.fields(SCHEMAS[config])}
    # a field whose default is None is a config group mounted only on request
    # (db_build: `potential@fallback_potential=NAME`, its defaults entry is null): absent from the raw YAML
    optional = {f.name for f in dataclasses.fields(SCHEMAS[config]) if f.default is None}
    assert set(raw.keys()) <= names and names - set(raw.keys()) <= optional
    cfg = compose(config)  # the values are the YAML's, typed
    for key in raw:
        node = raw._get_node(key)
        if not OmegaConf.is_missing(raw, key) and not OmegaConf.is_config(node) and not node._is_interpolation():
            assert cfg[key] == raw[key]


@pytest.mark.parametrize("args, needle", [
    (["relax", "input=x.cif", "+fmaxx=0.1"], "fmaxx"),
    (["relax", "input=x.cif", "fmax=abc"], "fmax"),
    (["relax", "input=x.cif", "steps=1.5"], "steps"),
    (["validate", "input=x.cif", "+top=3"], "top"),
    (["relax", "eos", "structure=x.cif", "+pressure=5"], "pressure"),
    (["sample", "ckpt=x.ckpt", "composition=Li4", "pressure=5", "+guidence_scale=2"], "guidence_scale"),
    (["search", "composition=SiO2", "pressure=5", "+budgett=3"], "budgett"),
    (["search", "composition=SiO2", "pressure=5", "budget=many"], "budget"),
])
def test_misspelt_key_or_wrong_type_is_one_line_exit_2(args, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*args, f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad configuration") and needle in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["data", "info", "+splitt=val"], "splitt"),
    (["data", "info", "plot=maybe"], "plot"),
    (["data", "split", "+byy=structure"], "byy"),
    (["data", "split", "seed=abc"], "seed"),
    (["data", "download", "mp20", "+forcee=true"], "forcee"),
    (["data", "download", "mp20", "timeout_s=abc"], "timeout_s"),
    (["db", "build", "source=x.cif", "+chunk=3"], "chunk"),
    (["db", "build", "source=x.cif", "chunk_size=many"], "chunk_size"),
    (["db", "import", "vasp", "runs", "+merj=false"], "merj"),
    (["db", "import", "vasp", "runs", "pressure_tol_gpa=abc"], "pressure_tol_gpa"),
    (["db", "export", "+seedd=1"], "seedd"),
    (["db", "export", "seed=abc"], "seed"),
    (["db", "stats", "+plott=x.png"], "plott"),
    (["db", "stats", "pressure_bins=[0,abc]"], "pressure_bins"),
    (["demo", "+num_sample=2"], "num_sample"),
    (["demo", "steps=many"], "steps"),
    (["evaluate", "csp", "+limitt=3"], "limitt"),
    (["evaluate", "csp", "timeout_s=abc"], "timeout_s"),
    (["evaluate", "csp", "+metre.max_pair=3"], "metre.max_pair"),
    (["evaluate", "dng", "+hull.stepz=3"], "hull.stepz"),
    (["evaluate", "dng", "hull.steps=abc"], "hull.steps"),
    (["evaluate", "dng", "+validity.min_dist=0.4"], "validity.min_dist"),
    (["evaluate", "pipeline", "+mlp=3"], "mlp"),
    (["evaluate", "pipeline", "dft_n=abc"], "dft_n"),
    (["learn", "+iteration=2"], "iteration"),
    (["learn", "select.n_per_iteration=abc"], "select.n_per_iteration"),
    (["train", "+batchsize=3"], "batchsize"),
    (["train", "batch_size=abc"], "batch_size"),
    (["train", "+checkpoint.every=3"], "checkpoint.every"),
])
def test_other_commands_refuse_a_misspelt_key_or_wrong_type_in_one_line(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad configuration:") and needle in err[0], err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml")))
def test_every_experiment_fits_the_train_schema(experiment):
    cfg = compose("train", [f"experiment={experiment}"])
    assert isinstance(cfg.batch_size, int) and isinstance(cfg.checkpoint.every_n_steps, int)
