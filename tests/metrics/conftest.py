"""Fixtures for the metric tests: a slice of the MP-20 test set, parsed once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mp20_test_csv(data_root):
    return data_root / "mp_20" / "test.csv"


@pytest.fixture(scope="session")
def mp20_slice(mp20_test_csv):
    """The first 200 MP-20 test crystals as metric entries."""
    from gencrystal.metrics.io import read_entries

    return read_entries(mp20_test_csv, limit=200)
