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
    assert {f.name for f in dataclasses.fields(SCHEMAS[config])} == set(raw.keys())
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
