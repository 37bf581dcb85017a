"""run_tasks: in-process and Dask fan-out keep order and record per-task failures."""

from __future__ import annotations

import operator

import pytest

from gencrystal.relax.engine import FanOut, run_tasks


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
