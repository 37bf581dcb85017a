"""Paths as a user of the repository sees them: relative to the repository, never one machine's.

Reports, model cards and a checkpoint's stored config are committed files; an absolute
path in them names one machine's folders (``/home/alice/gencrystal/runs/...``) and is
useless anywhere else. :func:`relativize` rewrites such paths:

- a temporary folder (``/tmp/<name>/...``) becomes ``<tmp>/...``;
- a path with a repository folder in it (``runs``, ``outputs``, ``checkpoints``, ``data``,
  ``reports``, ``conf``, ``scripts``, ``docs``) keeps the part from that folder on:
  ``/anything/runs/bench_mp20`` -> ``runs/bench_mp20``; a datasets root
  (``.../data/mp_20/test.csv``) becomes ``data/mp_20/test.csv``, which is what a user has
  after ``gencrystal data download mp20`` (a development checkout's ``../shared/data``
  becomes ``data`` too).

:func:`find_absolute_paths` lists what is left (the test over ``reports/``, ``docs/`` and
the shipped checkpoints uses it); ``/path/to/...`` placeholders in docs are allowed.
"""

from __future__ import annotations

import re
from typing import Any

#: Repository folders a committed path may start with.
REPO_FOLDERS = ("runs", "outputs", "checkpoints", "data", "reports", "conf", "scripts", "docs")

_SEG = r"[A-Za-z0-9_.+@-]+"
#: Start of a path token: line start, whitespace, quote, backtick, ``=``, ``(``, ``[``, ``,``.
_START = r"(?:(?<=^)|(?<=[\s\"'`=(\[,]))"
_TMP = re.compile(_START + rf"/(?:tmp|var/tmp|private/var/folders/{_SEG}/{_SEG})/{_SEG}(?=/|\b)")
_REPO = re.compile(_START + rf"(?!/path/to/)(?:/{_SEG})+?/(?P<folder>{'|'.join(REPO_FOLDERS)})(?=[/\s\"'`,)\]:;]|$)", re.M)
_WORKSPACE_DATA = re.compile(_START + r"(?:\.\./)+shared/data(?=[/\s\"'`,)\]]|$)", re.M)
_ABS = re.compile(_START + rf"/(?!path/to/){_SEG}(?:/{_SEG})+", re.M)


def relativize(text: str) -> str:
    """``text`` with machine paths rewritten (see the module doc); other text unchanged."""
    text = _TMP.sub("<tmp>", text)
    text = _WORKSPACE_DATA.sub("data", text)
    return _REPO.sub(lambda m: m.group("folder"), text)


def find_absolute_paths(text: str) -> list[str]:
    """Absolute filesystem paths in ``text`` (``/path/to/...`` placeholders excepted)."""
    return _ABS.findall(text)


def relativize_obj(obj: Any) -> Any:
    """:func:`relativize` applied to every string of a nested dict/list/tuple (a copy)."""
    if isinstance(obj, str):
        return relativize(obj)
    if isinstance(obj, dict):
        return {k: relativize_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relativize_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(relativize_obj(v) for v in obj)
    return obj


def strings_of(obj: Any) -> list[str]:
    """Every string in a nested dict/list/tuple (keys excluded)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings_of(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in strings_of(v)]
    return []
