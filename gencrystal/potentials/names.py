"""Potentials by name or checkpoint path (the Python shortcut to ``conf/potential/*.yaml``).

``load_potential("chgnet")``, ``load_potential("sevenn", device="cpu")``,
``load_potential("ft.pth.tar")`` (the family read from the checkpoint's keys) and
:func:`as_potential` (anything a command or a script may hand over) all end in the
factory a ``conf/potential/*.yaml`` names, so the result is the same cached,
config-picklable :class:`~gencrystal.potentials.Potential`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gencrystal.errors import GencrystalError
from gencrystal.potentials import chgnet, sevenn
from gencrystal.potentials.base import Potential, build_potential, first_line

#: Names accepted by :func:`load_potential` (case-insensitive).
KNOWN_NAMES = sorted(set(chgnet.NAMES) | set(sevenn.NAMES))
_CHECKPOINT_SUFFIXES = (".pth", ".tar", ".pt", ".ckpt")


def check_checkpoint(path: str | os.PathLike) -> str:
    """The absolute path of an existing checkpoint file.

    Raises:
        GencrystalError: missing file, or a directory (a committee is ``potential=committee``).
    """
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        raise GencrystalError(f"potential checkpoint {str(path)!r} is a directory; a committee written by "
                              "`gencrystal learn` is potential=committee potential.path=DIR")
    if not p.is_file():
        raise GencrystalError(f"potential checkpoint {str(path)!r} does not exist")
    return str(p)


def checkpoint_family(path: str) -> str:
    """``chgnet`` or ``sevenn``, told apart by the checkpoint's stored keys."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise GencrystalError(f"cannot read potential checkpoint {path!r}: {first_line(exc)}") from exc
    if chgnet.is_checkpoint(state):
        return "chgnet"
    if sevenn.is_checkpoint(state):
        return "sevenn"
    raise GencrystalError(f"potential checkpoint {path!r} is neither a CHGNet nor a SevenNet checkpoint")


def load_potential(name: str | os.PathLike = "chgnet", path: str | os.PathLike | None = None,
                   device: str | None = "auto", modal: str | None = None) -> Potential:
    """Load (once per process) a built-in potential by name or a fine-tuned one by checkpoint path.

    Args:
        name: ``chgnet`` (CHGNet 0.3.0), ``chgnet-r2scan``, ``sevenn`` (SevenNet-0),
            ``sevenn-l3i5``, or the path of a CHGNet / SevenNet checkpoint.
        path: checkpoint of a fine-tuned model of the family ``name`` names.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``.
        modal: SevenNet multi-fidelity modal, when the checkpoint has several.

    Raises:
        GencrystalError: unknown name, missing or unreadable checkpoint.
    """
    name = os.fspath(name)
    if path is None and (os.sep in name or Path(name).suffix in _CHECKPOINT_SUFFIXES or Path(name).is_dir()):
        path = check_checkpoint(name)
        name = checkpoint_family(path)
    key = name.lower()
    if key in chgnet.NAMES:
        return chgnet.load_chgnet(name=key, path=None if path is None else os.fspath(path), device=device)
    if key in sevenn.NAMES:
        return sevenn.load_sevenn(name=key, path=None if path is None else os.fspath(path), device=device, modal=modal)
    raise GencrystalError(f"unknown potential {name!r}; choose one of {', '.join(KNOWN_NAMES)} or a checkpoint path")


def as_potential(potential: Any, device: str | None = "auto") -> Potential:
    """A :class:`Potential` from a loaded one (returned as is), a ``conf/potential`` node
    (``_target_``), a name or checkpoint path, or a ``{name, path, device, modal}`` mapping."""
    if isinstance(potential, Potential):
        return potential
    if isinstance(potential, (str, os.PathLike)):
        return load_potential(potential, device=device)
    if hasattr(potential, "get"):  # dict or DictConfig
        if potential.get("_target_"):
            return build_potential(potential)
        if potential.get("name"):
            return load_potential(potential.get("name"), path=potential.get("path"),
                                  device=potential.get("device", device), modal=potential.get("modal"))
        raise GencrystalError("potential config needs a _target_ (conf/potential/*.yaml) or a name (chgnet, sevenn)")
    raise GencrystalError(f"potential={potential!r} is not a name, a checkpoint path, a config or a Potential")
