#!/usr/bin/env python
"""Recipe of the shipped high-pressure committee ``checkpoints/hp_committee`` (``potential=hp_committee``).

    python scripts/train_hp_committee.py --labels checkpoints/hp_committee/labels.db \
        outputs/al_sio2/labels.db outputs/al_b/labels.db --heads 3 --name hp-committee-v2

(the shipped v2: the Li and Si labels of v1, read back from its ``labels.db``, plus the SiO2 and B
labels of one converged-settings loop iteration each; the calls are in ``reports/active_learning.md``)

1. Every DFT label row of the ``--labels`` databases (written by ``gencrystal learn ... db=``,
   each row with its DFT settings: ``dft_code``, ``dft_xc``, ``dft_ecut_ev``,
   ``dft_kpt_density``, ``dft_kpts``, ``dft_smearing_ev``) is copied into
   ``<out>/labels.db`` (committed with the committee; rows already there, by
   ``label_hash``, are skipped).
2. A shared-trunk committee (:mod:`gencrystal.potentials.shared_trunk`) is fine-tuned from
   CHGNet 0.3.0 on all of them (:func:`gencrystal.learn.finetune.train_shared_trunk_committee`):
   the trunk on every label, then ``--heads`` readout heads on bootstrap resamples with the
   trunk frozen. ``committee.json`` records the coverage (the labels' elements and
   pressure range, GPa), the DFT settings per element set and the label counts.

Resumable: a killed run keeps the finished trunk and heads. Energies eV, pressures GPa.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_labels(sources: list[str], target: Path) -> int:
    """Copy label rows (with forces/stress data) into ``target`` (skip known ``label_hash``es)."""
    from gencrystal.db.schema import connect
    from gencrystal.errors import GencrystalError

    dst = connect(str(target))
    have = {row.get("label_hash") for row in dst.select()}
    added = 0
    for src in sources:
        if not Path(src).is_file():
            raise GencrystalError(f"label database {src!r} does not exist")
        with dst:
            for row in connect(src).select():
                if row.get("label_hash") in have or "forces" not in row.data:
                    continue
                dst.write(row.toatoms(), key_value_pairs=row.key_value_pairs, data=row.data)
                have.add(row.get("label_hash"))
                added += 1
    return added


def dft_settings_by_system(labels) -> dict:
    """``{element set: {dft settings: label count}}`` of the labels."""
    out: dict = {}
    for a in labels:
        system = "-".join(sorted(set(a.get_chemical_symbols())))
        key = ", ".join(f"{k[4:]}={a.info[k]}" for k in ("dft_code", "dft_xc", "dft_ecut_ev", "dft_kpt_density",
                                                          "dft_smearing_ev", "dft_symmetry") if k in a.info)
        out.setdefault(system, {}).setdefault(key, 0)
        out[system][key] += 1
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", nargs="+", required=True, help="ASE label databases of `gencrystal learn ... db=`")
    p.add_argument("--out", default=str(ROOT / "checkpoints" / "hp_committee"))
    p.add_argument("--heads", type=int, default=4, help="readout heads (committee members)")
    p.add_argument("--epochs", type=int, default=30, help="trunk fine-tuning epochs")
    p.add_argument("--head-epochs", type=int, default=10, help="epochs per head (trunk frozen)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--name", default="hp-committee-v2", help="level of theory written to databases")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from collections import Counter

    from gencrystal.db.schema import connect
    from gencrystal.learn.finetune import FinetuneSettings, train_shared_trunk_committee
    from gencrystal.learn.labels import read_label_db
    from gencrystal.relax.engine import single_threaded

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    added = copy_labels(args.labels, out / "labels.db")
    labels = read_label_db(connect(str(out / "labels.db")))
    print(f"{added} new labels; {len(labels)} in {out / 'labels.db'}", flush=True)
    settings = FinetuneSettings(n_members=args.heads, epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr, seed=args.seed)
    by_system = Counter("-".join(sorted(set(a.get_chemical_symbols()))) for a in labels)
    by_pressure = Counter(f"{float(a.info.get('pressure_gpa', 0.0)):g}" for a in labels)
    with single_threaded(1):
        train_shared_trunk_committee(labels, out, settings, n_heads=args.heads, head_epochs=args.head_epochs,
                                     level_of_theory=args.name, progress=True,
                                     labels_by_system=dict(by_system), labels_by_relax_pressure_gpa=dict(by_pressure),
                                     dft_settings=dft_settings_by_system(labels), labels_db="labels.db")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20
    print(f"committee -> {out} ({size:.1f} MiB)")
    if size > 25:
        raise SystemExit(f"{out} holds {size:.1f} MiB > 25 MiB")
    return 0


if __name__ == "__main__":
    from gencrystal.errors import run_script

    run_script(main)
