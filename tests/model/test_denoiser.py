"""CSPNet denoiser: permutation equivariance, translation invariance, rotation behaviour
(float64, 1e-5), batching without Python loops, conditioning and null embeddings."""

import pytest
import torch

from gencrystal.model.conditioning import CompositionCondition, ConditionEmbedder, GaussianExpansion, ScalarCondition
from gencrystal.model.denoiser import CSPNet, Denoiser, fully_connected_edges

TOL = 1e-5


def _random_batch(seed=0, counts=(3, 5, 1, 4)):
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor(counts)
    b, total = len(counts), int(n.sum())
    batch = torch.repeat_interleave(torch.arange(b), n)
    frac = torch.rand(total, 3, generator=g, dtype=torch.float64)
    lat = torch.randn(b, 3, 3, generator=g, dtype=torch.float64) + 4 * torch.eye(3, dtype=torch.float64)  # raw, non-symmetric
    types = torch.randint(0, 101, (total,), generator=g)  # includes the mask token 100
    t = torch.rand(b, generator=g, dtype=torch.float64)
    cond = torch.randn(b, 8, generator=g, dtype=torch.float64)
    return frac, lat, types, n, batch, t, cond


def _fwd(net, frac, lat, types, n, batch, t, cond):
    """The denoiser takes the noisy state keyed by field name."""
    return net({"frac_coords": frac, "lattice": lat, "atom_types": types}, n, batch, t, cond)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return CSPNet(hidden_dim=32, num_layers=2, num_freqs=6, time_dim=16, cond_dim=8).double().eval()


def test_is_a_denoiser_with_all_heads(net):
    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, lat, types, n, batch, t, cond)
    assert isinstance(net, Denoiser)
    assert out["frac_coords"].shape == (len(frac), 3)
    assert out["lattice"].shape == (len(n), 3, 3)
    assert out["atom_types"].shape == (len(frac), 100)


def test_fully_connected_edges_vectorised():
    src, dst, eb = fully_connected_edges(torch.tensor([2, 1, 3]))
    pairs = set(zip(src.tolist(), dst.tolist()))
    expected = {(i, j) for i in (0, 1) for j in (0, 1)} | {(2, 2)} | {(i, j) for i in (3, 4, 5) for j in (3, 4, 5)}
    assert pairs == expected and len(src) == 4 + 1 + 9
    assert eb.tolist() == [0] * 4 + [1] + [2] * 9


def test_permuting_atoms_permutes_outputs(net):
    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, lat, types, n, batch, t, cond)
    g = torch.Generator().manual_seed(1)
    ptr = torch.cumsum(n, 0) - n
    perm = torch.cat([p + torch.randperm(int(k), generator=g) for p, k in zip(ptr, n)])
    out_p = _fwd(net, frac[perm], lat, types[perm], n, batch, t, cond)
    assert torch.allclose(out_p["frac_coords"], out["frac_coords"][perm], atol=TOL)
    assert torch.allclose(out_p["atom_types"], out["atom_types"][perm], atol=TOL)
    assert torch.allclose(out_p["lattice"], out["lattice"], atol=TOL)


def test_common_fractional_translation_leaves_outputs_unchanged(net):
    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, lat, types, n, batch, t, cond)
    shift = torch.rand(len(n), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))[batch]
    out_s = _fwd(net, torch.remainder(frac + shift, 1.0), lat, types, n, batch, t, cond)
    for key in out:
        assert torch.allclose(out_s[key], out[key], atol=TOL), key


def test_rotating_the_frame_rotates_only_the_lattice_update(net):
    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, lat, types, n, batch, t, cond)
    r, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    out_r = _fwd(net, frac, lat @ r.T, types, n, batch, t, cond)
    assert torch.allclose(out_r["frac_coords"], out["frac_coords"], atol=TOL)
    assert torch.allclose(out_r["atom_types"], out["atom_types"], atol=TOL)
    assert torch.allclose(out_r["lattice"], out["lattice"] @ r.T, atol=TOL)
    assert not torch.allclose(out_r["lattice"], out["lattice"], atol=1e-3)  # it does rotate


def test_lattice_update_is_symmetric_for_symmetric_input(net):
    from gencrystal.geometry import polar_symmetric

    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, polar_symmetric(lat), types, n, batch, t, cond)
    assert torch.allclose(out["lattice"], out["lattice"].transpose(-1, -2), atol=1e-10)


def test_cells_do_not_interact(net):
    frac, lat, types, n, batch, t, cond = _random_batch()
    out = _fwd(net, frac, lat, types, n, batch, t, cond)
    one = _fwd(net, frac[:3], lat[:1], types[:3], n[:1], batch[:3], t[:1], cond[:1])
    assert torch.allclose(one["frac_coords"], out["frac_coords"][:3], atol=1e-10)
    assert torch.allclose(one["lattice"], out["lattice"][:1], atol=1e-10)


def test_gaussian_expansion_and_scalar_condition():
    exp = GaussianExpansion(-2.0, 5.0, 8)
    y = exp(torch.tensor([0.0, 5.0]))
    assert y.shape == (2, 8) and y[1, -1].item() == pytest.approx(1.0)
    cond = ScalarCondition("pressure", out_dim=4, n_basis=8)
    cond.set_scaler(50.0, 0.0)  # zero spread (all P equal) -> std 1
    assert cond.std.item() == 1.0
    cond.set_scaler(50.0, 25.0)
    assert cond.zscore(torch.tensor([100.0])).item() == pytest.approx(2.0)


def test_condition_dropout_uses_null_embeddings():
    torch.manual_seed(0)
    emb = ConditionEmbedder({"composition": CompositionCondition(out_dim=4, hidden_dim=4),
                             "pressure": ScalarCondition("pressure", out_dim=4, n_basis=8)}, p_uncond=0.2, out_dim=6)
    comp = torch.zeros(3, 100)
    comp[:, 7] = 1.0
    values = {"composition": comp, "pressure": torch.tensor([0.0, 10.0, 50.0])}
    emb.eval()
    cond = emb(values, 3)
    uncond = emb(values, 3, uncond=True)
    absent = emb({}, 3)
    assert torch.allclose(uncond, absent) and torch.allclose(uncond[0], uncond[1])
    assert not torch.allclose(cond, uncond)
    assert torch.allclose(emb(values, 3), cond)  # eval: no random dropping
    emb.train()
    g = torch.Generator().manual_seed(0)
    rows = emb({k: v.repeat(2000, *[1] * (v.dim() - 1)) for k, v in values.items()}, 6000, generator=g)
    null_row = absent[0]
    dropped = torch.isclose(rows, null_row.expand_as(rows), atol=1e-6).all(-1).float().mean().item()
    assert dropped == pytest.approx(0.2, abs=0.03)
