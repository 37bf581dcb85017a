"""Rewrite machine paths in committed files to repository-relative ones (gencrystal.paths).

    python scripts/relativize_paths.py            # reports/*.{json,md}, checkpoints/*.ckpt stored config
    python scripts/relativize_paths.py --check    # only list what is left; exit 1 if anything is
    python scripts/relativize_paths.py FILE ...   # these files (.json/.md text, .ckpt checkpoints)

A checkpoint's non-tensor entries (``hyper_parameters`` with the training config, the
``gencrystal_shipped`` stamp, datamodule state) are rewritten and the file saved again with
``torch.save``; weights and optimizer state are untouched. Paths that no rule covers are
listed so that they can be fixed by hand (the test ``tests/test_machine_paths.py`` fails on them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gencrystal.paths import find_absolute_paths, relativize, relativize_obj, strings_of  # noqa: E402

TENSOR_KEYS = ("state_dict", "optimizer_states", "lr_schedulers")


def default_files() -> list[Path]:
    """The committed files this script looks after."""
    return sorted([*REPO.glob("reports/*.json"), *REPO.glob("reports/*.md"), *REPO.glob("checkpoints/*.ckpt")])


def fix_text(path: Path, check: bool) -> list[str]:
    text = path.read_text()
    new = relativize(text)
    if new != text and not check:
        from gencrystal.io import atomic_write

        with atomic_write(path) as fh:
            fh.write(new)
    return find_absolute_paths(text if check else new)


def fix_checkpoint(path: Path, check: bool) -> list[str]:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    meta = {k: v for k, v in ckpt.items() if k not in TENSOR_KEYS}
    new = relativize_obj(meta)
    if new != meta and not check:
        from gencrystal.io import atomic_write

        ckpt.update(new)
        with atomic_write(path, "wb") as fh:
            torch.save(ckpt, fh)
    return [p for s in strings_of(meta if check else new) for p in find_absolute_paths(s)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true", help="change nothing; list absolute paths, exit 1 if any")
    args = ap.parse_args(argv)
    left = 0
    for path in args.files or default_files():
        found = fix_checkpoint(path, args.check) if path.suffix == ".ckpt" else fix_text(path, args.check)
        for p in found:
            print(f"{path}: {p}")
        left += len(found)
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
