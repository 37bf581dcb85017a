"""The `Add a diffusion field` recipe of docs/architecture.md, done exactly: one YAML in a
`diffusion/<field>/` folder mounted into the model's FieldSet with one override; the field then
trains (corrupt + loss) and samples with the generic sampler. The denoiser head is stood in for
by the exact score of a Gaussian toy target, so the sampled distribution can be checked."""

from __future__ import annotations

import textwrap

import torch

YAML = '''
# A per-crystal scalar (a magnetic moment per atom, μB): VP diffusion towards N(limit_mean, limit_std²).
_target_: gencrystal.diffusion.DiffusionField
loss_weight: 1.0
reduce: mean
process:
  _target_: gencrystal.diffusion.VPProcess
  beta_min: 0.1
  beta_max: 20.0
  symmetric: false    # a vector field: i.i.d. noise
'''

M0, TAU = 2.0, 0.1  # toy target: magmom ~ N(M0, TAU²)


def test_add_a_field_with_one_yaml(tmp_path):
    from hydra.utils import instantiate

    from gencrystal.config import compose
    from gencrystal.diffusion import DiffusionField, FieldSet, draw_prior, sample

    (tmp_path / "myconf" / "diffusion" / "magmom").mkdir(parents=True)
    (tmp_path / "myconf" / "diffusion" / "magmom" / "vp.yaml").write_text(textwrap.dedent(YAML))
    cfg = compose("train", [f"hydra.searchpath=[file://{tmp_path / 'myconf'}]",
                            "+diffusion/magmom@diffusion.fields.magmom=vp"])
    fields = instantiate(cfg.diffusion)
    assert isinstance(fields, FieldSet) and set(fields.keys()) == {"frac_coords", "lattice", "magmom"}
    field = fields["magmom"]
    assert isinstance(field, DiffusionField) and field.process.symmetric is False

    # training: the new field is corrupted and scored with the others, keyed by its name
    g = torch.Generator().manual_seed(0)
    B, n = 8, 2
    index = torch.arange(B).repeat_interleave(n)
    x0 = {"frac_coords": torch.rand(B * n, 3, generator=g), "lattice": 4.0 * torch.eye(3).expand(B, 3, 3).clone(),
          "magmom": M0 + TAU * torch.randn(B, 1, generator=g)}
    ctx = {"frac_coords": {"index": index, "std_scale": torch.full((B,), n ** (-1 / 3))},
           "lattice": {"limit_mean": 3.0 * torch.eye(3).expand(B, 3, 3), "limit_std": torch.full((B,), 0.8)},
           "magmom": {"limit_mean": torch.zeros(B, 1), "limit_std": torch.ones(B)}}
    t = torch.full((B,), 0.5)
    corrupted = fields.corrupt(x0, t, ctx, generator=g)
    preds = {k: torch.zeros_like(c.target) for k, c in corrupted.items()}
    total, parts = fields.loss(preds, corrupted)
    assert set(parts) == {"frac_coords", "lattice", "magmom"} and torch.isfinite(total)
    assert float(parts["magmom"]) > 0

    # sampling: with the exact score of the toy target the sampler recovers N(M0, TAU²)
    B = 2000
    proc = field.process
    sctx = {"magmom": {"limit_mean": torch.zeros(B, 1, dtype=torch.float64), "limit_std": torch.ones(B, dtype=torch.float64)}}

    def score_fn(state, t):
        a = proc.mean_coeff(t)[:, None]
        var = a**2 * TAU**2 + (1 - a**2)
        return {"magmom": -(state["magmom"] - a * M0) / var}

    init = draw_prior({"magmom": proc}, {"magmom": torch.zeros(B, 1, dtype=torch.float64)}, sctx,
                      torch.Generator().manual_seed(1))
    out = sample({"magmom": proc}, score_fn, init, 500, context=sctx, generator=torch.Generator().manual_seed(2))
    x = out.state["magmom"].squeeze(-1)
    assert abs(float(x.mean()) - M0) < 0.02 and abs(float(x.std()) - TAU) < 0.02
