"""Where datasets live: the data root (light module, no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def resolve_data_root(data_root: str | os.PathLike | None = None, data_cfg: Mapping | None = None) -> Path:
    """``data_root`` > ``data_cfg['root']`` > ``$GENCRYSTAL_DATA`` > ``data/``, as an absolute path
    (relative paths are taken from the current directory)."""
    root = data_root
    if root in (None, "") and data_cfg is not None:
        root = dict(data_cfg).get("root")
    if root in (None, ""):
        root = os.environ.get("GENCRYSTAL_DATA") or "data"
    return Path(str(root)).expanduser().resolve()
