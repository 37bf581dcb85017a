"""Per-step random seeds for training, so that a resumed run draws what an uninterrupted one draws.

The training step's noise (diffusion times, corruptions, condition dropout, dropout layers)
comes from torch's global generator. Its state after thousands of steps is not in a Lightning
checkpoint, so a run resumed from one would draw different noise from the step it resumes at.
:class:`StepSeeds` reseeds the generator before every training batch from ``(seed, global
step, rank)`` alone: the draws of step ``s`` are the same whether the process started at step
0 or resumed at step ``s - 1``, and each DDP rank draws its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed that is a function of ``(seed, step, rank)`` only (numpy ``SeedSequence``)."""
    state = np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


class StepSeeds(pl.Callback):
    """Reseeds torch's global generator before each training batch (``conf/callbacks``).

    Args:
        seed: the run's seed (``seed`` of ``conf/train.yaml``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_step, trainer.global_rank))
