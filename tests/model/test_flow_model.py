"""Flow-matching models end to end: a two-structure toy set learned and sampled back, and a
flow checkpoint through `train`, `sample`, `evaluate`, a generative search and the demo's
sampling step, with no flag beyond the experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gencrystal.cli import compose, main

STEPS = 800
TINY = ["model=tiny", "logger=csv", "optim=adamw_constant", "num_workers=0", "data.progress=false",
        "trainer.enable_progress_bar=false"]


def _two_structures():
    """Rock-salt MgO and diamond Si, 2 atoms each (different compositions)."""
    from ase.build import bulk

    from gencrystal.data.dataset import CrystalDataset

    frames = [bulk("MgO", "rocksalt", a=4.21), bulk("Si", "diamond", a=5.43)]
    return frames, CrystalDataset.from_structures(frames)


def test_two_structure_toy_set_is_learned_and_sampled_back():
    """The tiny CSPNet with the flow fields, trained on two crystals, samples each of them
    back from its composition (StructureMatcher, CSP settings) with 20 Euler steps."""
    from torch_geometric.data import Batch

    from gencrystal.data.stats import DatasetStats
    from gencrystal.matching import make_matcher
    from gencrystal.model.lattice_prior import LatticePriorParams
    from gencrystal.model.module import CrystalDiffusionModule
    from gencrystal.structures import to_structure

    frames, ds = _two_structures()
    data = [ds[0], ds[1]]
    torch.manual_seed(0)
    cfg = compose("train", [*TINY, "diffusion=csp_flow", "model/conditions=composition", "model.p_uncond=0.0",
                            "model.denoiser.hidden_dim=64", "optim.optimizer.lr=3e-3", "model.ema_decay=0.9"])
    stats = DatasetStats(max_atoms=2, num_atoms_hist={2: 2}, n_structures=2)
    prior = LatticePriorParams(volume_model="constant", c0=12.0, v=0.1).to_dict()
    module = CrystalDiffusionModule(cfg, data_stats=stats.to_dict(), lattice_prior=prior)
    assert module.is_flow
    batch = Batch.from_data_list(data * 4)
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    module.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        opt.zero_grad()
        loss, _ = module.compute_loss(batch, generator=gen)
        loss.backward()
        torch.nn.utils.clip_grad_value_(module.net.parameters(), 0.5)
        opt.step()
        module.ema.update_parameters(module.net)
    module.eval()
    k = 4
    z = torch.tensor([12, 8] * k + [14, 14] * k)
    comp = torch.zeros(2 * k, 100)
    comp[:k, [11, 7]] = 0.5
    comp[k:, 13] = 1.0
    out = module.sample(torch.full((2 * k,), 2), z, {"composition": comp},
                        sampler={"_target_": "gencrystal.diffusion.FlowSampler", "num_steps": 20},
                        generator=torch.Generator().manual_seed(1))
    assert out["nfe"] == 20
    matcher = make_matcher("csp")
    hits = 0
    for i in range(2 * k):
        from ase import Atoms

        sl = slice(2 * i, 2 * i + 2)
        atoms = Atoms(numbers=out["atom_types"][sl].numpy(), cell=out["lattice"][i].numpy(),
                      scaled_positions=out["frac_coords"][sl].numpy(), pbc=True)
        hits += bool(matcher.fit(to_structure(atoms), to_structure(frames[0 if i < k else 1])))
    assert hits >= 2 * k - 2, hits


def test_zero_lattice_residual_samples_the_lattice_prior():
    """With the network's lattice residual at zero, the flow lattice velocity is the closed-form
    guess for prior-distributed data, i.e. the exact marginal velocity of that distribution: the
    samples must come back distributed as log S ~ N(log mu(n, P), (sigma/mu)^2) entry-wise."""
    from gencrystal.diffusion.flow import sym_log
    from gencrystal.model.lattice_prior import LatticePriorParams
    from gencrystal.model.module import CrystalDiffusionModule

    torch.manual_seed(0)
    prior = LatticePriorParams(volume_model="murnaghan", c0=15.0, bulk_modulus=100.0, bulk_modulus_derivative=4.0, v=0.1)
    module = CrystalDiffusionModule(compose("train", ["model=tiny", "diffusion=csp_flow"]),
                                    data_stats={"max_atoms": 8, "pressure_min": 0.0, "pressure_max": 100.0},
                                    lattice_prior=prior.to_dict(), condition_scalers={"pressure": [50.0, 30.0]}).eval()
    head = module.ema.module.denoiser.lattice_head[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    b = 400
    n, p = torch.full((b,), 4), torch.full((b,), 60.0)
    out = module.sample(n, torch.full((4 * b,), 14), {"pressure": p}, sampler="flow",
                        generator=torch.Generator().manual_seed(0))
    log_s = sym_log(out["lattice"].double())
    mu, sd = float(module.prior.mean(n, p)[0]), float(module.prior.std(n)[0])
    diag = log_s.diagonal(dim1=-2, dim2=-1)
    assert abs(float(diag.mean()) - torch.log(torch.tensor(mu)).item()) < 0.02
    assert abs(float(diag.std()) / (sd / mu) - 1.0) < 0.15 and abs(float(log_s[:, 0, 1].std()) / (sd / mu) - 1.0) < 0.15
    # pressure moves the prior: 0 GPa samples are larger
    out0 = module.sample(n, torch.full((4 * b,), 14), {"pressure": torch.zeros(b)}, sampler="flow",
                         generator=torch.Generator().manual_seed(0))
    assert float(torch.linalg.det(out0["lattice"]).mean()) > 1.2 * float(torch.linalg.det(out["lattice"]).mean())


@pytest.fixture(scope="module")
def flow_ckpt(tmp_path_factory):
    """`gencrystal train experiment=hp_csp_flow` on the toy pressure database (a few steps)."""
    from gencrystal.sampling.toy import build_toy_db

    root = tmp_path_factory.mktemp("flow")
    db = build_toy_db(root / "toy.db")
    out = root / "run"
    assert main(["train", "experiment=hp_csp_flow", *TINY, f"data.url={db}", "data.cache_dir=false", f"out={out}",
                 "batch_size=16", "trainer.max_steps=6", "trainer.limit_val_batches=1"]) == 0
    return out / "checkpoints" / "best.ckpt", db


def test_flow_checkpoint_round_trips_through_the_cli(flow_ckpt, tmp_path, capsys):
    from gencrystal.model.module import CrystalDiffusionModule

    ckpt, db = flow_ckpt
    module = CrystalDiffusionModule.load_checkpoint(ckpt)
    assert module.is_flow and module.csp and module.cfg.name == "hp_csp_flow"
    assert module.hparams["lattice_prior"]["volume_model"] in ("murnaghan", "constant")
    # sample with the defaults (sampler=fast is the CLI default: the flow model runs its flow sampler)
    out = tmp_path / "s"
    assert main(["sample", f"ckpt={ckpt}", "composition=MgO", "formula_units=1-2", "pressure=25", "num_samples=4",
                 "seed=0", f"out={out}", "progress=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sampler"] == "flow" and summary["nfe"] == 50 and summary["written"] == 4
    # an explicit flow sampler, and a diffusion model refusing one
    assert main(["sample", f"ckpt={ckpt}", "composition=MgO", "pressure=25", "num_samples=2", "seed=0",
                 f"out={tmp_path / 's_rk4'}", "sampler=flow_rk4", "progress=false"]) == 0
    assert json.loads((tmp_path / "s_rk4" / "summary.json").read_text())["nfe"] == 100
    capsys.readouterr()
    assert main(["sample", f"ckpt={ckpt}", "composition=MgO", "pressure=25", "num_samples=2",
                 f"out={tmp_path / 'bad'}", "sampler=flow", "sampler.solver=heun", "progress=false"]) == 2
    assert "solver 'heun'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "gencrystal-hp-csp-small.ckpt"
    if shipped.is_file():  # a diffusion checkpoint refuses a flow sampler
        assert main(["sample", f"ckpt={shipped}", "composition=Li4", "pressure=25", "num_samples=2",
                     f"out={tmp_path / 'bad2'}", "sampler=flow", "progress=false"]) == 2
        assert "diffusion model" in capsys.readouterr().err
    # evaluate the samples against themselves (order pairing): every one matches itself
    ev = tmp_path / "ev"
    assert main(["evaluate", "csp", f"pred={out / 'samples.extxyz'}", f"ref={out / 'samples.extxyz'}", "pair=order",
                 "validity_mode=pred", f"out={ev}"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["n_ref"] == 4
    capsys.readouterr()


def test_flow_checkpoint_in_a_generative_search_and_the_demo_sampling_step(flow_ckpt, tmp_path):
    from ase.calculators.lj import LennardJones

    from gencrystal.demo import main as demo_main
    from gencrystal.relax import calculator_potential
    from gencrystal.search import GenerativeSearch, run_search

    ckpt, _db = flow_ckpt
    pot = calculator_potential(lambda: LennardJones(sigma=2.0, epsilon=0.05, rc=5.0, smooth=True), "lj-test")
    res = run_search("Li", 25.0, GenerativeSearch(ckpt=str(ckpt), batch=2), 2, str(tmp_path / "g.db"), None, pot,
                     formula_units=[4], seed=0, relax_options={"steps": 10, "fmax": 0.1}, chunk=2, progress=False)
    assert res.n_done == 2 and {c.origin for c in res.candidates} == {"generative"}
    # scripts/demo.sh: `gencrystal sample ckpt=$DEMO_CKPT composition=Li16 pressure=50 ...`, then the candidates step
    out = tmp_path / "demo"
    assert main(["sample", f"ckpt={ckpt}", "composition=Li16", "pressure=50", "num_samples=2", "seed=0",
                 f"out={out / 'samples_Li16'}", "progress=false", "checks.min_volume_per_atom=4.0"]) == 0
    assert demo_main(["candidates", "--out", str(out / "candidates.extxyz"),
                      str(out / "samples_Li16" / "samples.extxyz")]) == 0
    assert (out / "candidates.extxyz").is_file()


def test_dng_flow_trains_and_samples_types_by_discrete_flow(tmp_path):
    """`experiment=mp20_dng_flow` (on the toy database): atom types come from the masked flow,
    restricted to a chemical system when asked."""
    from gencrystal.model.module import CrystalDiffusionModule
    from gencrystal.sampling.toy import build_toy_db

    db = build_toy_db(tmp_path / "toy.db")
    out = tmp_path / "dng"
    assert main(["train", "experiment=mp20_dng_flow", "data=asedb", *TINY, f"data.url={db}", "data.cache_dir=false",
                 f"out={out}", "batch_size=16", "trainer.max_steps=4", "trainer.limit_val_batches=1"]) == 0
    module = CrystalDiffusionModule.load_checkpoint(out / "checkpoints" / "best.ckpt")
    assert module.is_flow and not module.csp
    allowed = torch.zeros(100, dtype=torch.bool)
    allowed[[2, 11]] = True  # Li, Na
    res = module.sample(torch.tensor([3, 4]), None, {"allowed_elements": allowed}, sampler="fast",
                        generator=torch.Generator().manual_seed(0))
    assert res["nfe"] == 50 and set(res["atom_types"].tolist()) <= {3, 12}
    assert main(["sample", f"ckpt={out / 'checkpoints' / 'best.ckpt'}", "chemical_system=Li-Mg", "pressure=0",
                 "num_samples=2", "seed=0", f"out={tmp_path / 'dng_s'}", "progress=false"]) == 0
