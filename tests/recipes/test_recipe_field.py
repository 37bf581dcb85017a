"""The `Add a diffusion field` recipe of docs/architecture.md, done exactly: one module (a context
class and a denoiser head) and one YAML in a `diffusion/<field>/` folder, mounted into the model's
FieldSet with one override. The crystal model then trains the field (corrupt + loss, gradients
into the head), samples it, and a checkpoint of it reloads strictly; the generic sampler, fed
with the exact score of a Gaussian toy target and the context's keyword context, recovers that
target."""

from __future__ import annotations

import textwrap

import torch

MODULE = '''
from dataclasses import dataclass

import torch
from torch import nn

from gencrystal.model.denoiser import FieldHead
from gencrystal.model.fields import CrystalInfo, FieldContext


@dataclass
class MagmomContext(FieldContext):
    """A magnetic moment per atom (μB), one value per crystal, batch column `magmom` [B, 1];
    the VP process's prior is N(mean, std²) (μB)."""

    mean: float = 0.0
    std: float = 1.0

    def context(self, info: CrystalInfo) -> dict:
        b, device = info.num_cells, info.num_atoms.device
        return {"index": None, "limit_mean": torch.full((b, 1), self.mean, dtype=info.dtype, device=device),
                "limit_std": torch.full((b,), self.std, dtype=info.dtype, device=device)}

    def like(self, info: CrystalInfo) -> torch.Tensor:
        return torch.zeros(info.num_cells, 1, dtype=info.dtype, device=info.num_atoms.device)


class MagmomHead(FieldHead):
    """The VP target of the moment from the pooled cell features and the noisy moment."""

    def __init__(self, hidden_dim: int, width: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden_dim + 1, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, x_t, h_atoms, h_cells, batch):
        return self.mlp(torch.cat([h_cells, x_t], dim=-1))
'''

YAML = '''
# A per-crystal scalar (a magnetic moment per atom, μB): VP diffusion towards N(limit_mean, limit_std²).
_target_: gencrystal.diffusion.DiffusionField
loss_weight: 1.0
reduce: mean
context:
  _target_: my_field.MagmomContext
  mean: 0.0           # μB
  std: 1.0            # μB
head:
  _target_: my_field.MagmomHead
  _partial_: true     # the denoiser builds it with its hidden_dim
  width: 32
process:
  _target_: gencrystal.diffusion.VPProcess
  beta_min: 0.1
  beta_max: 20.0
  symmetric: false    # a vector field: i.i.d. noise
'''

M0, TAU = 2.0, 0.1  # toy target: magmom ~ N(M0, TAU²)


def test_add_a_field_with_one_yaml(tmp_path, monkeypatch):
    from hydra.utils import instantiate
    from torch_geometric.data import Batch, Data

    from gencrystal.config import compose
    from gencrystal.diffusion import DiffusionField, FieldSet, draw_prior, sample
    from gencrystal.model.lattice_prior import LatticePriorParams
    from gencrystal.model.module import CrystalDiffusionModule

    (tmp_path / "my_field.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "myconf" / "diffusion" / "magmom").mkdir(parents=True)
    (tmp_path / "myconf" / "diffusion" / "magmom" / "vp.yaml").write_text(textwrap.dedent(YAML))
    cfg = compose("train", [f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "model=tiny",
                            "+diffusion/magmom@diffusion.fields.magmom=vp"])
    fields = instantiate(cfg.diffusion)
    assert isinstance(fields, FieldSet) and set(fields.keys()) == {"frac_coords", "lattice", "magmom"}
    field = fields["magmom"]
    assert isinstance(field, DiffusionField) and field.process.symmetric is False

    # the crystal model: the field trains with the others, keyed by its name, through its head
    torch.manual_seed(0)
    prior = LatticePriorParams(volume_model="constant", c0=12.0, v=0.1).to_dict()
    stats = {"max_atoms": 2, "pressure_min": 0.0, "pressure_max": 10.0, "n_structures": 8}
    module = CrystalDiffusionModule(cfg, data_stats=stats, lattice_prior=prior)
    assert "magmom" in module.net.denoiser.heads
    g = torch.Generator().manual_seed(0)
    B, n = 8, 2
    comp = torch.zeros(1, 100)
    comp[0, 13] = 1.0
    items = [Data(frac_coords=torch.rand(n, 3, generator=g), atom_types=torch.full((n,), 14),
                  lattice=4.0 * torch.eye(3)[None], num_atoms=torch.tensor([n]), num_nodes=n,
                  pressure=torch.tensor([5.0]), composition=comp, magmom=M0 + TAU * torch.randn(1, 1, generator=g))
             for _ in range(B)]
    batch = Batch.from_data_list(items)
    module.train()
    total, parts = module.compute_loss(batch, generator=g)
    assert set(parts) == {"frac_coords", "lattice", "magmom"} and torch.isfinite(total)
    assert float(parts["magmom"]) > 0
    total.backward()
    head = module.net.denoiser.heads["magmom"]
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in head.parameters())

    # ... samples it (the context's output, one value per crystal) ...
    module.eval()
    out = module.sample(torch.tensor([2, 2, 2]), torch.full((6,), 14), {"pressure": torch.tensor([5.0])},
                        sampler={"_target_": "gencrystal.diffusion.PCSampler", "num_steps": 5},
                        generator=torch.Generator().manual_seed(0))
    assert out["magmom"].shape == (3, 1) and torch.isfinite(out["magmom"]).all()

    # ... and a checkpoint of it (config + state dict) rebuilds the same model, strictly
    again = CrystalDiffusionModule(module.hparams["cfg"], data_stats=stats, lattice_prior=prior)
    again.load_state_dict(module.state_dict(), strict=True)
    assert any(k.startswith("ema.module.denoiser.heads.magmom.") for k in module.state_dict())

    # sampling: with the exact score of the toy target the sampler recovers N(M0, TAU²)
    B = 2000
    proc = field.process
    info = module.crystal_info(torch.full((B,), n), torch.arange(B).repeat_interleave(n), None, torch.float64)
    sctx = {"magmom": field.context.context(info)}

    def score_fn(state, t):
        a = proc.mean_coeff(t)[:, None]
        var = a**2 * TAU**2 + (1 - a**2)
        return {"magmom": -(state["magmom"] - a * M0) / var}

    init = draw_prior({"magmom": proc}, {"magmom": field.context.like(info)}, sctx, torch.Generator().manual_seed(1))
    out = sample({"magmom": proc}, score_fn, init, 500, context=sctx, generator=torch.Generator().manual_seed(2))
    x = out.state["magmom"].squeeze(-1)
    assert abs(float(x.mean()) - M0) < 0.02 and abs(float(x.std()) - TAU) < 0.02
