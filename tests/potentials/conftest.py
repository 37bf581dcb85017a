"""A hand-made shared-trunk committee for the tests of this folder (no training)."""

from __future__ import annotations

import pytest

DELTA = 0.01  # eV/atom added to head 1's site energies


@pytest.fixture(scope="module")
def committee_dir(tmp_path_factory):
    """Three heads on the shipped CHGNet 0.3.0 trunk: head 0 = CHGNet's own readout, head 1 =
    the same plus DELTA eV/atom (last bias), head 2 = CHGNet's readout with its last weights x1.1."""
    import torch

    from gencrystal.learn.finetune import load_base_model
    from gencrystal.potentials.shared_trunk import write_shared_trunk

    d = tmp_path_factory.mktemp("shared")
    model = load_base_model("0.3.0")
    torch.save({"model": model.as_dict()}, d / "trunk.pth.tar")
    base = {k: v.clone() for k, v in model.mlp.state_dict().items()}
    last_w, last_b = sorted(k for k in base if k.endswith("weight"))[-1], sorted(k for k in base if k.endswith("bias"))[-1]
    h1 = {k: v.clone() for k, v in base.items()}
    h1[last_b] = h1[last_b] + DELTA
    h2 = {k: v.clone() for k, v in base.items()}
    h2[last_w] = h2[last_w] * 1.1
    write_shared_trunk(d, d / "trunk.pth.tar", [base, h1, h2], level_of_theory="chgnet-committee-test",
                       coverage={"elements": ["Li", "Si"], "pressure_gpa": [0.0, 100.0]})
    return d


