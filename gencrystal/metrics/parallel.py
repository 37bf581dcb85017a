"""A process-parallel map with a progress bar, for per-structure featurisation."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from gencrystal.metrics.matching import default_workers


def _call(args):
    func, i, item = args
    return i, func(item)


def parallel_map(func: Callable[[Any], Any], items: Sequence[Any], workers: int = 1, progress: bool = True,
                 desc: str = "") -> list[Any]:
    """``[func(x) for x in items]`` over forked worker processes (``workers`` <= 0: all cores).

    ``func`` must be a module-level function; results keep the order of ``items``.
    """
    from tqdm.auto import tqdm

    n = len(items)
    workers = default_workers() if workers is None or workers <= 0 else int(workers)
    workers = max(1, min(workers, n)) if n else 1
    out: list[Any] = [None] * n
    with tqdm(total=n, desc=desc, disable=not progress) as bar:
        if workers == 1:
            for i, x in enumerate(items):
                out[i] = func(x)
                bar.update(1)
            return out
        import multiprocessing as mp

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        chunksize = max(1, min(16, n // (workers * 8) or 1))
        with mp.get_context("fork").Pool(workers) as pool:
            for i, r in pool.imap_unordered(_call, [(func, i, x) for i, x in enumerate(items)], chunksize=chunksize):
                out[i] = r
                bar.update(1)
    return out
