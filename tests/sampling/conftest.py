"""Fixtures for the sampling tests.

``fake_module``: a stand-in with the CrystalDiffusionModule sampling interface, used
only for the unit tests of request handling, batching, seeding, flagging and writing
(it draws random cells with torch's generator, so it has real randomness to seed).
``tiny_ckpt``: a real checkpoint trained for a few steps inside the test session.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gencrystal.data.stats import DatasetStats
from gencrystal.sampling.generator import describe_sampler


class FakeModule:
    """Random cells with the model's output layout; records every call."""

    def __init__(self, csp: bool = True, max_atoms: int = 20, pressure_range=(0.0, 100.0), volume_per_atom: float = 12.0):
        self.csp = csp
        self.max_atoms = max_atoms
        self.pressure_range = pressure_range
        self.volume_per_atom = volume_per_atom
        self.data_stats = DatasetStats(num_atoms_hist={2: 3, 4: 1, 40: 5}, max_atoms=40,
                                       element_counts={z: 10 for z in range(1, 60)})  # H..Nd seen in training
        self.calls: list[dict] = []
        self.honour_allowed = True
        self.memory_atoms = 10**9  # atoms per batch before a simulated out-of-memory error

    def to(self, device):
        return self

    def eval(self):
        return self

    def sample(self, num_atoms, atom_types, conditions, sampler="fast", guidance_scale=1.0, generator=None, progress=False):
        self.calls.append({"num_atoms": num_atoms.tolist(), "atom_types": None if atom_types is None else atom_types.tolist(),
                           "conditions": {k: v.clone() for k, v in conditions.items()}, "sampler": sampler,
                           "guidance_scale": guidance_scale, "progress": progress})
        n = int(num_atoms.sum())
        if n > self.memory_atoms:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        frac = torch.rand(n, 3, generator=generator)
        a = torch.tensor([(self.volume_per_atom * int(k)) ** (1 / 3) for k in num_atoms.tolist()])
        lattice = torch.diag_embed(a[:, None].expand(-1, 3)) * (1 + 0.05 * torch.rand(len(a), 3, 3, generator=generator))
        conditions = dict(conditions)
        allowed = conditions.pop("allowed_elements", None)
        if atom_types is None or not self.csp:  # a de-novo model ignores given types
            atom_types = torch.randint(3, 6, (n,), generator=generator)  # Li, Be, B
            if allowed is not None and self.honour_allowed:
                rows = torch.repeat_interleave(torch.arange(len(num_atoms)), num_atoms)
                choices = [torch.nonzero(allowed[r]).flatten() + 1 for r in rows.tolist()]
                atom_types = torch.stack([c[torch.randint(len(c), (1,), generator=generator)[0]] for c in choices])
        return {"frac_coords": frac, "lattice": lattice, "atom_types": atom_types.clone(), "num_atoms": num_atoms.clone(),
                "nfe": 10 if describe_sampler(sampler) == "fast" else 100}


@pytest.fixture
def fake_module():
    return FakeModule()


@pytest.fixture
def fake_ckpt(tmp_path, monkeypatch):
    """A checkpoint path whose loading is replaced by the fake module (CLI unit tests)."""
    import gencrystal.sampling.generator as g

    module = FakeModule()
    path = tmp_path / "fake.ckpt"
    path.write_bytes(b"fake")

    def _load(ckpt, device):
        if str(ckpt) != str(path):
            return _real(ckpt, device)
        return module

    _real = g.load_module
    monkeypatch.setattr(g, "load_module", _load)
    return SimpleNamespace(path=path, module=module)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A real CSP checkpoint: the tiny model trained for 30 steps on the toy database
    (textbook crystals at 0-100 GPa, at most 16 atoms per cell; no downloaded data)."""
    from tests.toy_model import train_toy_checkpoint

    torch.set_num_threads(1)
    return train_toy_checkpoint(tmp_path_factory.mktemp("tiny_model"), max_steps=30)


@pytest.fixture(scope="session")
def tiny_dng_ckpt(tmp_path_factory):
    """A real de-novo checkpoint (atom types diffuse): the tiny model, 30 steps, toy database."""
    from tests.toy_model import train_toy_checkpoint

    torch.set_num_threads(1)
    return train_toy_checkpoint(tmp_path_factory.mktemp("tiny_dng"), max_steps=30, extra_overrides=("diffusion=dng",))
