"""One structure sanity check with one set of defaults, used by every stage."""

from __future__ import annotations

import dataclasses

import pytest
from ase.build import bulk

from gencrystal.checks import DEFAULTS, StructureChecks
from gencrystal.errors import GencrystalError


def _limits(obj) -> dict:
    names = [f.name for f in dataclasses.fields(StructureChecks)]
    return {n: getattr(obj, n) for n in names}


def test_every_stage_uses_the_same_defaults():
    from gencrystal.config import compose
    from gencrystal.db.build import KeepCriteria
    from gencrystal.relax import RelaxGuard

    assert _limits(RelaxGuard().input_checks()) == _limits(DEFAULTS)
    assert _limits(KeepCriteria()) == _limits(DEFAULTS)
    for config, node in (("sample", "checks"), ("db_build", "keep"), ("relax", "guard")):
        cfg = compose(config, [])[node]
        assert {k: cfg[k] for k in _limits(DEFAULTS)} == _limits(DEFAULTS), config


def test_closed_form_flags_and_reasons():
    cu = bulk("Cu", "fcc", a=3.6)  # nearest neighbour 2.546 Å, 11.66 Å³/atom, 12 neighbours within 3 Å
    assert DEFAULTS.flags(cu) == [] and DEFAULTS.ok(cu) and DEFAULTS.reason(cu) is None
    assert StructureChecks(max_neighbors=11).flags(cu) == ["crowded"]
    assert "12 neighbours within 3 Å" in StructureChecks(max_neighbors=11).reason(cu)
    squeezed = cu.copy()
    squeezed.set_cell(cu.cell * 0.4, scale_atoms=True)  # 1.018 Å apart, 0.746 Å³/atom
    assert StructureChecks(min_distance=1.1, max_neighbors=None).flags(squeezed) == ["short_distance", "small_volume"]
    assert "1.02 Å apart" in StructureChecks(min_distance=1.1).reason(squeezed)
    with pytest.raises(GencrystalError, match="must be below"):
        StructureChecks(min_volume_per_atom=300.0)


def test_periodic_image_count_closed_form():
    from gencrystal.checks import periodic_images

    cube = bulk("Po", "sc", a=3.0).cell[:]  # plane spacing 3 Å along each axis
    assert periodic_images(cube, 3.0) == 27 and periodic_images(cube, 3.1) == 125 and periodic_images(cube, 0.5) == 27


def test_a_sampled_sliver_is_refused_on_its_volume_without_listing_its_images():
    """A sample collapsed to a 1° sliver (B4 at 100 GPa from a held-out model, 0.0036 Å³/atom) has
    ~4·10⁸ periodic images within 3 Å; listing them took 21 GB. It is refused at once, and the
    packing bound puts its atoms closer than 0.5 Å."""
    import math
    import time

    from ase import Atoms

    from gencrystal.checks import MAX_PAIRS_OF_A_COLLAPSED_CELL, periodic_images

    cell = [[0.6749, 1.222, -0.0255], [1.222, 2.2176, 0.0043], [-0.0255, 0.0043, 4.8144]]  # the sample's
    a = Atoms("B4", cell=cell, pbc=True,
              scaled_positions=[[0.473, 0.8, 0.704], [0.295, 0.694, 0.084], [0.72, 0.08, 0.217], [0.066, 0.298, 0.704]])
    vpa = a.get_volume() / len(a)
    assert vpa < 0.01
    assert 16 * periodic_images(a.cell[:], 3.0) > 100 * MAX_PAIRS_OF_A_COLLAPSED_CELL
    t0 = time.perf_counter()
    res = DEFAULTS.evaluate(a)
    assert time.perf_counter() - t0 < 5.0
    assert res["flags"] == ["short_distance", "small_volume"] and math.isnan(res["min_distance"])
    assert "at most" in DEFAULTS.reason(a) and "Å³/atom" in DEFAULTS.reason(a)
    # a cell squeezed only a little below the volume limit is still measured exactly
    cu = bulk("Cu", "fcc", a=3.6)
    cu.set_cell(cu.cell * 0.4, scale_atoms=True)
    assert not math.isnan(DEFAULTS.evaluate(cu)["min_distance"])
