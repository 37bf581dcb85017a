"""``gencrystal demo`` (conf/demo.yaml; ``make demo``) and its steps as
``python -m gencrystal.cli.demo candidates|split|summarize ...`` (library side: :mod:`gencrystal.demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from gencrystal.errors import GencrystalError


def run(cfg) -> int:
    """``gencrystal demo [seed=0] [num_samples=3] [potential=hp_committee] [out=outputs/demo]`` (conf/demo.yaml)."""
    from gencrystal.demo import run_demo

    run_demo(cfg)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one demo step; returns the exit code (2 on bad input)."""
    import argparse

    from gencrystal.demo import demo_candidates, split_by_coverage, summarize
    from gencrystal.io import write_extxyz

    p = argparse.ArgumentParser(prog="python -m gencrystal.cli.demo")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("candidates", help="samples + known phases -> one extxyz to relax")
    c.add_argument("--out", required=True)
    c.add_argument("--no-known", action="store_true")
    c.add_argument("samples", nargs="*")
    sp = sub.add_parser("split", help="candidates -> those a potential covers and those relaxed with a fallback")
    sp.add_argument("candidates")
    sp.add_argument("--potential", required=True)
    sp.add_argument("--fallback", required=True)
    sp.add_argument("--pressure", type=float, required=True, help="GPa")
    sp.add_argument("--covered", required=True, help="extxyz for the potential's structures")
    sp.add_argument("--rest", required=True, help="extxyz for the fallback's structures")
    s = sub.add_parser("summarize", help="rank relaxed.extxyz, write CIFs/PNGs, print the DFT command")
    s.add_argument("relaxed", nargs="+", help="relaxed.extxyz files (one per potential)")
    s.add_argument("--uncertainty", default=None, help="committee potential whose spread is printed (hp_committee)")
    s.add_argument("--out", required=True)
    s.add_argument("--pressure", type=float, required=True, help="GPa")
    s.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    try:
        if args.cmd == "candidates":
            frames = demo_candidates([f for f in args.samples if Path(f).is_file()], known=not args.no_known)
            write_extxyz(frames, args.out)
            print(f"{len(frames)} candidates -> {args.out}")
        elif args.cmd == "split":
            from ase.io import read

            frames = list(read(args.candidates, index=":", format="extxyz"))
            covered, rest, messages = split_by_coverage(frames, args.potential, args.fallback, args.pressure)
            for path, part in ((args.covered, covered), (args.rest, rest)):
                if part:
                    write_extxyz(part, path)
                else:
                    Path(path).unlink(missing_ok=True)
            print("\n".join(messages))
        else:
            summarize(
                [f for f in args.relaxed if Path(f).is_file()],
                args.out,
                args.pressure,
                top=args.top,
                uncertainty=args.uncertainty,
            )
    except GencrystalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
