"""Writing a sampling run: ``samples.extxyz``, ``cif/`` and ``summary.json``, all or nothing.

The run is written into a hidden temporary folder beside ``out`` and renamed into place
only when every file is complete, so an interrupted or failed run leaves no
half-written output folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gencrystal.errors import GencrystalError
from gencrystal.io import write_cifs, write_extxyz, write_json
from gencrystal.sampling.generator import SampleRun


def check_out_dir(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate the output folder *without creating anything*.

    ``out`` must not be an existing file; an existing non-empty folder is an error unless
    ``overwrite`` is true.
    """
    if out is None or str(out).strip() == "":
        raise GencrystalError("out= is required (the output folder)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise GencrystalError(f"out={str(out)!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise GencrystalError(f"out={str(out)!r} exists and is not empty (choose another folder or pass overwrite=true)")
    return path


def sample_names(run: SampleRun) -> list[str]:
    """File stems for the CIFs: ``<sample_index:05d>_<composition>`` (e.g. ``00003_Si2O4``)."""
    return [f"{a.info['sample_index']:05d}_{a.info['composition']}" for a in run.frames]


def summarize(run: SampleRun, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``summary.json``: counts, flags, cost, thread count and the settings of the run."""
    from gencrystal.runtime import thread_count

    requested = sum(r.num_samples for r in run.requests)
    flagged = [
        {"sample_index": a.info["sample_index"], "composition": a.info["composition"], "flags": a.info["flags"].split(",")}
        for a in run.frames
        if a.info.get("flagged")
    ]
    flag_counts: dict[str, int] = {}
    for f in flagged:
        for name in f["flags"]:
            flag_counts[name] = flag_counts.get(name, 0) + 1
    wall = float(run.wall_time_s)
    summary: dict[str, Any] = {
        "requested": requested,
        "written": len(run.frames),
        "flagged": len(flagged),
        "flag_counts": flag_counts,
        "flagged_samples": flagged,
        "nfe": run.nfe_per_sample,
        "network_passes_per_sample": run.nfe_per_sample * run.passes_per_nfe,
        "nfe_total": run.nfe_total,
        "num_batches": run.num_batches,
        "wall_time_s": wall,
        "structures_per_s": (len(run.frames) / wall) if wall > 0 else None,
        "seed": run.seed,
        "threads": thread_count(),
        "requests": [r.to_dict() for r in run.requests],
        "warnings": list(run.warnings),
    }
    if extra:
        summary.update(extra)
    return summary


def write_run(run: SampleRun, out: str | os.PathLike, extra: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write ``out/samples.extxyz``, ``out/cif/*.cif`` and ``out/summary.json`` atomically.

    Returns the summary dict. An existing non-empty ``out`` is replaced only with
    ``overwrite=True`` (and only after the new folder is complete).
    """
    target = check_out_dir(out, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write_extxyz(run.frames, tmp / "samples.extxyz")
        write_cifs(run.frames, tmp / "cif", sample_names(run))
        summary = summarize(run, extra)
        write_json(summary, tmp / "summary.json")
        if target.exists():
            if any(target.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old / "old")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                target.rmdir()
                os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    return summary
