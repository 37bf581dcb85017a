"""The resumable training loader: per-epoch order from (seed, epoch), a mid-epoch restart at the
batch where the checkpoint was taken, no skip in another epoch."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from gencrystal.data.resumable import EpochShuffle, ResumableLoader


def _loader(seed=3, n=10, batch_size=3):
    items = [Data(x=torch.tensor([[float(i)]])) for i in range(n)]
    return ResumableLoader(items, batch_size=batch_size, sampler=EpochShuffle(n, seed))


def _ids(batches):
    return [b.x.flatten().long().tolist() for b in batches]


def test_epoch_order_is_a_function_of_seed_and_epoch_only():
    a, b = EpochShuffle(10, 3), EpochShuffle(10, 3)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)  # the global generator plays no part
    assert list(b) == first and sorted(first) == list(range(10))
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(10))
    assert list(EpochShuffle(10, 4)) != first


def test_restart_mid_epoch_continues_at_the_next_batch():
    straight = _loader()
    straight.sampler.set_epoch(2)
    whole = _ids(straight)
    assert len(whole) == 4  # 3 + 3 + 3 + 1

    killed = _loader()
    killed.sampler.set_epoch(2)
    it = iter(killed)
    seen = [next(it), next(it)]
    state = killed.state_dict()
    assert state == {"epoch": 2, "batches": 2} and _ids(seen) == whole[:2]

    resumed = _loader()
    resumed.load_state_dict(state)
    it = iter(resumed)
    resumed.sampler.set_epoch(2)  # Lightning sets the epoch after iter() on the first epoch of a fit
    assert _ids(it) == whole[2:]
    assert resumed.state_dict() == {"epoch": 2, "batches": 4}
    assert _ids(resumed) == whole  # the skip applies once


def test_a_state_of_another_epoch_skips_nothing():
    ref = _loader()
    ref.sampler.set_epoch(3)
    resumed = _loader()
    resumed.load_state_dict({"epoch": 2, "batches": 4})  # taken at the end of epoch 2
    resumed.sampler.set_epoch(3)
    assert _ids(resumed) == _ids(ref)
