"""`python -m gencrystal` is the same as the `gencrystal` console script."""

from gencrystal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
