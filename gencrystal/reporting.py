"""Provenance for benchmark reports: command, commit, hardware, software versions.

Every ``scripts/bench_*.py`` writes ``reports/<name>.json`` and ``reports/<name>.md``
through :func:`write_report`, which stamps them with :func:`run_metadata`.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORTS_DIR = REPO_ROOT / "reports"


def git_commit() -> str:
    """The current commit hash, with ``+dirty`` when the tree has uncommitted changes outside
    ``reports/`` (a benchmark rewrites its own report files, its plot first, before it takes
    this: those are not a change to the code that made the numbers)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def hardware() -> dict[str, Any]:
    """CPU model, core count, memory and GPU (if torch sees one)."""
    info: dict[str, Any] = {"machine": platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


def run_metadata() -> dict[str, Any]:
    """What made a result: command line, commit, date (UTC), hardware, Python."""
    return {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]),
        "commit": git_commit(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hardware": hardware(),
        "python": platform.python_version(),
    }


def metadata_markdown(meta: dict[str, Any]) -> str:
    """A markdown block with the provenance of a report."""
    hw = meta.get("hardware", {})
    hw_text = ", ".join(f"{k}: {v}" for k, v in hw.items())
    return (
        f"- command: `{meta.get('command')}`\n"
        f"- commit: `{meta.get('commit')}`\n"
        f"- date (UTC): {meta.get('date_utc')}\n"
        f"- hardware: {hw_text}\n"
    )


def write_report(name: str, results: dict[str, Any], markdown_body: str, reports_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``reports/<name>.json`` (results + metadata) and ``reports/<name>.md``.

    Machine paths in both are rewritten to repository-relative ones
    (:func:`gencrystal.paths.relativize`): a committed report names no machine's folders.
    """
    from gencrystal.io import atomic_write, write_json
    from gencrystal.paths import relativize, relativize_obj

    out = Path(reports_dir or REPORTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    meta = results.get("metadata") or run_metadata()
    results = relativize_obj({**results, "metadata": meta})
    jpath, mpath = out / f"{name}.json", out / f"{name}.md"
    write_json(results, jpath)
    with atomic_write(mpath) as fh:
        fh.write(relativize(markdown_body.rstrip() + "\n\n## Provenance\n\n" + metadata_markdown(results["metadata"])))
    return jpath, mpath
