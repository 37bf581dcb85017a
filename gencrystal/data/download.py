"""Fetching the standard CDVAE/DiffCSP split files into ``<data_root>/<folder>/``.

Each file is streamed into a temporary file beside its target and renamed only when
complete (nothing half-written); files already present are kept, so an interrupted
download resumes with the missing ones. Offline, the first request fails within
``timeout_s`` with one line naming the URL and the target path.
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Sequence

from gencrystal.errors import GencrystalError

log = logging.getLogger("gencrystal.data")


def _check_resolvable(url: str, timeout_s: float) -> None:
    """Resolve the URL's host within ``timeout_s`` (name lookup has no timeout of its own)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(socket.getaddrinfo, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)).result(
            timeout=timeout_s
        )
    except FutureTimeout:
        raise OSError(f"name lookup of {parts.hostname} timed out after {timeout_s:g} s") from None
    finally:
        pool.shutdown(wait=False)


def fetch(url: str, target: str | Path, timeout_s: float = 10.0, progress: bool = True) -> Path:
    """Download ``url`` to ``target`` atomically; raise a one-line :class:`GencrystalError` on failure."""
    from tqdm.auto import tqdm

    from gencrystal.io import atomic_write

    target = Path(target)
    try:
        _check_resolvable(url, timeout_s)
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with (
                atomic_write(target, "wb") as fh,
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress, mininterval=1.0) as bar,
            ):
                while block := resp.read(1 << 20):
                    fh.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise GencrystalError(
            f"cannot download {url} to {target}: {str(reason).splitlines()[0] if str(reason) else type(exc).__name__} "
            f"(offline? place the file there by hand)"
        ) from exc
    return target


def download_dataset(
    base_url: str,
    files: Sequence[str],
    folder: str | Path,
    *,
    timeout_s: float = 10.0,
    force: bool = False,
    progress: bool = True,
    cif_column: str = "cif",
) -> list[Path]:
    """Fetch ``<base_url>/<file>`` for every file into ``folder``; returns the paths now present.

    Existing non-empty files are kept unless ``force``. A downloaded CSV without a
    ``cif_column`` header (an HTML error page, a Git LFS pointer) is removed and reported.
    """
    folder = Path(folder)
    out = []
    for name in files:
        target = folder / name
        if target.is_file() and target.stat().st_size > 0 and not force:
            log.info("%s exists; kept (force=true re-downloads)", target)
            out.append(target)
            continue
        url = f"{base_url.rstrip('/')}/{name}"
        fetch(url, target, timeout_s=timeout_s, progress=progress)
        if target.suffix == ".csv":
            with open(target, errors="replace") as fh:
                header = fh.readline()
            if cif_column not in [h.strip().strip('"') for h in header.split(",")]:
                target.unlink()
                raise GencrystalError(f"{url} is not a dataset CSV (no {cif_column!r} column in its header); removed {target}")
        log.info("downloaded %s -> %s", url, target)
        out.append(target)
    return out
