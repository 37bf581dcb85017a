"""Errors that reach the user as one clear line and a non-zero exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn


class GencrystalError(Exception):
    """A user-facing error: bad input, missing file, unreachable download.

    The CLI prints ``error: <message>`` on one line and exits with code 2.
    Messages must name the offending value (path, element, pressure, ...).
    """

    exit_code = 2


def system_error_message(exc: BaseException, db_paths: list[str] | None = None) -> str:
    """One line for an operating-system or database error, naming the path.

    Used by the CLI's single handler: an ``out=`` that is an existing file, an unwritable
    folder, a full disk, a missing permission (``OSError``), and a database locked by
    another writer (``sqlite3.OperationalError``, which carries no path: ``db_paths`` are
    the database locations of the command's configuration).
    """
    import errno as _errno
    import os
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        where = f" ({', '.join(repr(p) for p in db_paths)})" if db_paths else ""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "locked" in text or "busy" in text:
            return f"database{where} is locked by another writer; wait for it to finish or use another db= ({text})"
        return f"database error{where}: {text}"
    if not isinstance(exc, OSError):
        return str(exc)
    path = exc.filename if exc.filename is not None else None
    what = exc.strerror or (os.strerror(exc.errno) if exc.errno else type(exc).__name__)
    named = f"{str(path)!r}" if path is not None else "(path unknown)"
    hints = {
        _errno.EEXIST: "exists and is not a folder (choose another out=)",
        _errno.ENOTDIR: "has a part that is a file, not a folder",
        _errno.EISDIR: "is a folder where a file was expected",
        _errno.EACCES: "permission denied",
        _errno.EPERM: "operation not permitted",
        _errno.EROFS: "is on a read-only file system",
        _errno.ENOSPC: "no space left on the device (nothing was half-written; free space and re-run)",
        _errno.EDQUOT: "disk quota exceeded (nothing was half-written)",
        _errno.ENOENT: "does not exist",
    }
    hint = hints.get(exc.errno or -1, what[:1].lower() + what[1:] if what else "")
    if exc.errno == _errno.EEXIST and path is not None and os.path.isdir(str(path)):
        hint = "already exists"
    return f"{named}: {hint}"


def run_script(main: Callable[[], int | None]) -> NoReturn:
    """Run a script's ``main()`` and exit with its return code (None: 0).

    A :class:`GencrystalError` ends the script as it ends a CLI command: ``error: <message>``
    on one line of stderr and exit code 2, no traceback. Other exceptions propagate.
    """
    import sys

    try:
        code = main()
    except GencrystalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code or 0)
