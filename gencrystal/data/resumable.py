"""A training loader that a killed run resumes at the batch where it stopped.

Lightning restores the step counters of a run resumed from a mid-epoch checkpoint but, with a
plain ``DataLoader``, starts the epoch's data again from a fresh shuffle. Two parts make the
resumed run see the same batches as an uninterrupted one:

- :class:`EpochShuffle` draws each epoch's order from ``(seed, epoch)`` alone (not from the
  global random state, which differs between a resumed and an uninterrupted process);
- :class:`ResumableLoader` counts the batches it has handed out in the current epoch and
  reports them through ``state_dict`` (Lightning stores it in the checkpoint under the fit
  loop's ``combined_loader`` and gives it back before the resumed epoch starts); the first
  epoch iterated after ``load_state_dict`` skips that many batches when it is the same epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler
from torch_geometric.loader import DataLoader


class EpochShuffle(Sampler[int]):
    """A random permutation of ``range(n)`` per epoch, a function of ``(seed, epoch)`` only.

    Lightning calls :meth:`set_epoch` before each epoch; the order is drawn when iteration
    starts, so an epoch set after ``iter()`` (as Lightning does for the first epoch of a fit) is
    still the one used.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(self.n, generator=generator).tolist()


class ResumableLoader(DataLoader):
    """A torch-geometric ``DataLoader`` whose position in the epoch survives a checkpoint.

    ``state_dict()`` is ``{"epoch": e, "batches": k}``: ``k`` batches of epoch ``e`` were handed
    to the training loop. After ``load_state_dict`` the next iteration of epoch ``e`` starts at
    batch ``k`` (the skipped batches are drawn and discarded, so workers and sampler stay in
    step); an iteration of any other epoch starts at batch 0.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handed_out = 0
        self._resume: dict[str, int] | None = None

    def _epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        # a generator: the body (and so the epoch read) runs at the first next(), after set_epoch
        epoch = self._epoch()
        skip = 0
        if self._resume is not None:
            if self._resume["epoch"] == epoch:
                skip = self._resume["batches"]
            self._resume = None
        self._handed_out = skip
        iterator = super().__iter__()
        for _ in range(skip):
            next(iterator, None)
        for batch in iterator:
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch(), "batches": self._handed_out}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = {"epoch": int(state_dict["epoch"]), "batches": int(state_dict["batches"])}
