"""Flow-matching fields and ODE samplers: paths, targets, point-mass integration, invariances."""

from __future__ import annotations

import math

import pytest
import torch

from gencrystal.diffusion import (DiffusionField, FieldSet, FlowMatrix, FlowSampler, FlowTorus, MaskedFlow, sample_flow,
                                  wrap_displacement)
from gencrystal.diffusion.flow import sym_log

F64 = torch.float64
S1 = torch.tensor([[4.0, 0.5, 0.0], [0.5, 5.0, 0.2], [0.0, 0.2, 6.0]], dtype=F64)


def _lattice_ctx(b):
    return {"limit_mean": (3.0 * torch.eye(3, dtype=F64)).expand(b, 3, 3), "limit_std": torch.full((b,), 0.6, dtype=F64)}


def test_torus_path_moves_the_short_way_round():
    """x0 near 1 and x1 near 0: the path crosses the boundary (0.95 -> 1.0 = 0.0 -> 0.05)
    instead of sweeping back across the cell; the velocity is +0.1, not -0.9."""
    torus = FlowTorus()
    z = torch.tensor([[0.95, 0.02, 0.5]], dtype=F64)
    x1 = torch.tensor([[0.05, 0.98, 0.5]], dtype=F64)
    x_half, v = torus.path(z, x1, torch.tensor([0.5], dtype=F64))
    assert torch.allclose(v, torch.tensor([[0.1, -0.04, 0.0]], dtype=F64))
    assert torch.allclose(wrap_displacement(x_half - torch.tensor([[0.0, 0.0, 0.5]], dtype=F64)),
                          torch.zeros(1, 3, dtype=F64), atol=1e-12)
    assert bool(((x_half >= 0) & (x_half < 1)).all())
    x_end, _ = torus.path(z, x1, torch.tensor([1.0], dtype=F64))
    assert torch.allclose(wrap_displacement(x_end - x1), torch.zeros(1, 3, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("schedule", ["cond_ot", "cosine"])
def test_target_is_the_time_derivative_of_the_path(schedule):
    """Central finite differences of x_tau (tau = 1 - t) equal the regression target, for the
    torus (on the wrapped difference) and the lattice (in log space), with the same prior draw."""
    b, n, d = 6, 4, 1e-5
    index = torch.arange(b).repeat_interleave(n)
    x1 = torch.rand(b * n, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = torch.rand(b, dtype=F64, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.05
    torus, mat = FlowTorus(schedule), FlowMatrix(schedule)
    lat1 = S1.expand(b, 3, 3).clone()

    def at(tt, proc, x, **ctx):
        return proc.corrupt(x, tt, generator=torch.Generator().manual_seed(7), **ctx)

    c = at(t, torus, x1, index=index)
    fd = wrap_displacement(at(t - d, torus, x1, index=index).x_t - at(t + d, torus, x1, index=index).x_t) / (2 * d)
    assert torch.allclose(fd, c.target, atol=1e-7)
    ctx = _lattice_ctx(b)
    c = at(t, mat, lat1, **ctx)
    fd = (sym_log(at(t - d, mat, lat1, **ctx).x_t) - sym_log(at(t + d, mat, lat1, **ctx).x_t)) / (2 * d)
    assert torch.allclose(fd, c.target, atol=1e-6)
    # the path is symmetric positive definite throughout and ends on the data
    assert bool((torch.linalg.eigvalsh(c.x_t) > 0).all())
    end = mat.corrupt(lat1, torch.zeros(b, dtype=F64), generator=torch.Generator().manual_seed(7), **ctx).x_t
    assert torch.allclose(end, lat1, atol=1e-10)


def _point_mass(torus, mat, x1, s1, index):
    """The exact marginal velocity field of a point mass at (x1, s1) on the chosen path.

    u(x, tau) = kappa'/(1 - kappa) * log_x(x1): singular at the data end tau = 1, where it
    is undefined; it is given as 0 there (the mean over prior directions on the torus)."""
    sched = torus.schedule

    def velocity(state, t):
        tau = 1.0 - t
        k, dk = sched.kappa(tau), sched.dkappa(tau)
        r = torch.where(1.0 - k > 0, dk / (1.0 - k).clamp(min=1e-300), torch.zeros_like(k))
        v = r[index, None] * wrap_displacement(x1 - state["frac_coords"])
        vl = r[:, None, None] * (mat.to_flow(s1) - mat.to_flow(state["lattice"]))
        return {"frac_coords": v, "lattice": vl}

    return velocity


def _integrate(schedule, solver, steps, t_end=0.0, b=40, n=3):
    torus, mat = FlowTorus(schedule), FlowMatrix(schedule)
    index = torch.arange(b).repeat_interleave(n)
    g = torch.Generator().manual_seed(3)
    x1 = torch.rand(b * n, 3, dtype=F64, generator=g)
    s1 = S1.expand(b, 3, 3).clone()
    ctx = {"frac_coords": {"index": index}, "lattice": {"index": None, **_lattice_ctx(b)}}
    state = {"frac_coords": torus.prior_sample(x1, generator=g),
             "lattice": mat.prior_sample(s1, generator=g, **ctx["lattice"])}
    z, zl = state["frac_coords"].clone(), mat.to_flow(state["lattice"])
    out = sample_flow({"frac_coords": torus, "lattice": mat}, _point_mass(torus, mat, x1, s1, index), state, steps,
                      solver=solver, context=ctx, t_end=t_end)
    k = torus.schedule.kappa(torch.tensor(1.0 - t_end, dtype=F64))
    exact_x = z + k * wrap_displacement(x1 - z)
    exact_l = mat.from_flow(zl + k * (mat.to_flow(s1) - zl))
    err = max(wrap_displacement(out.state["frac_coords"] - exact_x).abs().max().item(),
              (out.state["lattice"] - exact_l).abs().max().item())
    return err, out.nfe


@pytest.mark.parametrize("solver,nfe_per_step", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_point_mass_velocity_carries_prior_samples_to_the_point(solver, nfe_per_step):
    """Conditional-OT paths are straight lines: Euler and midpoint land on the point exactly.
    RK4's last stage evaluates the field at the data end, where a point mass's field is
    undefined, so RK4 misses by a sixth of its last step — shrinking as 1/N."""
    errs = []
    for steps in (5, 10, 20, 40):
        err, nfe = _integrate("cond_ot", solver, steps)
        assert nfe == steps * nfe_per_step
        errs.append(err)
    if solver == "rk4":
        assert all(e2 < 0.6 * e1 for e1, e2 in zip(errs, errs[1:])), errs
        assert errs[-1] < 0.03, errs
    else:
        assert max(errs) < 1e-9, errs


@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_solver_error_shrinks_at_the_solver_order(solver, order):
    """On the curved-in-time cosine schedule the global error at tau = 1/2 (torus and
    lattice, exact point-mass field) falls by 2^order per halving of the step."""
    errs = [_integrate("cosine", solver, steps, t_end=0.5)[0] for steps in (8, 16, 32)]
    for e1, e2 in zip(errs, errs[1:]):
        rate = math.log2(e1 / e2)
        assert abs(rate - order) < 0.3, (errs, rate)


def test_torus_loss_ignores_a_common_translation_and_atom_order():
    b, n = 5, 4
    index = torch.arange(b).repeat_interleave(n)
    x1 = torch.rand(b * n, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = torch.full((b,), 0.4, dtype=F64)
    field = FieldSet({"frac_coords": DiffusionField(FlowTorus(), reduce="mean")})
    c = field["frac_coords"].corrupt(x1, t, index=index, generator=torch.Generator().manual_seed(1))
    pred = torch.randn(b * n, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    base = field["frac_coords"].loss(pred, c)
    shift = torch.randn(b, 3, dtype=F64)[index]  # a drift per crystal the network cannot express
    assert torch.allclose(field["frac_coords"].loss(pred + shift, c), base)
    perm = torch.cat([torch.randperm(n) + i * n for i in range(b)])
    c_perm = type(c)(x_t=c.x_t[perm], target=c.target[perm], t=c.t, index=index[perm], num_segments=b)
    assert torch.allclose(field["frac_coords"].loss(pred[perm], c_perm), base)
    # without the mean removal the drift does change the loss (the test can fail)
    raw = DiffusionField(FlowTorus(remove_mean=False), reduce="mean")
    assert not torch.allclose(raw.loss(pred + shift, c), raw.loss(pred, c))


def _cspnet_velocity(num_atoms, batch, tokens):
    from gencrystal.model.denoiser import CSPNet

    torch.manual_seed(0)
    net = CSPNet(hidden_dim=32, num_layers=2, num_freqs=8, time_dim=16, cond_dim=0).double().eval()

    def velocity(state, t):
        with torch.no_grad():
            return net({"frac_coords": state["frac_coords"], "lattice": state["lattice"], "atom_types": tokens},
                       num_atoms, batch, t, None)

    return velocity


def test_flow_sampler_is_translation_and_permutation_equivariant():
    """With the (invariant) denoiser as velocity field, shifting every atom of the prior draw
    by one vector shifts the sample by it, and permuting the atoms permutes the sample."""
    b, n = 3, 4
    num_atoms = torch.full((b,), n)
    batch = torch.arange(b).repeat_interleave(n)
    tokens = torch.tensor([7, 7, 21, 37] * b)
    torus, mat = FlowTorus(), FlowMatrix()
    ctx = {"frac_coords": {"index": batch}, "lattice": {"index": None, **_lattice_ctx(b)}}
    g = torch.Generator().manual_seed(5)
    state = {"frac_coords": torus.prior_sample(torch.zeros(b * n, 3, dtype=F64), generator=g),
             "lattice": mat.prior_sample(torch.zeros(b, 3, 3, dtype=F64), generator=g, **ctx["lattice"])}
    fields = {"frac_coords": torus, "lattice": mat}
    smp = FlowSampler(num_steps=8, solver="midpoint")
    ref = smp(fields, _cspnet_velocity(num_atoms, batch, tokens), state, context=ctx).state
    shift = torch.tensor([0.3, -0.7, 0.45], dtype=F64)
    moved = smp(fields, _cspnet_velocity(num_atoms, batch, tokens),
                {**state, "frac_coords": (state["frac_coords"] + shift) % 1.0}, context=ctx).state
    assert torch.allclose(wrap_displacement(moved["frac_coords"] - ref["frac_coords"] - shift),
                          torch.zeros_like(shift).expand(b * n, 3), atol=1e-8)
    assert torch.allclose(moved["lattice"], ref["lattice"], atol=1e-8)
    perm = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(i)) + i * n for i in range(b)])
    permuted = smp(fields, _cspnet_velocity(num_atoms, batch, tokens[perm]),
                   {**state, "frac_coords": state["frac_coords"][perm]}, context=ctx).state
    assert torch.allclose(permuted["frac_coords"], ref["frac_coords"][perm], atol=1e-8)
    assert torch.allclose(permuted["lattice"], ref["lattice"], atol=1e-8)


def test_masked_flow_unmasks_on_schedule_and_respects_allowed_classes():
    """Each step unmasks the expected fraction (kappa(tau') - kappa(tau))/(1 - kappa(tau)) of the
    masked rows into allowed classes; at the data end nothing stays masked."""
    proc = MaskedFlow(num_classes=5)
    rows = 20000
    x = proc.prior_sample(torch.zeros(rows, dtype=torch.long))
    logits = torch.zeros(rows, 5)
    allowed = torch.tensor([False, True, False, True, False])
    t, s = torch.tensor([0.8]), torch.tensor([0.6])
    idx = torch.zeros(rows, dtype=torch.long)
    y = proc.jump(x, logits, t, s, index=idx, allowed=allowed, generator=torch.Generator().manual_seed(0))
    frac = (y != proc.mask_index).double().mean().item()
    assert abs(frac - (0.4 - 0.2) / 0.8) < 0.015
    assert set(y[y != proc.mask_index].tolist()) <= {1, 3}
    z = proc.jump(y, logits, s, torch.tensor([0.0]), index=idx, generator=torch.Generator().manual_seed(1))
    assert not bool((z == proc.mask_index).any())
    assert torch.equal(z[y != proc.mask_index], y[y != proc.mask_index])  # unmasked rows never change
    c = proc.corrupt(torch.full((rows,), 2), torch.tensor([0.3]), index=idx, generator=torch.Generator().manual_seed(2))
    assert abs((c.x_t == proc.mask_index).double().mean().item() - 0.3) < 0.015
    loss = proc.loss(torch.zeros(rows, 5), c)
    assert torch.allclose(loss[c.x_t == proc.mask_index], torch.full_like(loss[c.x_t == proc.mask_index], math.log(5)))
    assert bool((loss[c.x_t != proc.mask_index] == 0).all())


def test_flow_and_diffusion_samplers_refuse_each_others_fields():
    from gencrystal.diffusion import WrappedVE

    with pytest.raises(TypeError, match="flow fields only"):
        sample_flow({"frac_coords": WrappedVE()}, lambda s, t: s, {"frac_coords": torch.zeros(2, 3)}, 2,
                    context={"frac_coords": {"index": torch.zeros(2, dtype=torch.long)}})
    with pytest.raises(ValueError, match="solver"):
        FlowSampler(solver="heun")
    assert FlowSampler(10, "rk4").nfe == 40 and FlowSampler(10, "midpoint").nfe == 20 and FlowSampler(7).nfe == 7


def test_anti_annealing_scales_the_coordinate_velocity():
    """velocity x (1 + slope relu(tau - offset)): with a constant unit field the coordinate
    moves by 1 + slope * integral of relu(tau - offset) over [0, 1]; the lattice is untouched."""
    torus, mat = FlowTorus(), FlowMatrix(space="linear")
    b = 2
    state = {"frac_coords": torch.zeros(b, 1, dtype=F64), "lattice": S1.expand(b, 3, 3).clone()}
    ctx = {"frac_coords": {"index": torch.arange(b)}, "lattice": {"index": None}}

    def velocity(st, t):
        return {"frac_coords": torch.full_like(st["frac_coords"], 0.1), "lattice": torch.zeros_like(st["lattice"])}

    out = sample_flow({"frac_coords": torus, "lattice": mat}, velocity, state, 200, solver="midpoint", context=ctx,
                      anneal_slope=2.0, anneal_offset=0.5)
    expected = 0.1 * (1.0 + 2.0 * 0.5 * 0.5 ** 2)
    assert torch.allclose(out.state["frac_coords"], torch.full((b, 1), expected, dtype=F64), atol=1e-12)
    assert torch.allclose(out.state["lattice"], state["lattice"])
