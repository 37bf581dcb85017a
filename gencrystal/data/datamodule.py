"""The Lightning data module over a data config (``conf/data/<name>.yaml``)."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
from torch_geometric.loader import DataLoader

from gencrystal.data.dataset import CrystalDataset, load_split
from gencrystal.data.resumable import EpochShuffle, ResumableLoader
from gencrystal.data.stats import DatasetStats


class CrystalDataModule(pl.LightningDataModule):
    """Train/val/test loaders of torch-geometric batches for one dataset.

    Args:
        data_cfg: the composed ``data`` config node (DictConfig or dict).
        batch_size: structures per training batch.
        num_workers: DataLoader worker processes (0 = main process).
        data_root: overrides the config's data root (else ``$GENCRYSTAL_DATA`` or ``data/``).
        eval_batch_size: batch size of val/test loaders (default ``batch_size``).
        pin_memory: passed to the DataLoaders.
        seed: the training order's seed: epoch ``e`` is shuffled from ``(seed, e)`` alone, and the
            training loader resumes mid-epoch from a checkpoint (:mod:`gencrystal.data.resumable`).

    ``.stats`` is the :class:`DatasetStats` of the training split (loading it if needed);
    ``.datasets`` holds the loaded :class:`CrystalDataset` per split.
    """

    def __init__(
        self,
        data_cfg: Any,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str | os.PathLike | None = None,
        eval_batch_size: int | None = None,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_cfg = data_cfg
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.data_root = data_root
        self.pin_memory = pin_memory
        self.seed = int(seed)
        self.datasets: dict[str, CrystalDataset] = {}

    def dataset(self, split: str) -> CrystalDataset:
        """The loaded split (``train``/``val``/``test``), loading it once."""
        if split not in self.datasets:
            self.datasets[split] = load_split(self.data_cfg, split, data_root=self.data_root)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Load the splits a Lightning stage needs (fit: train+val, validate: val, test: test)."""
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage or "", ("train", "val", "test")):
            self.dataset(split)

    @property
    def stats(self) -> DatasetStats:
        """Statistics of the training split."""
        return self.dataset("train").stats

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        return ResumableLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(ds), self.seed),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Training statistics travel with Lightning checkpoints."""
        return {"train_stats": self.stats.to_dict()} if "train" in self.datasets else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.checkpoint_stats = DatasetStats.from_dict(state_dict["train_stats"]) if "train_stats" in state_dict else None
