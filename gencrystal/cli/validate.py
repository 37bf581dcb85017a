"""``gencrystal validate``: the command-line face of :func:`gencrystal.dft.validate.validate`."""

from __future__ import annotations

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """``gencrystal validate input=... dft=gpaw pressure=50 top_k=5 out=DIR [db=...]``."""
    from gencrystal.dft.validate import validate

    res = validate(cfg)
    out = cfg.out
    if "inputs_written" in res:  # a backend that only writes inputs (VASP)
        print(f"[validate] wrote {len(res['inputs_written'])} {res['backend'].upper()} input folders under "
              f"{res['inputs_dir']} (PSTRESS = {10 * res['pressure_gpa']:g} kbar); run them with your VASP licence")
        return 0
    print(res["markdown"])
    print(f"[validate] {res['n_dft_ok']}/{res['n_validated']} DFT relaxations ok, {res['n_same_structure']} kept their "
          f"structure -> {out}/validation.json, validation.md, dft_relaxed.extxyz"
          + (f"; {res['rows_added']} rows added to {cfg.db}" if cfg.get("db") else ""))
    return 0
