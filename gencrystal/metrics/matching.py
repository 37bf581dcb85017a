"""Parallel ``StructureMatcher.get_rms_dist`` over many (prediction, reference) pairs.

pymatgen's matcher is the bottleneck of CSP evaluation on thousands of crystals, and it
can hang on pathological cells: pairs are spread over worker processes (fork) with a
progress bar, and each pair gets a wall-clock timeout (``SIGALRM`` inside the worker).
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from typing import TYPE_CHECKING, Sequence

from pymatgen.core import Structure

from gencrystal.matching import make_matcher

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher

# status of one pair
MATCH, NO_MATCH, TIMEOUT, ERROR, SKIPPED = "match", "no_match", "timeout", "error", "skipped"

_WORKER_MATCHER: StructureMatcher | None = None  # set by the pool initializer
_WORKER_TIMEOUT = 0.0


class _PairTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that pymatgen's ``except Exception`` cannot swallow it."""


def _on_alarm(signum, frame):  # pragma: no cover - exercised through timeouts
    raise _PairTimeout()


def _init_worker(kind: str, overrides: dict, timeout: float) -> None:
    global _WORKER_MATCHER, _WORKER_TIMEOUT
    _WORKER_MATCHER = make_matcher(kind, **overrides)
    _WORKER_TIMEOUT = float(timeout or 0.0)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _one(pair: tuple[Structure | None, Structure | None]) -> tuple[float | None, float | None, str]:
    """(normalised RMS, normalised max distance, status) of one pair in this process."""
    pred, ref = pair
    if pred is None or ref is None:
        return None, None, SKIPPED
    use_alarm = _WORKER_TIMEOUT > 0 and threading.current_thread() is threading.main_thread()
    old = None
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        # re-fire every second in case library code swallows the first interruption
        signal.setitimer(signal.ITIMER_REAL, _WORKER_TIMEOUT, 1.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _WORKER_MATCHER is None:
                raise RuntimeError("the matcher of this worker was not initialised")
            res = _WORKER_MATCHER.get_rms_dist(pred, ref)
        if res is None:
            return None, None, NO_MATCH
        return float(res[0]), float(res[1]), MATCH
    except _PairTimeout:
        return None, None, TIMEOUT
    except Exception:  # the originals count a matcher exception as "no match"; we record it
        return None, None, ERROR
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


_STATE = None  # shared per-pair state in workers: 0 queued, 1 running, 2 done


def _init_pool_worker(kind: str, overrides: dict, timeout: float, state) -> None:
    global _STATE
    _init_worker(kind, overrides, timeout)
    _STATE = state


def _one_indexed(args):
    i, pair = args
    if _STATE is not None:
        _STATE[i] = 1
    res = _one(pair)
    if _STATE is not None:
        _STATE[i] = 2
    return i, res


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def rms_distances(
    pairs: Sequence[tuple[Structure | None, Structure | None]],
    matcher: str = "csp",
    matcher_overrides: dict | None = None,
    workers: int = 1,
    timeout_s: float = 30.0,
    progress: bool = True,
    desc: str = "matching",
) -> list[tuple[float | None, float | None, str]]:
    """``get_rms_dist(pred, ref)`` for each ``(pred, ref)`` pair.

    Returns, per pair, ``(rms, max_dist, status)``: the dimensionless RMS displacement
    normalised by ``(V/n)^(1/3)`` and the normalised maximum distance (pymatgen's
    definitions) or ``None``, and ``status`` one of ``match``, ``no_match``, ``timeout``
    (over ``timeout_s`` seconds), ``error`` (pymatgen raised) or ``skipped`` (a structure
    is missing). ``workers`` > 1 fans out over forked processes; ``workers`` <= 0 uses
    every available core. With a ``timeout_s`` the pairs run in forked processes even for
    ``workers`` = 1: SIGALRM cannot interrupt pymatgen's C code (a degenerate sampled lattice
    kept a Niggli reduction in ``find_points_in_spheres`` for over 15 minutes), the pool's
    watchdog can, by killing the worker; only ``timeout_s`` <= 0 matches in this process.
    """
    from tqdm.auto import tqdm

    overrides = dict(matcher_overrides or {})
    n = len(pairs)
    workers = default_workers() if workers is None or workers <= 0 else int(workers)
    workers = max(1, min(workers, n)) if n else 1
    out: list = [None] * n
    bar = tqdm(total=n, desc=desc, disable=not progress, unit="pair")
    if workers == 1 and not (timeout_s and timeout_s > 0):
        global _WORKER_MATCHER, _WORKER_TIMEOUT
        saved = (_WORKER_MATCHER, _WORKER_TIMEOUT)
        _init_worker(matcher, overrides, timeout_s)
        try:
            for i, pair in enumerate(pairs):
                out[i] = _one(pair)
                bar.update(1)
        finally:
            _WORKER_MATCHER, _WORKER_TIMEOUT = saved
            bar.close()
        return out
    try:
        _parallel(pairs, out, matcher, overrides, workers, timeout_s, bar)
    finally:
        bar.close()
    return [r if r is not None else (None, None, ERROR) for r in out]


def _parallel(pairs, out, matcher, overrides, workers, timeout_s, bar) -> None:
    """Fill ``out`` using a forked pool; a worker stuck beyond the SIGALRM timeout (e.g. in a
    long C call) is caught by a watchdog: the pool is killed, the stuck pairs are recorded as
    timeouts and the pairs not yet started go to a fresh pool."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("fork")
    state = ctx.Array("b", len(pairs), lock=False)
    hard = (3.0 * timeout_s + 30.0) if timeout_s and timeout_s > 0 else None
    todo = [i for i in range(len(pairs)) if out[i] is None]
    while todo:
        for i in todo:
            state[i] = 0
        pool = ctx.Pool(min(workers, len(todo)), initializer=_init_pool_worker, initargs=(matcher, overrides, timeout_s, state))
        stuck: list[int] = []
        try:
            it = pool.imap_unordered(_one_indexed, [(i, pairs[i]) for i in todo], chunksize=1)
            remaining = len(todo)
            while remaining:
                try:
                    i, res = it.next(timeout=hard) if hard else it.next()
                except (mp.TimeoutError, queue.Empty):
                    stuck = [i for i in todo if state[i] == 1 and out[i] is None]
                    break
                out[i] = res
                remaining -= 1
                bar.update(1)
        finally:
            pool.terminate()
            pool.join()
        pending = [i for i in todo if out[i] is None]
        if not pending:
            break
        if not stuck:  # the watchdog fired but no pair is marked running: give up on the rest
            stuck = pending
        for i in stuck:
            out[i] = (None, None, TIMEOUT)
            bar.update(1)
        todo = [i for i in pending if out[i] is None]
