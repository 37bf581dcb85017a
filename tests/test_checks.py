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
    from gencrystal.cli import compose
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
