"""Segment reductions, per-field losses, classifier-free guidance and the Hydra configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gencrystal.diffusion import (DiffusionField, FieldSet, MaskedD3PM, VPProcess, WrappedVE, cfg_combine,
                                  cfg_combine_fields, cfg_combine_logits, cfg_combine_multi, remove_segment_mean,
                                  sample_time, segment_mean, segment_sq_norm, segment_sum, time_grid)

F64 = torch.float64
CONF = Path(__file__).resolve().parents[2] / "conf"


def test_segment_ops_match_python_loops():
    g = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 0, 2, 2, 2, 3])
    x = torch.randn(6, 3, generator=g, dtype=F64)
    s = segment_sum(x, index, 4)
    m = segment_mean(x, index, 4)
    for b in range(4):
        rows = x[index == b]
        torch.testing.assert_close(s[b], rows.sum(0))
        torch.testing.assert_close(m[b], rows.mean(0) if len(rows) else torch.zeros(3, dtype=F64))
    r = remove_segment_mean(x, index, 4)
    torch.testing.assert_close(segment_sum(r, index, 4), torch.zeros(4, 3, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(segment_sq_norm(x, index, 4)[2], x[2:5].pow(2).sum())


def test_time_helpers():
    grid = time_grid(4)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=F64))
    torch.testing.assert_close(time_grid(2, spacing="power", power=2.0), torch.tensor([1.0, 0.25, 0.0], dtype=F64))
    t = sample_time(1000, t_min=1e-3, generator=torch.Generator().manual_seed(1))
    assert t.min() >= 1e-3 and t.max() <= 1.0 and t.shape == (1000,)


def _toy_batch(g):
    index = torch.tensor([0, 0, 0, 1])
    fields = FieldSet({
        "frac_coords": DiffusionField(WrappedVE(sigma_max=1.0), loss_weight=0.1, reduce="sum"),
        "lattice": DiffusionField(VPProcess(), loss_weight=1.0, reduce="sum"),
        "atom_types": DiffusionField(MaskedD3PM(num_classes=5), loss_weight=2.0, reduce="mean"),
    })
    x0 = {"frac_coords": torch.rand(4, 3, generator=g, dtype=F64), "lattice": torch.randn(2, 3, 3, generator=g, dtype=F64),
          "atom_types": torch.tensor([0, 1, 4, 2])}
    ctx = {"frac_coords": {"index": index, "std_scale": torch.tensor([3 ** (-1 / 3), 1.0], dtype=F64)},
           "lattice": {"index": None, "limit_mean": torch.eye(3, dtype=F64).expand(2, 3, 3) * 3,
                       "limit_std": torch.ones(2, dtype=F64)},
           "atom_types": {"index": index}}
    return fields, x0, ctx, index


def test_field_set_loss_reduces_per_sample_then_batch():
    g = torch.Generator().manual_seed(2)
    fields, x0, ctx, index = _toy_batch(g)
    t = torch.tensor([0.3, 0.8], dtype=F64)
    corrupted = fields.corrupt(x0, t, ctx, generator=g)
    preds = {"frac_coords": torch.randn(4, 3, generator=g, dtype=F64),
             "lattice": torch.randn(2, 3, 3, generator=g, dtype=F64),
             "atom_types": torch.randn(4, 5, generator=g, dtype=F64)}
    total, parts = fields.loss(preds, corrupted)
    fc = ((preds["frac_coords"] - corrupted["frac_coords"].target) ** 2).mean(-1)
    exp_fc = torch.stack([fc[:3].sum(), fc[3]]).mean()
    lat = ((preds["lattice"] - corrupted["lattice"].target) ** 2).reshape(2, 9).mean(-1).mean()
    ty = fields["atom_types"].process.loss(preds["atom_types"], corrupted["atom_types"])
    exp_ty = torch.stack([ty[:3].mean(), ty[3]]).mean()
    torch.testing.assert_close(parts["frac_coords"], exp_fc)
    torch.testing.assert_close(parts["lattice"], lat)
    torch.testing.assert_close(parts["atom_types"], exp_ty)
    torch.testing.assert_close(total, 0.1 * exp_fc + lat + 2.0 * exp_ty)
    with pytest.raises(KeyError, match="lattice"):
        fields.corrupt({"frac_coords": x0["frac_coords"], "atom_types": x0["atom_types"]}, t, ctx)
    with pytest.raises(ValueError, match="reduction"):
        DiffusionField(VPProcess(), reduce="max")


def test_cfg_combine_continuous_and_logits():
    g = torch.Generator().manual_seed(3)
    c, u = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(cfg_combine(c, u, 1.0), c)
    torch.testing.assert_close(cfg_combine(c, u, 0.0), u)
    torch.testing.assert_close(cfg_combine(c, u, 2.0), 2 * c - u)
    lc, lu = torch.randn(5, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g, dtype=F64)
    lc[:, 0] = float("-inf")  # a class forbidden by the conditional model stays forbidden
    out = cfg_combine_logits(lc, lu, 2.0)
    assert torch.isneginf(out[:, 0]).all()
    expected = -1.0 * torch.log_softmax(lu, -1)[:, 1:] + 2.0 * torch.log_softmax(lc, -1)[:, 1:]
    torch.testing.assert_close(out[:, 1:], expected)
    torch.testing.assert_close(cfg_combine_logits(lc, lu, 1.0), torch.log_softmax(lc, -1))
    # per-condition scales
    c1, c2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(cfg_combine_multi(u, {"p": c1, "comp": c2}, {"p": 1.5, "comp": 0.5}),
                               u + 1.5 * (c1 - u) + 0.5 * (c2 - u))
    multi = cfg_combine_multi(lu, {"p": lc}, {"p": 2.0}, logits=True)
    torch.testing.assert_close(multi, out)
    with pytest.raises(KeyError):
        cfg_combine_multi(u, {"p": c1}, {"q": 1.0})
    fields = cfg_combine_fields({"x": c, "types": lc}, {"x": u, "types": lu}, 2.0, discrete=["types"])
    torch.testing.assert_close(fields["types"], out)


def test_guided_score_function_evaluates_the_variants_and_combines_per_field():
    """ClassifierFreeGuidance asks for the right condition subsets and combines each field
    (continuous linearly, discrete on log-probabilities) into the sampler's score_fn."""
    from gencrystal.diffusion import ClassifierFreeGuidance

    assert ClassifierFreeGuidance(["p", "comp"], 1.0).variants == [{"p", "comp"}]
    assert ClassifierFreeGuidance([], 2.0).variants == [set()]
    assert ClassifierFreeGuidance(["p", "comp"], 0.0).variants == [set()]
    two = ClassifierFreeGuidance(["p", "comp"], 2.0)
    assert two.variants == [{"p", "comp"}, set()] and two.dropped("p") == [False, True]
    per = ClassifierFreeGuidance(["p", "comp"], {"p": 1.5, "comp": 0.5, "absent": 3.0})
    assert per.variants == [set(), {"p"}, {"comp"}] and per.dropped("p") == [True, False, True]

    g = torch.Generator().manual_seed(4)
    outs = [{"x": torch.randn(5, 3, generator=g), "types": torch.randn(5, 4, generator=g, dtype=F64)} for _ in range(3)]
    calls = []

    def predict(state, t):
        calls.append(t)
        return outs[: len(two.variants)]

    guided = two.score_fn(predict, discrete=["types"])(None, torch.zeros(5))
    assert len(calls) == 1
    torch.testing.assert_close(guided["x"], cfg_combine(outs[0]["x"], outs[1]["x"], 2.0))
    torch.testing.assert_close(guided["types"], cfg_combine_logits(outs[0]["types"], outs[1]["types"], 2.0))
    multi = per.combine(outs, discrete=["types"])
    torch.testing.assert_close(multi["x"], outs[0]["x"] + 1.5 * (outs[1]["x"] - outs[0]["x"]) + 0.5 * (outs[2]["x"] - outs[0]["x"]))
    torch.testing.assert_close(multi["types"], cfg_combine_multi(outs[0]["types"], {"p": outs[1]["types"], "comp": outs[2]["types"]},
                                                                 {"p": 1.5, "comp": 0.5}, logits=True))
    with pytest.raises(ValueError, match="variant"):
        two.combine(outs)


def test_hydra_configs_compose_and_instantiate():
    with initialize_config_dir(config_dir=str(CONF / "diffusion"), version_base="1.3"):
        csp = instantiate(compose("csp"))
        dng = instantiate(compose("dng", overrides=["frac_coords@fields.frac_coords=wrapped_ve_diffcsp"]))
    assert isinstance(csp, FieldSet) and list(csp) == ["frac_coords", "lattice"]
    assert list(dng) == ["frac_coords", "lattice", "atom_types"]
    assert csp["frac_coords"].loss_weight == 0.1 and csp["frac_coords"].process.sigma_max == 5.0
    assert dng["frac_coords"].process.weighting == "sigma_norm" and dng["frac_coords"].reduce == "mean"
    assert dng["atom_types"].process.num_classes == 100 and dng["atom_types"].process.hybrid_lambda == 0.01
    pc = instantiate(OmegaConf.load(CONF / "sampler" / "pc.yaml"))
    assert pc.num_steps == 1000 and pc.correctors["frac_coords"].snr == 0.4 and pc.correctors["lattice"].snr == 0.2
