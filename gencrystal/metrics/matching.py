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

import numpy as np
from pymatgen.core import Structure

from gencrystal.matching import make_matcher, reduced_like_matcher

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


class _Alarm:
    """The per-item wall-clock limit (SIGALRM) of this worker, re-fired every second in case
    library code swallows the first interruption; inactive outside the main thread."""

    def __enter__(self):
        self.on = _WORKER_TIMEOUT > 0 and threading.current_thread() is threading.main_thread()
        if self.on:
            self.old = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, _WORKER_TIMEOUT, 1.0)
        return self

    def __exit__(self, *exc):
        if self.on:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
        return False


def _matcher() -> StructureMatcher:
    if _WORKER_MATCHER is None:
        raise RuntimeError("the matcher of this worker was not initialised")
    return _WORKER_MATCHER


def _rms_of_reduced(sm: StructureMatcher, pred: Structure, ref: Structure) -> tuple[float, float] | None:
    """``sm.get_rms_dist`` of two cells already reduced the way it reduces them (pymatgen's own steps
    after the reduction: species copy, volume rescaling, supercell size, match)."""
    s1, s2 = sm._process_species([pred, ref])
    s1, s2, fu, s1_supercell = sm._preprocess(s1, s2, skip_structure_reduction=True)
    match = sm._match(s1, s2, fu, s1_supercell, use_rms=True, break_on_match=False)
    return None if match is None else (float(match[0]), float(np.max(match[1])))


def _one(pair: tuple[Structure | None, Structure | None], prereduced: bool = False) -> tuple[float | None, float | None, str]:
    """(normalised RMS, normalised max distance, status) of one pair in this process; ``prereduced``:
    both cells come from :func:`_reduce_one`."""
    pred, ref = pair
    if pred is None or ref is None:
        return None, None, SKIPPED
    try:
        with _Alarm(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = _matcher()
            res = _rms_of_reduced(sm, pred, ref) if prereduced else sm.get_rms_dist(pred, ref)
        if res is None:
            return None, None, NO_MATCH
        return float(res[0]), float(res[1]), MATCH
    except _PairTimeout:
        return None, None, TIMEOUT
    except Exception:  # the originals count a matcher exception as "no match"; we record it
        return None, None, ERROR


def _reduce_one(structure: Structure) -> tuple[Structure | None, str]:
    """(the cell ``get_rms_dist`` compares, status): pymatgen's Niggli + primitive reduction of this
    matcher, or None with ``timeout``/``error``."""
    try:
        with _Alarm(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reduced_like_matcher(_matcher(), structure), MATCH
    except _PairTimeout:
        return None, TIMEOUT
    except Exception:
        return None, ERROR


_STATE = None  # shared per-pair state in workers: 0 queued, 1 running, 2 done


def _init_pool_worker(kind: str, overrides: dict, timeout: float, state) -> None:
    global _STATE
    _init_worker(kind, overrides, timeout)
    _STATE = state


def _one_indexed(args):
    i, task, item = args
    if _STATE is not None:
        _STATE[i] = 1
    if task == "reduce":
        res = _reduce_one(item)
    elif task == "pair_reduced":
        res = _one(item, prereduced=True)
    else:
        res = _one(item)
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
    reduce_once: bool = False,
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

    ``reduce_once``: for pair lists in which the same structure objects recur (METRe compares
    every prediction with every reference of its composition). Each distinct object is reduced
    once, with the matcher's own Niggli + primitive reduction and the same per-item timeout
    (pymatgen caches 300 reduced cells, so a 400 × 400 comparison reduces both cells of nearly
    every pair again), and without supercell or subset matching a pair whose reduced cells
    differ in site count is ``no_match`` without a call (``get_rms_dist`` returns None for it).
    A pair whose cell could not be reduced gets that reduction's ``timeout`` or ``error``. The
    values are those of ``get_rms_dist``.
    """
    from tqdm.auto import tqdm

    overrides = dict(matcher_overrides or {})
    workers = default_workers() if workers is None or workers <= 0 else int(workers)

    def run(task: str, items: list, label: str, unit: str) -> list:
        bar = tqdm(total=len(items), desc=label, disable=not progress, unit=unit)
        return _run(task, items, matcher, overrides, workers, timeout_s, bar)

    if not reduce_once:
        return run("pair", list(pairs), desc, "pair")
    index: dict[int, int] = {}
    distinct: list[Structure] = []
    for pair in pairs:
        for s in pair:
            if s is not None and id(s) not in index:
                index[id(s)] = len(distinct)
                distinct.append(s)
    reduced = run("reduce", distinct, f"{desc}: reducing", "cell")
    sm = make_matcher(matcher, **overrides)
    same_size_only = not sm._supercell and not sm._subset
    out: list = [None] * len(pairs)
    todo: list[int] = []
    for k, (pred, ref) in enumerate(pairs):
        if pred is None or ref is None:
            out[k] = (None, None, SKIPPED)
            continue
        (rp, sp), (rr, sr) = reduced[index[id(pred)]], reduced[index[id(ref)]]
        if rp is None or rr is None:
            out[k] = (None, None, TIMEOUT if TIMEOUT in (sp, sr) else ERROR)
        elif same_size_only and len(rp) != len(rr):
            out[k] = (None, None, NO_MATCH)
        else:
            todo.append(k)
    items = [(reduced[index[id(pairs[k][0])]][0], reduced[index[id(pairs[k][1])]][0]) for k in todo]
    for k, r in zip(todo, run("pair_reduced", items, desc, "pair")):
        out[k] = r
    return out


def _run(task: str, items: list, matcher: str, overrides: dict, workers: int, timeout_s: float, bar) -> list:
    """``task`` (``pair``, ``pair_reduced`` or ``reduce``, see :func:`_one_indexed`) on every item, in
    this process when ``workers`` is 1 and there is no timeout, else in a forked pool."""
    n = len(items)
    workers = max(1, min(workers, n)) if n else 1
    out: list = [None] * n
    failed, timed_out = ((None, ERROR), (None, TIMEOUT)) if task == "reduce" else ((None, None, ERROR), (None, None, TIMEOUT))
    try:
        if workers == 1 and not (timeout_s and timeout_s > 0):
            global _WORKER_MATCHER, _WORKER_TIMEOUT
            saved = (_WORKER_MATCHER, _WORKER_TIMEOUT)
            _init_worker(matcher, overrides, timeout_s)
            try:
                for i, item in enumerate(items):
                    out[i] = _one_indexed((i, task, item))[1]
                    bar.update(1)
            finally:
                _WORKER_MATCHER, _WORKER_TIMEOUT = saved
            return out
        _parallel(task, items, out, timed_out, matcher, overrides, workers, timeout_s, bar)
    finally:
        bar.close()
    return [r if r is not None else failed for r in out]


def _parallel(task, items, out, timed_out, matcher, overrides, workers, timeout_s, bar) -> None:
    """Fill ``out`` using a forked pool; a worker stuck beyond the SIGALRM timeout (e.g. in a
    long C call) is caught by a watchdog: the pool is killed, the stuck items are recorded as
    timeouts and the items not yet started go to a fresh pool."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("fork")
    state = ctx.Array("b", len(items), lock=False)
    hard = (3.0 * timeout_s + 30.0) if timeout_s and timeout_s > 0 else None
    todo = [i for i in range(len(items)) if out[i] is None]
    while todo:
        for i in todo:
            state[i] = 0
        pool = ctx.Pool(min(workers, len(todo)), initializer=_init_pool_worker, initargs=(matcher, overrides, timeout_s, state))
        stuck: list[int] = []
        try:
            it = pool.imap_unordered(_one_indexed, [(i, task, items[i]) for i in todo], chunksize=1)
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
        if not stuck:  # the watchdog fired but no item is marked running: give up on the rest
            stuck = pending
        for i in stuck:
            out[i] = timed_out
            bar.update(1)
        todo = [i for i in pending if out[i] is None]
