"""The shipped default model and the demo (`make demo`): checkpoint, seeds, ranking output."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from gencrystal.demo import (
    CAUTION,
    DEMO_KNOWN,
    demo_candidates,
    prototypes,
    rank_relaxed,
    seed_structures,
    space_group,
    summarize,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints" / "gencrystal-hp-csp-small.ckpt"
SEEDS = REPO / "data" / "fixtures" / "hp_seeds.extxyz"


def _few_steps():
    """The demo's `fast` sampler with 20 steps (keeps these tests quick; same code path)."""
    from gencrystal.config import compose

    return compose("sample", ["ckpt=x", "sampler.num_steps=20"]).sampler


def _shipped() -> Path:
    if not SHIPPED.is_file():
        pytest.skip(f"shipped checkpoint {SHIPPED.relative_to(REPO)} is missing (build it: python scripts/train_default.py)")
    return SHIPPED


# ----------------------------------------------------------------------------- the checkpoint
def test_shipped_checkpoint_is_small_and_self_contained():
    import torch

    path = _shipped()
    assert path.stat().st_size <= 25 * 2**20
    ck = torch.load(path, map_location="cpu", weights_only=False)
    assert "optimizer_states" not in ck  # weights only: model + EMA, config, statistics
    hp = ck["hyper_parameters"]
    assert "cfg" in hp or "config" in hp or hp, "config travels in the checkpoint"
    assert any(k.startswith("ema.") for k in ck["state_dict"]), "EMA weights are inside"


def test_shipped_checkpoint_samples_the_requested_composition_at_pressure():
    from gencrystal.sampling import Generator

    gen = Generator(str(_shipped()), device="cpu", sampler=_few_steps())
    assert gen.csp
    lo, hi = gen.pressure_range
    assert lo <= 50.0 <= hi, "the demo pressure lies inside the trained pressure range"
    frames = gen.sample("Li16", pressure=50, n=2, seed=0)
    assert len(frames) == 2
    for a in frames:
        assert a.get_chemical_formula() == "Li16"
        assert np.isfinite(a.cell.array).all() and a.get_volume() > 0
    sio2 = gen.sample("SiO2", pressure=50, n=2, seed=1, formula_units="2,4")
    assert sorted(Counter(a.get_chemical_symbols()) ["O"] for a in sio2) == [4, 8]
    for a in sio2:
        c = Counter(a.get_chemical_symbols())
        assert c["O"] == 2 * c["Si"]


def test_shipped_checkpoint_conditions_on_every_demo_pressure():
    """The pressure basis of the shipped model covers 0-100 GPa (the first shipped model's
    scaler faded out above ~9 GPa, so every high-pressure request looked alike), and its
    lattice prior shrinks the volume per atom with pressure."""
    import torch

    from gencrystal.model.module import CrystalDiffusionModule

    module = CrystalDiffusionModule.load_checkpoint(_shipped())
    lo, hi = module.pressure_range
    assert lo <= 0.0 and hi >= 100.0
    cond = module.net.conditions.conditions["pressure"]
    z = cond.zscore(torch.tensor([0.0, 25.0, 50.0, 100.0]))
    centers = cond.expansion.centers
    assert float(z.min()) >= float(centers.min()) and float(z.max()) <= float(centers.max())
    v = module.prior.volume_per_atom(torch.tensor([0.0, 25.0, 50.0, 100.0]), torch.zeros(4))
    assert bool((v[1:] < v[:-1]).all())


def test_shipped_checkpoint_is_deterministic_for_a_seed():
    from gencrystal.sampling import Generator

    gen = Generator(str(_shipped()), device="cpu", sampler=_few_steps())
    a = gen.sample("Li16", pressure=50, n=1, seed=7)[0]
    b = gen.sample("Li16", pressure=50, n=1, seed=7)[0]
    np.testing.assert_allclose(a.cell.array, b.cell.array)
    np.testing.assert_allclose(a.get_scaled_positions(), b.get_scaled_positions())


# ----------------------------------------------------------------------------- known structures
def test_prototypes_have_their_textbook_space_groups():
    expected = {
        "Li-bcc": "Im-3m", "Li-fcc": "Fm-3m", "Li-hcp": "P6_3/mmc", "Li-cI16": "I-43d",
        "Si-diamond": "Fd-3m", "Si-betaSn": "I4_1/amd", "Si-sh": "P6/mmm",
        "SiO2-alpha-quartz": "P3_221", "SiO2-stishovite": "P4_2/mnm", "SiO2-CaCl2": "Pnnm", "SiO2-aPbO2": "Pbcn",
        "B-alpha12": "R-3m",
    }
    got = {a.info["id"]: a for a in prototypes()}
    for name, sg in expected.items():
        assert space_group(got[name], symprec=1e-3).split(" ")[0] == sg, name
    assert len(got["Li-cI16"]) == 16 and len(got["B-alpha12"]) == 12
    # Si-O bonds of the silica polymorphs are bonds (1.5-1.9 Å), not overlaps
    from gencrystal.structures import min_interatomic_distance

    for name in ("SiO2-alpha-quartz", "SiO2-stishovite", "SiO2-CaCl2", "SiO2-aPbO2"):
        assert 1.5 < min_interatomic_distance(got[name]) < 1.9, name


def test_committed_seed_set_matches_the_recipe():
    from ase.io import read

    frames = read(str(SEEDS), index=":")
    fresh = seed_structures(seed=0)
    assert [a.info["id"] for a in frames] == [a.info["id"] for a in fresh]
    for a, b in zip(frames, fresh):
        assert a.get_chemical_formula() == b.get_chemical_formula()
        if "-rand" not in a.info["id"]:  # prototypes: exactly the same cells
            np.testing.assert_allclose(a.cell.array, b.cell.array, atol=1e-6)
            np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
    formulas = {a.get_chemical_formula(empirical=True) for a in frames}
    assert formulas == {"Li", "Si", "O2Si", "B"}


def test_random_seed_structures_are_deterministic():
    from gencrystal.demo import random_structures

    a = random_structures([("SiO2", 2, 2)], seed=3)
    b = random_structures([("SiO2", 2, 2)], seed=3)
    assert [x.info["id"] for x in a] == [x.info["id"] for x in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.cell.array, y.cell.array)
        np.testing.assert_allclose(x.positions, y.positions)
        assert x.get_chemical_formula() == "O4Si2"


def test_demo_candidates_are_samples_plus_known_phases(tmp_path):
    from gencrystal.io import write_extxyz

    s = bulk("Li", "bcc", a=3.0, cubic=True).repeat((2, 2, 2))
    s.info = {"sample_index": 3}
    write_extxyz([s], tmp_path / "samples.extxyz")
    cands = demo_candidates([tmp_path / "samples.extxyz"])
    ids = [a.info["id"] for a in cands]
    assert ids[0] == "sample:Li16:3"
    assert {f"known:{n}" for g in DEMO_KNOWN.values() for n in g} == set(ids[1:])
    with pytest.raises(Exception, match="nothing to relax"):
        demo_candidates([], known=False)


# ----------------------------------------------------------------------------- ranking output
def _relaxed(atoms: Atoms, sid: str, h: float, **extra) -> Atoms:
    a = atoms.copy()
    a.info = {"id": sid, "enthalpy_per_atom": h, "converged": True, **extra}
    return a


def test_rank_relaxed_orders_by_enthalpy_and_drops_failures_and_duplicates():
    li = bulk("Li", "bcc", a=3.0, cubic=True)
    frames = [
        _relaxed(li, "b", -1.0),
        _relaxed(bulk("Li", "fcc", a=3.8), "a", -1.2),
        _relaxed(li, "dup", -1.2, duplicate_of=1),
        _relaxed(li, "nan", float("nan")),
        _relaxed(li, "guard", -9.0, error="volume guard: V/V0 > 8"),
        _relaxed(li, "slow", -0.5, converged=False, error="not converged in 5 steps (fmax 0.05 eV/Å)"),
        _relaxed(bulk("Si", "diamond", a=5.43), "si", -5.0),
    ]
    ranking = rank_relaxed(frames)
    assert list(ranking) == ["Li", "Si"]
    li_rank = ranking["Li"]
    assert [r.id for r in li_rank] == ["a", "b", "slow"]
    assert [r.space_group for r in li_rank] == ["Fm-3m (225)", "Im-3m (229)", "Im-3m (229)"]
    assert math.isclose(li_rank[1].delta_h_mev, 200.0)
    assert li_rank[2].converged is False
    assert math.isclose(li_rank[0].volume_per_atom, 3.8**3 / 4)


def test_summarize_prints_a_real_structure_writes_cifs_png_and_the_dft_command(tmp_path, capsys):
    from ase.io import read

    from gencrystal.io import write_extxyz

    frames = [_relaxed(bulk("Li", "fcc", a=3.8), "known:Li-fcc", -1.2),
              _relaxed(bulk("Li", "bcc", a=3.0, cubic=True), "sample:Li2:0", -1.0)]
    write_extxyz(frames, tmp_path / "relaxed.extxyz")
    text = summarize(tmp_path / "relaxed.extxyz", tmp_path / "demo", 50.0)
    assert text == capsys.readouterr().out.strip()
    assert "Best Li: Li1, space group Fm-3m (225), H = -1.2000 eV/atom, V = 13.718 A^3/atom" in text
    assert "Li: 2 ranked of 2 relaxed" in text
    assert CAUTION in text
    assert f"gencrystal validate input={tmp_path / 'demo'}/best_Li.cif dft=gpaw pressure=50 top_k=1" in text
    best = read(str(tmp_path / "demo" / "best_Li.cif"))
    assert space_group(best) == "Fm-3m (225)"
    assert (tmp_path / "demo" / "best_Li.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "demo" / "cif").iterdir()) == ["Li_01_Li1_Fm-3m.cif", "Li_02_Li2_Im-3m.cif"]


def test_summarize_names_samples_that_relaxed_into_a_known_phase(tmp_path):
    """A sample marked as a duplicate of a known phase is reported as a rediscovery (text and
    ranking.json); a duplicate of another sample, or a known phase duplicating a known one, is not."""
    import json

    from gencrystal.demo import rediscoveries
    from gencrystal.io import write_extxyz

    fcc, bcc = bulk("Li", "fcc", a=3.8), bulk("Li", "bcc", a=3.0, cubic=True)
    frames = [_relaxed(fcc, "known:Li-fcc", -1.2), _relaxed(bcc, "known:Li-bcc", -1.0),
              _relaxed(fcc, "sample:Li16:1", -1.2, duplicate_of="known:Li-fcc"),
              _relaxed(bcc, "sample:Li16:2", -1.0, duplicate_of="known:Li-bcc"),
              _relaxed(bcc, "sample:Li16:3", -1.0, duplicate_of="sample:Li16:2"),
              _relaxed(bcc, "known:Li-bcc2", -1.0, duplicate_of="known:Li-bcc")]
    assert rediscoveries(frames) == [("sample:Li16:1", "known:Li-fcc"), ("sample:Li16:2", "known:Li-bcc")]
    write_extxyz(frames, tmp_path / "relaxed.extxyz")
    text = summarize(tmp_path / "relaxed.extxyz", tmp_path / "demo", 50.0)
    assert "sample:Li16:1 relaxed into known:Li-fcc" in text and "sample:Li16:3 relaxed" not in text
    saved = json.loads((tmp_path / "demo" / "ranking.json").read_text())["rediscovered"]
    assert saved == [{"sample": "sample:Li16:1", "known_phase": "known:Li-fcc"},
                     {"sample": "sample:Li16:2", "known_phase": "known:Li-bcc"}]


def test_summarize_with_nothing_relaxed_is_a_one_line_error(tmp_path):
    from gencrystal.errors import GencrystalError
    from gencrystal.io import write_extxyz

    write_extxyz([_relaxed(bulk("Li", "bcc", a=3.0), "x", -1.0, error="NaN energy")], tmp_path / "r.extxyz")
    with pytest.raises(GencrystalError, match="relaxed successfully"):
        summarize(tmp_path / "r.extxyz", tmp_path / "out", 50.0)


# ----------------------------------------------------------------------------- the demo command


def test_demo_knobs_are_a_hydra_config():
    from gencrystal.cli import COMMANDS
    from gencrystal.config import compose

    cfg = compose("demo", ["num_samples=2", "steps=5", "seed=4", "potential=sevenn"])
    assert ("demo",) in [c.words for c in COMMANDS]
    assert cfg.num_samples == 2 and cfg.steps == 5 and cfg.seed == 4 and cfg.pressure == 50.0
    assert cfg.potential.name == "sevenn"  # the potential is a conf/demo.yaml choice
    assert [s.name for s in cfg.systems] == ["Li16", "SiO2"]
    assert "DEMO_" not in (Path(__file__).resolve().parent.parent / "scripts" / "demo.sh").read_text()


def test_demo_summary_prints_the_rate_over_seeds(tmp_path):
    import json

    from gencrystal.demo import seed_rate_lines

    report = tmp_path / "demo_seeds.json"
    report.write_text(json.dumps({"n_seeds": 10, "configuration": "3 samples per system",
                                  "systems": {"SiO2": {"samples": 30, "rediscovered": 3, "sample_rate": 0.1,
                                                       "seeds_with_one": 2}}}))
    lines = seed_rate_lines(report)
    assert lines[0].startswith("Over 10 demo seeds (3 samples per system; demo_seeds.json)")
    assert lines[1] == "  SiO2: 3/30 samples (10 %), in 2/10 seeds at least one"
    assert seed_rate_lines(tmp_path / "absent.json") == []


def test_sampling_runs_with_deterministic_algorithms_and_restores_the_setting():
    import torch

    from gencrystal.sampling import generator as gmod

    seen = []
    real = gmod.Generator._sample_batch

    def spy(self, *args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real(self, *args, **kwargs)

    gen = gmod.Generator(str(_shipped()), device="cpu", sampler=_few_steps())
    before = torch.are_deterministic_algorithms_enabled()
    gmod.Generator._sample_batch = spy
    try:
        gen.sample("Li16", pressure=50, n=1, seed=1)
    finally:
        gmod.Generator._sample_batch = real
    assert seen == [True] and torch.are_deterministic_algorithms_enabled() == before


def test_same_command_same_seed_same_structures_across_processes(tmp_path):
    import subprocess
    import sys

    from ase.io import read

    frames = []
    for k in range(2):
        out = tmp_path / f"s{k}"
        proc = subprocess.run([sys.executable, "-m", "gencrystal", "sample", f"ckpt={_shipped()}", "composition=SiO2",
                               "formula_units=2-3", "pressure=50", "num_samples=2", "seed=11", "sampler.num_steps=10",
                               f"out={out}", "progress=false", "threads=1"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
        assert proc.returncode == 0, proc.stderr[-2000:]
        frames.append(read(out / "samples.extxyz", index=":"))
    for a, b in zip(*frames):
        assert (a.numbers == b.numbers).all()
        assert np.array_equal(a.cell.array, b.cell.array) and np.array_equal(a.positions, b.positions)
