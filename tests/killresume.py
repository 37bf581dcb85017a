"""Kill-resume helpers: run a command in a child process, SIGKILL it once it has made some
progress, and compare what the resumed run produces with an uninterrupted one.

Also cheap stand-ins the children load by Hydra ``_target_`` (this folder is put on their
``PYTHONPATH``): a slowed-down ASE EMT potential and an EMT "DFT" backend, so that a kill
lands mid-way without a real potential's or GPAW's cost.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ase.calculators.emt import EMT

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


class SlowEMT(EMT):
    """ASE's EMT, ``delay_s`` slower per evaluation (a stand-in for an expensive calculator)."""

    def __init__(self, delay_s: float = 0.02, **kwargs: Any):
        super().__init__(**kwargs)
        self.delay_s = float(delay_s)

    def calculate(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.delay_s)
        super().calculate(*args, **kwargs)


def slow_emt_potential(delay_s: float = 0.02, **_: Any):
    """``_target_`` for ``potential``: a :class:`SlowEMT` Potential (config keys name/path/device ignored)."""
    from gencrystal.potentials import calculator_potential

    return calculator_potential(lambda: SlowEMT(delay_s), "emt")


class EMTBackend:
    """``_target_`` for ``dft``: variable-cell relaxation with :class:`SlowEMT` in place of DFT."""

    name = "emt"
    runs_locally = True
    level_of_theory = "emt"

    def __init__(self, fmax: float = 0.05, steps: int = 30, delay_s: float = 0.05, **_: Any):
        # (the keys of conf/dft/gpaw.yaml that an override leaves in place are ignored)
        self.fmax, self.steps, self.delay_s = float(fmax), int(steps), float(delay_s)

    def relax(self, atoms, pressure_gpa: float, sid: str = ""):
        from gencrystal.relax.ase_relax import relax_one

        return relax_one(atoms, SlowEMT(self.delay_s), pressure_gpa, self.level_of_theory, optimizer="FIRE",
                         fmax=self.fmax, steps=self.steps, sid=sid)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run_cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m gencrystal ARGS`` to completion (one thread); fails on a non-zero exit."""
    proc = subprocess.run([sys.executable, "-m", "gencrystal", *args, "threads=1"], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_script(script: str, args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    """``python scripts/SCRIPT ARGS`` to completion; fails on a non-zero exit."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def sqlite_count(path: Path, table: str = "systems") -> int:
    """Rows of ``table`` in an SQLite file, read-only and closed at once (0 while absent or locked)."""
    import sqlite3

    if not path.is_file():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(stat.parent.name))
    return out


def wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Fail unless every process of group ``pgid`` has ended within ``timeout`` s."""
    t0 = time.time()
    while group_alive(pgid):
        if time.time() - t0 > timeout:
            raise AssertionError(f"processes of the killed job still run: {group_alive(pgid)}")
        time.sleep(0.05)


def kill_when(cmd: list[str], progressed: Callable[[], bool], timeout: float = 600, cwd: Path = REPO,
              parent_only: bool = False) -> None:
    """Start ``cmd`` in a new session, SIGKILL it as soon as ``progressed()`` is true; fail if it ends first.

    The whole process group is killed (Dask workers, training subprocesses, ...), and the
    helper checks that none of it survives. With ``parent_only`` only the command's own process
    is killed (as the OOM killer would) and its children must end by themselves.
    """
    import tempfile

    err = tempfile.TemporaryFile("w+")  # (a pipe nobody reads would block a chatty child)
    proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=err, text=True,
                            start_new_session=True)
    pgid = proc.pid
    t0 = time.time()
    try:
        while not progressed():
            if proc.poll() is not None:
                raise AssertionError(f"finished (rc={proc.returncode}) before it could be killed mid-way: "
                                     f"{_tail(err)}")
            if time.time() - t0 > timeout:
                raise AssertionError("no progress to kill at within the timeout")
            time.sleep(0.05)
        if parent_only:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        wait_group_gone(pgid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err.close()


def _tail(fh, n: int = 2000) -> str:
    fh.seek(0)
    return fh.read()[-n:]


def kill_cli_when(args: list[str], progressed: Callable[[], bool], timeout: float = 600) -> None:
    kill_when([sys.executable, "-m", "gencrystal", *args, "threads=1"], progressed, timeout)


def lines(path: Path) -> int:
    """Complete lines in a text file (0 if absent)."""
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


def differences(a: Any, b: Any, rel: float = 1e-6, abs_: float = 1e-8, skip: tuple[str, ...] = (),
                path: str = "") -> list[str]:
    """Where two JSON-like values differ (floats within tolerance; keys in ``skip`` ignored)."""
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a) - set(skip), set(b) - set(skip)
        out = [f"{path}.{k}: only in one" for k in sorted(ka ^ kb, key=str)]
        for k in sorted(ka & kb, key=str):
            out += differences(a[k], b[k], rel, abs_, skip, f"{path}.{k}")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, rel, abs_, skip, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        if math.isnan(float(a)) and math.isnan(float(b)):
            return []
        return [] if math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
