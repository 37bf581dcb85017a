"""CUDA paths: bf16-mixed training, sampling on the GPU, CHGNet relaxation on the GPU.

Marked ``cuda``: skipped on machines without a GPU (CI); ``bash scripts/gpu_run.sh tests``
(and the GPU job) runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints" / "gencrystal-hp-csp-small.ckpt"

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_bf16_mixed_training_runs_and_lowers_the_loss(tmp_path, data_root):
    """A few bf16-mixed Lightning epochs on the GPU: finite losses, checkpoint written, loss goes down."""
    from gencrystal.config import compose
    from gencrystal.model.train import train

    if not (Path(data_root) / "perov_5_dev").is_dir():
        pytest.skip(f"perov_5_dev not under {data_root}")
    cfg = compose("train", ["model=tiny", "trainer=gpu", "trainer.precision=bf16-mixed", f"out={tmp_path / 'run'}",
                            "logger=csv", "trainer.max_epochs=4", "+trainer.limit_train_batches=8", "batch_size=64",
                            f"data_root={data_root}", "data.progress=false", "trainer.enable_progress_bar=false"])
    ckpt = train(cfg)
    assert Path(ckpt).is_file()
    import csv

    rows = list(csv.DictReader(open(next((tmp_path / "run" / "csv").glob("version_*/metrics.csv")))))
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val) == 4 and all(v == v and v < 1e6 for v in val)
    assert min(val[1:]) < val[0]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint absent")
def test_gpu_sampling_is_seeded_and_matches_the_composition():
    from pymatgen.core import Composition

    from gencrystal.sampling import Generator

    gen = Generator(str(SHIPPED), device="cuda", sampler="fast", batch_size=8)
    a = gen.sample("Si2O4", pressure=20, n=4, seed=1)
    b = gen.sample("Si2O4", pressure=20, n=4, seed=1)
    assert len(a) == 4
    for x, y in zip(a, b):
        assert Composition(x.get_chemical_formula()) == Composition("Si2O4")
        assert torch.allclose(torch.tensor(x.cell[:]), torch.tensor(y.cell[:]))
        assert x.get_volume() > 0


def test_chgnet_relaxation_on_gpu_agrees_with_cpu():
    """Batched FIRE with CHGNet on the GPU lands where the CPU one-by-one relaxation does."""
    from ase.build import bulk

    from gencrystal.potentials import load_potential
    from gencrystal.relax import relax_structures

    si = bulk("Si", "diamond", a=5.6, cubic=True)
    si.rattle(0.03, seed=0)
    cpu = relax_structures([si.copy()], 5.0, load_potential("chgnet", device="cpu"), steps=200, progress=False)[0]
    gpu = relax_structures([si.copy(), si.copy()], 5.0, load_potential("chgnet", device="cuda"), batched=True,
                           batch_size=2, steps=200, progress=False)
    for r in gpu:
        assert r.converged
        assert abs(r.enthalpy_per_atom - cpu.enthalpy_per_atom) < 2e-3  # eV/atom
        assert abs(r.volume_per_atom - cpu.volume_per_atom) / cpu.volume_per_atom < 0.01
