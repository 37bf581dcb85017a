"""Every config in conf/ composes, and every `_target_` in it imports, takes the keys its YAML gives
it and builds (an object, or the one-line GencrystalError a config with a required value left
empty is meant to give)."""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from gencrystal.config import conf_dir, instantiate
from gencrystal.errors import GencrystalError

CONF = conf_dir()
PRIMARIES = sorted(p.stem for p in CONF.glob("*.yaml"))
# Values a command requires (`???`) but whose interpolations other keys need.
FILL = {"composition": "SiO2", "pressure": 10.0, "out": "out", "input": "in.extxyz", "structure": "s.cif",
        "dataset": "mp20", "pred": "p.extxyz", "ref": "r.extxyz", "ckpt": "model.ckpt", "source": "."}


# Group files that are not options of their group: shared keys a sibling lists in its defaults (`- base`),
# and a node a primary config mounts directly (search.yaml: `- search/relax@relax`).
NOT_OPTIONS = {"data/base", "search/relax", "bench/csp"}  # bench/csp: the bench scripts' dataset/anchor table


def _compose(primary: str, overrides: tuple[str, ...]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(primary, list(overrides), return_hydra_config=True)


def _variants(primary: str) -> list[tuple[str, ...]]:
    """The primary config with each option of each of its groups (and of groups those options bring)."""
    seen_groups: set[str] = set()
    todo: list[tuple[str, ...]] = [()]
    done: list[tuple[str, ...]] = []
    while todo:
        ov = todo.pop(0)
        cfg = _compose(primary, ov)
        done.append(ov)
        for key in cfg.hydra.runtime.choices:
            if key.startswith("hydra/") or key in seen_groups:
                continue
            seen_groups.add(key)
            folder = CONF / key.split("@")[0]
            for opt in sorted(p.stem for p in folder.glob("*.yaml")):
                if str(cfg.hydra.runtime.choices[key]) != opt and f"{key.split('@')[0]}/{opt}" not in NOT_OPTIONS:
                    todo.append((*ov, f"{key}={opt}"))
    return done


def _targets(node, path: str = ""):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for k in node:
            if k != "hydra":
                yield from _targets(node._get_node(k), f"{path}.{k}" if path else str(k))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _targets(node._get_node(i), f"{path}[{i}]")


def _filled(cfg: DictConfig) -> DictConfig:
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    del cfg["hydra"]
    for k, v in FILL.items():
        if k in cfg.keys() and OmegaConf.is_missing(cfg, k):
            cfg[k] = v
    return cfg


def _collect() -> dict[str, tuple[str, dict]]:
    """``{yaml of the node: (where it was found, resolved node)}`` over every variant of every primary."""
    nodes: dict[str, tuple[str, dict]] = {}
    for primary in PRIMARIES:
        for ov in _variants(primary):
            cfg = _filled(_compose(primary, ov))
            for path, node in _targets(cfg):
                plain = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
                nodes.setdefault(OmegaConf.to_yaml(plain), (f"{primary} {' '.join(ov)}: {path}", plain))
    return nodes


NODES = _collect()


def test_every_yaml_file_in_conf_is_reached():
    used = set()
    for primary in PRIMARIES:
        used.add(primary)
        for ov in _variants(primary):
            used.update(o.split("=")[0].split("@")[0] + "/" + o.split("=")[1] for o in ov)
            for key, opt in _compose(primary, ov).hydra.runtime.choices.items():
                if opt is not None and not key.startswith("hydra/"):
                    used.add(f"{key.split('@')[0]}/{opt}")
    files = {str(p.relative_to(CONF).with_suffix("")) for p in CONF.rglob("*.yaml")}
    assert files - used - NOT_OPTIONS == set()
    assert len(NODES) > 20


def _accepts(obj, keys: list[str]) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    return [k for k in keys if k not in sig.parameters]


@pytest.mark.parametrize("text", sorted(NODES), ids=[NODES[t][0] for t in sorted(NODES)])
def test_target_imports_takes_its_keys_and_builds(text, tmp_path, monkeypatch):
    where, node = NODES[text]
    obj = get_object(node["_target_"])
    keys = [k for k in node if not (k.startswith("_") and k.endswith("_"))]
    assert _accepts(obj, keys) == [], f"{where}: {node['_target_']} does not take {_accepts(obj, keys)}"
    if node.get("accelerator") == "gpu" and not torch.cuda.is_available():
        pytest.skip(f"{where}: a GPU trainer (imports and keys checked above)")
    monkeypatch.chdir(tmp_path)
    missing = [k for k, v in node.items() if v == "???"]
    if missing:  # a value the user must give (potential.path of a committee, cluster.scheduler): one line naming it
        with pytest.raises(GencrystalError) as err:
            instantiate(node, where)
        assert "\n" not in str(err.value) and missing[0] in str(err.value)
        return
    assert instantiate(node, where) is not None
