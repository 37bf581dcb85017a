"""``gencrystal train``: the command-line face of :func:`gencrystal.model.train.train`."""

from __future__ import annotations

import os

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Train from the composed ``conf/train.yaml``, then print the checkpoint path (rank 0 only)."""
    from gencrystal.model.train import train

    path = train(cfg)
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0:
        print(f"checkpoint: {path}")
    return 0
