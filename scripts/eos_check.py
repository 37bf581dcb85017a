#!/usr/bin/env python
"""Li trust check: bcc (and fcc) Li at 0/25/50 GPa, GPAW-PBE vs CHGNet vs SevenNet -> reports/eos_li.{json,md,png}.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/eos_check.py [key=value overrides of conf/relax_eos.yaml]

It writes the two Li structures to outputs/eos_li/li.extxyz and runs
``gencrystal relax eos`` on them with production-like GPAW settings (PW 400 eV,
4 k-points/Å⁻¹, Fermi-Dirac 0.1 eV; symmetry on, which keeps the cubic cells cubic).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: list[str]) -> int:
    from ase.build import bulk

    from gencrystal.cli import main as cli_main
    from gencrystal.io import write_extxyz

    out = "outputs/eos_li"
    bcc = bulk("Li", "bcc", a=3.44, cubic=True)  # ~ambient lattice constant
    bcc.info["id"] = "bcc-Li"
    fcc = bulk("Li", "fcc", a=4.33)
    fcc.info["id"] = "fcc-Li"
    write_extxyz([bcc, fcc], f"{out}/li.extxyz")
    return cli_main(["relax", "eos", f"structure={out}/li.extxyz", "pressures=[0,25,50]", "potentials=[chgnet,sevenn]",
                     "dft=gpaw", "dft.ecut=400", "dft.kpt_density=4.0", "dft.symmetry=on", "dft.fmax=0.005",
                     f"out={out}", "report=eos_li", *argv])


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(lambda: main(sys.argv[1:]))
