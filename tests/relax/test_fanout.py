"""run_tasks: in-process and Dask fan-out keep order and record per-task failures."""

from __future__ import annotations

import operator

import pytest

from gencrystal.fanout import FanOut, run_tasks


def _check(fan):
    seen = []
    res = run_tasks(operator.truediv, [(1, 2), (1, 0), (9, 3)], fan, progress=False,
                    on_result=lambda i, r: seen.append(i), on_error=lambda i, exc: f"failed {type(exc).__name__}")
    assert res == [0.5, "failed ZeroDivisionError", 3.0]
    assert sorted(seen) == [0, 1, 2]


def test_run_tasks_in_process():
    _check(FanOut(workers=1))
    with pytest.raises(ZeroDivisionError):
        run_tasks(operator.truediv, [(1, 0)], FanOut(workers=0), progress=False)


@pytest.mark.slow
def test_run_tasks_over_a_local_dask_cluster():
    _check(FanOut(workers=2))


def test_chunked_tasks_keep_order_and_per_item_failures_in_process():
    from gencrystal.fanout import parallel_map

    _check(FanOut(workers=1, chunk_size=2))
    assert parallel_map(abs, [-3, 2, -1, 0, -7], workers=1, progress=False, chunk_size=2) == [3, 2, 1, 0, 7]


@pytest.mark.slow
def test_parallel_map_over_dask_equals_the_serial_map():
    from gencrystal.fanout import parallel_map

    items = list(range(-40, 40))
    assert parallel_map(abs, items, workers=2, progress=False) == [abs(x) for x in items]
    _check(FanOut(workers=2, chunk_size=2))
