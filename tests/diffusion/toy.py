"""A toy joint target with exact scores, for sampler tests.

* ``frac_coords`` [N, 3]: x0 ~ wrapped N(MU, TAU^2) per coordinate, so p_t is the wrapped
  normal of width sqrt(sigma_t^2 + TAU^2) around MU (exact score).
* ``lattice`` [B, 3, 3]: x0 = M0 + TAU_L * symmetric noise, so p_t is Gaussian with mean
  a M0 + (1 - a) limit_mean and variance a^2 TAU_L^2 + (1 - a^2) limit_std^2 per entry.
* ``atom_types`` [N]: x0 ~ Categorical(PI) independently, so p(x0 | x_t) = PI when masked.
* ``fixed`` [N]: not diffused, must come back untouched.
"""

from __future__ import annotations

import torch

from gencrystal.diffusion import MaskedD3PM, VPProcess, WrappedVE, draw_prior, wrapped_normal_score

F64 = torch.float64
MU = torch.tensor([0.1, 0.5, 0.95], dtype=F64)
TAU = 0.05
M0 = torch.tensor([[4.0, 0.5, 0.0], [0.5, 5.0, 0.2], [0.0, 0.2, 6.0]], dtype=F64)
TAU_L = 0.1
PI = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)


class ToyProblem:
    def __init__(self, num_samples: int = 300, atoms_per_sample: int = 3, dtype: torch.dtype = F64,
                 device: torch.device | str = "cpu"):
        self.B, self.n = num_samples, atoms_per_sample
        self.N = self.B * self.n
        self.dtype = dtype
        self.device = torch.device(device)
        kw = {"dtype": dtype, "device": self.device}
        self.index = torch.arange(self.B, device=self.device).repeat_interleave(self.n)
        self.std_scale = torch.full((self.B,), self.n ** (-1 / 3), **kw)
        self.limit_mean = (3.0 * torch.eye(3, **kw)).expand(self.B, 3, 3)
        self.limit_std = torch.full((self.B,), 0.8, **kw)
        self.mu, self.m0, self.pi = MU.to(**kw), M0.to(**kw), PI.to(**kw)
        self.fields = {"frac_coords": WrappedVE(sigma_min=0.01, sigma_max=1.0),
                       "lattice": VPProcess(beta_min=0.1, beta_max=20.0),
                       "atom_types": MaskedD3PM(num_classes=4, num_steps=1000)}
        self.context = {"frac_coords": {"index": self.index, "std_scale": self.std_scale},
                        "lattice": {"index": None, "limit_mean": self.limit_mean, "limit_std": self.limit_std},
                        "atom_types": {"index": self.index}}
        self.calls = 0

    def score_fn(self, state: dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        frac, vp = self.fields["frac_coords"], self.fields["lattice"]
        sig = frac.sigma(t, self.std_scale)[self.index]
        width = torch.sqrt(sig**2 + TAU**2)[:, None]
        s_x = wrapped_normal_score(state["frac_coords"], self.mu, width, frac.num_images)
        a = vp.mean_coeff(t)[:, None, None]
        mean = a * self.m0 + (1 - a) * self.limit_mean
        var = a**2 * TAU_L**2 + (1 - a**2) * self.limit_std[:, None, None] ** 2
        s_l = -(state["lattice"] - mean) / var
        logits = self.pi.log().expand(self.N, 4)
        return {"frac_coords": s_x, "lattice": s_l, "atom_types": logits}

    def init_state(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        kw = {"dtype": self.dtype, "device": self.device}
        like = {"frac_coords": torch.zeros(self.N, 3, **kw),
                "lattice": torch.zeros(self.B, 3, 3, **kw),
                "atom_types": torch.zeros(self.N, dtype=torch.long, device=self.device),
                "fixed": torch.arange(self.N, device=self.device)}
        return draw_prior(self.fields, like, self.context, generator)
