"""Reading and writing structures: CIF files or folders, extxyz/traj files, ASE databases.

Every command that takes ``input=``/``pred=``/``ref=`` reads through
:func:`read_structures`; every command that writes files writes through
:func:`atomic_write` / :func:`write_extxyz`, so that a failed run leaves nothing
half-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Sequence

from ase import Atoms

from gencrystal.checks import require_finite_atoms
from gencrystal.errors import GencrystalError

STRUCTURE_SUFFIXES = (".cif", ".extxyz", ".xyz", ".traj", ".vasp", ".db")


def is_db_url(path: str | os.PathLike) -> bool:
    """True for an ASE-db location: a ``.db`` file or a ``postgresql://`` URL."""
    s = str(path)
    return s.startswith(("postgresql://", "postgres://")) or s.endswith(".db")


def read_structures(path: str | os.PathLike, selection: str | None = None) -> list[tuple[str, Atoms]]:
    """Read structures as ``(id, Atoms)`` pairs from a file, folder or ASE database.

    - a ``.cif`` file (every block), a folder of ``*.cif``/``*.vasp``/``*.extxyz`` files,
    - an ``.extxyz``/``.xyz``/``.traj`` file (every frame),
    - an ASE db (``.db`` SQLite file or PostgreSQL URL), optionally with an ASE
      ``selection`` query (e.g. ``"pressure_gpa=50"``).

    Ids are file stems (with a frame index when a file holds several), the ``id`` info
    key when present, or ``db-<row id>``. Raises :class:`GencrystalError` for a missing
    path, an unreadable file, a file with zero frames, a structure with a NaN/Inf cell or
    position (file and index named) or an empty result.
    """
    p = str(path)
    if is_db_url(p):
        out = _read_db(p, selection)
    else:
        fp = Path(p)
        if not fp.exists():
            raise GencrystalError(f"input {p!r} does not exist")
        if fp.is_dir():
            files = sorted(f for f in fp.iterdir() if f.suffix.lower() in (".cif", ".vasp", ".extxyz", ".xyz"))
            if not files:
                raise GencrystalError(f"input folder {p!r} holds no .cif/.vasp/.extxyz files")
            out = []
            for f in files:
                out.extend(_read_file(f))
        else:
            out = _read_file(fp)
    if not out:
        raise GencrystalError(f"input {p!r} holds no structures")
    return out


def _read_file(fp: Path) -> list[tuple[str, Atoms]]:
    from ase.io import read

    suffix = fp.suffix.lower()
    fmt = {".cif": "cif", ".extxyz": "extxyz", ".xyz": "extxyz", ".traj": "traj", ".vasp": "vasp"}.get(suffix)
    if fmt is None:
        raise GencrystalError(f"unsupported structure file {str(fp)!r} (use .cif, .extxyz, .traj, .vasp or an ASE .db)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = read(str(fp), index=":", format=fmt)
    except Exception as exc:  # ASE raises many types for malformed files
        raise GencrystalError(f"cannot read {str(fp)!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise GencrystalError(f"{str(fp)!r} holds zero structures (an empty or truncated file?)")
    out = []
    for i, atoms in enumerate(frames):
        require_finite_atoms(atoms, str(fp), f"frame {i}")
        if len(atoms) == 0:
            raise GencrystalError(f"{str(fp)!r} frame {i} has no atoms")
        if not atoms.pbc.all() or atoms.cell.rank < 3:
            raise GencrystalError(f"{str(fp)!r} frame {i} is not a periodic 3-D crystal")
        sid = str(atoms.info.get("id", fp.stem if len(frames) == 1 else f"{fp.stem}-{i}"))
        out.append((sid, atoms))
    return out


def _read_db(url: str, selection: str | None) -> list[tuple[str, Atoms]]:
    import ase.db

    if not url.startswith("postgres") and not Path(url).exists():
        raise GencrystalError(f"ASE database {url!r} does not exist")
    try:
        db = ase.db.connect(url)
        rows = list(db.select(selection) if selection else db.select())
    except Exception as exc:
        raise GencrystalError(f"cannot read ASE database {url!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    out = []
    for row in rows:
        atoms = row.toatoms(add_additional_information=False)
        require_finite_atoms(atoms, url, f"row id={row.id}")
        atoms.info.update(row.key_value_pairs)
        atoms.info.setdefault("db_id", row.id)
        out.append((str(row.key_value_pairs.get("material_id", f"db-{row.id}")), atoms))
    return out


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open a temporary file beside ``path`` and move it into place only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with open(tmp, mode) as fh:
            yield fh
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.filename is None:  # a failed write() (full disk) names no file: name the target
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_out_folder(path: str | os.PathLike | None, key: str = "out") -> None:
    """Refuse an output folder that cannot be one: an existing file, or a path through a file.

    Called before any work; other OS errors (permissions, full disk) surface when writing
    and become one line in the CLI (:func:`gencrystal.errors.system_error_message`).
    """
    if path in (None, "") or is_db_url(str(path)):
        return
    p = Path(str(path))
    if p.exists() and not p.is_dir():
        raise GencrystalError(f"{key}={str(p)!r} is an existing file, not a folder; choose another {key}=")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GencrystalError(f"{key}={str(p)!r}: {str(parent)!r} is a file, not a folder")
            break


def write_extxyz(frames: Sequence[Atoms], path: str | os.PathLike) -> None:
    """Write frames to an extxyz file atomically (info dicts become per-frame keys)."""
    from ase.io import write

    with atomic_write(path) as fh:
        write(fh, list(frames), format="extxyz")


def write_cifs(frames: Sequence[Atoms], folder: str | os.PathLike, names: Sequence[str]) -> None:
    """Write one CIF per structure into ``folder`` (created), atomically per file."""
    from pymatgen.io.cif import CifWriter

    from gencrystal.structures import to_structure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for atoms, name in zip(frames, names):
        text = str(CifWriter(to_structure(atoms)))
        with atomic_write(folder / f"{name}.cif") as fh:
            fh.write(text)


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON atomically with 2-space indent (NaN written as null-safe strings by caller)."""
    import json

    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
