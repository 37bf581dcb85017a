"""The one fan-out mechanism: Dask (a ``LocalCluster`` of single-threaded processes, or an
existing scheduler) with a serial, in-process fallback.

Relaxations (:func:`gencrystal.relax.relax_structures`), DFT jobs, featurisation and CIF
parsing all run through it; ``conf/cluster/*.yaml`` configures it (:class:`FanOut`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gencrystal.errors import GencrystalError


@dataclass
class FanOut:
    """Where tasks run (``conf/cluster/*.yaml``).

    Attributes:
        workers: 0 or 1 run in this process; N > 1 starts a Dask ``LocalCluster`` of N
            single-threaded worker processes.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``, e.g. from
            dask-jobqueue on SLURM); overrides ``workers``.
        chunk_size: items per Dask task (None: 1; batched relaxation: up to ``batch_size``).
        torch_threads: torch/BLAS threads per process.
    """

    workers: int = 1
    scheduler: str | None = None
    chunk_size: int | None = None
    torch_threads: int = 1

    @property
    def distributed(self) -> bool:
        """True when tasks go to Dask workers rather than run in this process."""
        return self.scheduler is not None or int(self.workers) > 1


@contextlib.contextmanager
def single_threaded(torch_threads: int = 1) -> Iterator[None]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and torch to ``torch_threads`` threads.

    On 2 shared cores, the cell filter's BLAS threads fighting torch's made
    relaxations 2–5× slower.
    """
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(torch_threads)))
    try:
        with threadpool_limits(limits=max(1, int(torch_threads))):
            yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, label: str) -> Iterator[Callable[[int], Any] | None]:
    """A tqdm bar's ``update`` (None when disabled)."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=label, unit="task", leave=False) as bar:
        yield bar.update


@contextlib.contextmanager
def dask_client(fan: FanOut) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on ``fan.scheduler`` or on a fresh ``LocalCluster`` of
    ``fan.workers`` single-threaded processes (closed on exit).

    Raises:
        GencrystalError: the cluster cannot be started or reached.
    """
    from dask.distributed import Client, LocalCluster

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cluster = None
    try:
        if fan.scheduler:
            client = Client(fan.scheduler, timeout="20s")
        else:
            cluster = LocalCluster(n_workers=int(fan.workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
    except Exception as exc:
        where = fan.scheduler or f"LocalCluster x{fan.workers}"
        raise GencrystalError(f"cannot start/reach the Dask cluster ({where}): {exc}") from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_chunk(fn: Callable, chunk: Sequence[tuple], torch_threads: int) -> list[tuple[bool, Any]]:
    """Run ``fn(*args)`` for each args of a chunk in this process: ``[(ok, result or exception)]``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    out: list[tuple[bool, Any]] = []
    with single_threaded(torch_threads):
        for args in chunk:
            try:
                out.append((True, fn(*args)))
            except Exception as exc:  # handed to on_error (or re-raised) by the caller
                out.append((False, exc))
    return out


def run_tasks(fn: Callable, args_list: Sequence[tuple], fan: FanOut | None = None, *, label: str = "tasks",
              progress: bool = True, on_result: Callable[[int, Any], None] | None = None,
              on_error: Callable[[int, BaseException], Any] | None = None) -> list:
    """Run ``fn(*args)`` for every ``args``, in this process or over Dask (``fan``); results in order.

    ``fn`` must be importable (module level) for Dask. ``fan.chunk_size`` items go to one
    Dask task (default 1: tasks of very different length balance best). A call that
    raises gets ``on_error(i, exc)`` as its result (re-raised when ``on_error`` is None);
    ``on_result(i, result)`` is called as each result arrives (e.g. to checkpoint).
    """
    fan = fan or FanOut()
    n = len(args_list)
    results: list = [None] * n
    size = max(1, int(fan.chunk_size or 1))
    chunks = [(lo, min(lo + size, n)) for lo in range(0, n, size)]

    def take(lo: int, outcome: list[tuple[bool, Any]], bar) -> None:
        for j, (ok, value) in enumerate(outcome):
            i = lo + j
            if not ok:
                if on_error is None:
                    raise value
                value = on_error(i, value)
            results[i] = value
            if on_result is not None:
                on_result(i, value)
        if bar:
            bar(len(outcome))

    with progress_bar(n, progress, label) as bar:
        if not fan.distributed or n == 0:
            for lo, hi in chunks:
                take(lo, _run_chunk(fn, args_list[lo:hi], fan.torch_threads), bar)
            return results
        from dask.distributed import as_completed

        with dask_client(fan) as client:
            futures = {client.submit(_run_chunk, fn, list(args_list[lo:hi]), fan.torch_threads, pure=False): (lo, hi)
                       for lo, hi in chunks}
            for fut in as_completed(list(futures)):
                lo, hi = futures[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # the worker died: every item of its chunk failed with it
                    outcome = [(False, exc)] * (hi - lo)
                take(lo, outcome, bar)
    return results


def parallel_map(func: Callable[[Any], Any], items: Sequence[Any], workers: int = 1, progress: bool = True,
                 desc: str = "", chunk_size: int | None = None) -> list[Any]:
    """``[func(x) for x in items]`` through :func:`run_tasks` (``workers`` <= 0: all cores).

    ``func`` must be a module-level function; results keep the order of ``items``. Items
    go to Dask in chunks (default: about 8 chunks per worker, at most 64 items each) so that
    many cheap calls do not pay one task each.
    """
    n = len(items)
    if workers is None or int(workers) <= 0:
        workers = available_cores()
    workers = max(1, min(int(workers), n)) if n else 1
    size = chunk_size or max(1, min(64, -(-n // (workers * 8))))
    return run_tasks(func, [(x,) for x in items], FanOut(workers=workers, chunk_size=size), label=desc,
                     progress=progress)


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)
