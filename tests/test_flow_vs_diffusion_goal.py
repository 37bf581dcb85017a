"""The flow-vs-diffusion report's goal line (scripts/bench_flow_vs_diffusion.py: goal_lines): an RMSE
over zero matches is undefined, so it can neither win nor lose the RMSE half of the goal."""

from __future__ import annotations

import math

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_flow_vs_diffusion")


def _res(fast: tuple[float, float], flow: tuple[float, float]) -> dict:
    row = lambda label, nfe, mr_rmse: {"label": label, "nfe": nfe, "match_rate": mr_rmse[0], "rmse": mr_rmse[1]}  # noqa: E731
    return {"datasets": {"perov5": {"main": [row("diffusion fast", 200, fast), row("flow euler 10", 10, flow)]}}}


@pytest.mark.parametrize(
    ("fast", "flow", "verdict"),
    [
        ((0.09, 0.40), (0.20, 0.39), "**met**"),
        ((0.09, 0.39), (0.20, 0.40), "**NOT met**"),  # more matches, higher RMSE: both are asked for
        ((0.20, 0.40), (0.10, 0.30), "**NOT met**"),
        ((0.00, math.nan), (0.05, 0.39), "**not shown"),  # diffusion matched nothing: RMSE undecidable
        ((0.05, 0.39), (0.00, math.nan), "**NOT met**"),
    ],
)
def test_goal_verdict(bench, fast, flow, verdict):
    (line,) = bench.goal_lines(_res(fast, flow))
    assert verdict in line
    if math.isnan(fast[1]) or math.isnan(flow[1]):
        assert "not comparable" in line and "matched nothing" in line
