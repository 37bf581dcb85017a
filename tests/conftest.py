"""Shared test fixtures.

Benchmark data is read from ``$GENCRYSTAL_DATA`` or ``../shared/data`` (never committed);
tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def shared_data_root() -> Path:
    """The benchmark data root used by tests."""
    return Path(os.environ.get("GENCRYSTAL_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Root of the shared benchmark data (mp_20/, perov_5/, ...); skips when absent."""
    root = shared_data_root()
    if not (root / "mp_20").is_dir():
        pytest.skip(f"benchmark data not found at {root} (set GENCRYSTAL_DATA or place ../shared/data)")
    return root
