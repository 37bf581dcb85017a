"""Errors that reach the user as one clear line and a non-zero exit code."""


class GencrystalError(Exception):
    """A user-facing error: bad input, missing file, unreachable download.

    The CLI prints ``error: <message>`` on one line and exits with code 2.
    Messages must name the offending value (path, element, pressure, ...).
    """

    exit_code = 2
