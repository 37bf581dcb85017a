"""``gencrystal demo`` (conf/demo.yaml; ``make demo``) and its steps as
``python -m gencrystal.cli.demo candidates|summarize ...`` (library side: :mod:`gencrystal.demo`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from gencrystal.errors import GencrystalError


def run(cfg) -> int:
    """``gencrystal demo [seed=0] [num_samples=3] [potential=chgnet] [out=outputs/demo]`` (conf/demo.yaml)."""
    from gencrystal.demo import run_demo

    run_demo(cfg)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one demo step; returns the exit code (2 on bad input)."""
    import argparse

    from gencrystal.demo import demo_candidates, summarize
    from gencrystal.io import write_extxyz

    p = argparse.ArgumentParser(prog="python -m gencrystal.cli.demo")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("candidates", help="samples + known phases -> one extxyz to relax")
    c.add_argument("--out", required=True)
    c.add_argument("--no-known", action="store_true")
    c.add_argument("samples", nargs="*")
    s = sub.add_parser("summarize", help="rank relaxed.extxyz, write CIFs/PNGs, print the DFT command")
    s.add_argument("relaxed")
    s.add_argument("--out", required=True)
    s.add_argument("--pressure", type=float, required=True, help="GPa")
    s.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    try:
        if args.cmd == "candidates":
            frames = demo_candidates([f for f in args.samples if Path(f).is_file()], known=not args.no_known)
            write_extxyz(frames, args.out)
            print(f"{len(frames)} candidates -> {args.out}")
        else:
            summarize(args.relaxed, args.out, args.pressure, top=args.top)
    except GencrystalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
