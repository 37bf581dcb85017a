"""Thread counts of torch and the BLAS/OpenMP pools, set by the program rather than by the shell.

Every ``gencrystal`` command takes ``threads=N`` (default: the cores this process may use,
``os.sched_getaffinity``); the CLI calls :func:`set_threads` before the command runs, and
every ``summary.json`` records :func:`thread_count`. Worker processes of a fan-out
(``cluster.workers > 1``) run with ``cluster.torch_threads`` (1) each, so N workers use
N cores, not N × cores. Relying on ``OMP_NUM_THREADS`` instead made 2 MgSiO3 samples take
134 s on a busy 2-core machine against 1.5 s with 1 thread.
"""

from __future__ import annotations

import os
from typing import Any

_threads: int | None = None
_blas_limits: Any = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | str | None = None) -> int:
    """Set torch's intra-op threads and every BLAS/OpenMP pool (threadpoolctl) to ``threads``.

    ``threads`` is a count or its text (``threads=4`` on the command line); ``None`` means
    :func:`available_cores`. Returns the count set. The limit stays for the
    rest of the process.
    """
    global _threads, _blas_limits
    from gencrystal.limits import MAX_WORKERS, check_count

    n = available_cores() if threads is None else check_count(threads, "threads", 1, MAX_WORKERS)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    _blas_limits = threadpool_limits(limits=n)  # kept: the limits hold until the process ends
    _threads = n
    return n


def thread_count() -> int:
    """The thread count set by :func:`set_threads`, else torch's current one."""
    if _threads is not None:
        return _threads
    import torch

    return int(torch.get_num_threads())


def die_with_parent_preexec() -> Any:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child is SIGKILLed when this process dies.

    Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the forked child (kept across ``exec``, so it
    holds for ``nice python ...`` too); a child whose parent died before the call ends at once.
    Elsewhere it returns ``None`` (no ``preexec_fn``). Without it a benchmark's training
    subprocesses outlive a killed benchmark and race the trainings its re-run starts in the
    same folders.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    parent = os.getpid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
