"""A toy pressure-labelled ASE database of textbook crystals, to train a tiny model on.

Used by the sampling tests (a checkpoint trained inside the test session) and by
``scripts/bench_sample.py`` when no checkpoint is given. It is *not* physics: the
compression follows a made-up equation of state, so a model trained on it only
exercises the machinery.

Built from ASE prototypes (bcc/fcc Li, rock-salt MgO, diamond Si, fluorite CaF2) in
several supercells, each compressed along a made-up equation of state
V(P) = V0 · (1 + P / 50 GPa)^(-1/3) at pressures 0–100 GPa. It needs no downloaded
data, so the end-to-end sampling tests run anywhere. Max 16 atoms per cell.
"""

from __future__ import annotations

from pathlib import Path

from ase.build import bulk

from gencrystal.db.schema import add_structure, connect

PRESSURES_GPA = (0.0, 25.0, 50.0, 100.0)


def prototypes():
    """(name, Atoms) pairs at ambient volume, 1–16 atoms."""
    li_bcc = bulk("Li", "bcc", a=3.44, cubic=True)
    return [
        ("Li-bcc-1", bulk("Li", "bcc", a=3.44)),
        ("Li-bcc-2", li_bcc),
        ("Li-bcc-4", li_bcc.repeat((2, 1, 1))),
        ("Li-bcc-8", li_bcc.repeat((2, 2, 1))),
        ("Li-bcc-16", li_bcc.repeat((2, 2, 2))),
        ("Li-fcc-4", bulk("Li", "fcc", a=4.33, cubic=True)),
        ("MgO-rs-2", bulk("MgO", "rocksalt", a=4.21)),
        ("MgO-rs-8", bulk("MgO", "rocksalt", a=4.21, cubic=True)),
        ("Si-dia-2", bulk("Si", "diamond", a=5.43)),
        ("Si-dia-8", bulk("Si", "diamond", a=5.43, cubic=True)),
        ("CaF2-fl-3", bulk("CaF2", "fluorite", a=5.46)),
        ("CaF2-fl-12", bulk("CaF2", "fluorite", a=5.46, cubic=True)),
    ]


def build_toy_db(path: str | Path) -> Path:
    """Write the database (train: every prototype at every pressure; val: 50 GPa copies)."""
    path = Path(path)
    db = connect(str(path))
    for name, atoms in prototypes():
        for p in PRESSURES_GPA:
            a = atoms.copy()
            a.set_cell(a.cell * (1.0 + p / 50.0) ** (-1.0 / 9.0), scale_atoms=True)
            add_structure(db, a, pressure_gpa=p, level_of_theory="synthetic-eos", source=f"{name}@{p:g}",
                          split="train", material_id=f"{name}@{p:g}")
            if p == 50.0:
                add_structure(db, a, pressure_gpa=p, level_of_theory="synthetic-eos", source=f"{name}@{p:g}-val",
                              split="val", material_id=f"{name}@{p:g}-val")
    return path


def train_toy_checkpoint(out: str | Path, max_steps: int = 30, extra_overrides: tuple[str, ...] = ()) -> Path:
    """Build the toy database under ``out`` and train a tiny CSP model on it for
    ``max_steps`` optimizer steps on the CPU; returns the checkpoint path."""
    from gencrystal.config import compose
    from gencrystal.model.train import train

    out = Path(out)
    db = build_toy_db(out / "toy.db")
    cfg = compose("train", [
        "data=asedb", f"data.url={db}", "data.cache_dir=false", "data.progress=false",
        "model=tiny", "trainer=cpu", f"trainer.max_steps={int(max_steps)}", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", "logger=csv", "batch_size=16", f"out={out / 'run'}", "name=toy",
        *extra_overrides,
    ])
    return train(cfg)
