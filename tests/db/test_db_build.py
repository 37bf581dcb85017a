"""The pressure-labelled database: resumable builds, duplicate merging, export, stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from gencrystal.db.build import KeepCriteria, build_database, read_ledger, task_key
from gencrystal.db.schema import connect

LJ_LEVEL = "lj-test"


def lj_potential():
    """A cheap species-blind Lennard-Jones potential through the relax interface."""
    from ase.calculators.lj import LennardJones

    from gencrystal.potentials import calculator_potential

    return calculator_potential(lambda: LennardJones(sigma=2.2, epsilon=0.05, rc=4.5, smooth=True), LJ_LEVEL)


RELAX = {"fmax": 0.05, "steps": 120}


def perov_pairs(data_root, n):
    import pandas as pd
    from pymatgen.core import Structure

    from gencrystal.structures import to_atoms

    df = pd.read_csv(data_root / "perov_5_dev" / "train.csv", nrows=n)
    return [(str(r.material_id), to_atoms(Structure.from_str(r.cif, fmt="cif"))) for r in df.itertuples()]


class Killed(KeyboardInterrupt):
    pass


def killing_relax(after: int, counter: dict):
    """relax_structures that dies (like a SIGINT) once ``after`` structures have been relaxed."""
    from gencrystal.relax import relax_structures

    def relax(atoms_list, **kw):
        out = []
        for a, sid in zip(atoms_list, kw.pop("ids")):
            if counter["n"] >= after:
                raise Killed()
            out.extend(relax_structures([a], ids=[sid], **kw))
            counter["n"] += 1
        return out

    return relax


def counting_relax(counter: dict):
    from gencrystal.relax import relax_structures

    def relax(atoms_list, **kw):
        counter["n"] += len(atoms_list)
        return relax_structures(atoms_list, **kw)

    return relax


def row_signature(db_url):
    db = connect(db_url)
    rows = []
    for r in db.select():
        rows.append((r.task_key, r.source, r.get("merged_ids", ""), round(float(r.pressure_gpa), 6),
                     round(float(r.enthalpy_per_atom), 7), r.natoms, r.level_of_theory,
                     tuple(np.round(r.toatoms().cell.cellpar(), 5))))
    return sorted(rows)


def _kill_and_resume(tmp_path, pairs, pressures, kill_after, chunk_size):
    pot = lj_potential()
    ref = str(tmp_path / "ref.db")
    build_database(pairs, pressures, ref, pot, relax_options=RELAX, chunk_size=chunk_size, progress=False,
                   source_label="perov5_dev:train")
    killed = str(tmp_path / "killed.db")
    counter = {"n": 0}
    with pytest.raises(Killed):
        build_database(pairs, pressures, killed, pot, relax_options=RELAX, chunk_size=chunk_size, progress=False,
                       source_label="perov5_dev:train", relax_fn=killing_relax(kill_after, counter))
    done_before = len(read_ledger(connect(killed)))
    # only whole chunks are committed: the partial chunk in flight was rolled back
    assert done_before == (kill_after // chunk_size) * chunk_size
    assert connect(killed).count() <= done_before
    again = {"n": 0}
    summary = build_database(pairs, pressures, killed, pot, relax_options=RELAX, chunk_size=chunk_size, progress=False,
                             source_label="perov5_dev:train", relax_fn=counting_relax(again))
    total = len(pairs) * len(pressures)
    assert summary.skipped_done == done_before
    assert again["n"] == total - done_before  # finished tasks are not relaxed again
    assert row_signature(killed) == row_signature(ref)
    keys = [r.task_key for r in connect(killed).select()]
    assert len(keys) == len(set(keys))  # no duplicates
    assert set(read_ledger(connect(killed))) == {task_key(s, p, LJ_LEVEL) for p in pressures for s, _ in pairs}
    # a third run does nothing
    third = {"n": 0}
    s3 = build_database(pairs, pressures, killed, pot, relax_options=RELAX, chunk_size=chunk_size, progress=False,
                        source_label="perov5_dev:train", relax_fn=counting_relax(third))
    assert third["n"] == 0 and s3.skipped_done == total
    assert row_signature(killed) == row_signature(ref)


def test_killed_build_resumes_small(tmp_path, data_root):
    _kill_and_resume(tmp_path, perov_pairs(data_root, 3), [0.0, 10.0], kill_after=3, chunk_size=2)


@pytest.mark.slow
def test_killed_build_of_20_perov5_dev_at_2_pressures_resumes(tmp_path, data_root):
    _kill_and_resume(tmp_path, perov_pairs(data_root, 20), [0.0, 10.0], kill_after=17, chunk_size=6)


def test_rows_carry_schema_and_parentage(tmp_path, data_root):
    pairs = perov_pairs(data_root, 2)
    url = str(tmp_path / "hp.db")
    build_database(pairs, [5.0], url, lj_potential(), relax_options=RELAX, chunk_size=4, progress=False,
                   source_label="perov5_dev:train")
    rows = list(connect(url).select())
    assert len(rows) == 2
    for r, (sid, atoms) in zip(rows, pairs):
        assert r.pressure_gpa == 5.0 and r.level_of_theory == LJ_LEVEL and r.relaxed is True
        from gencrystal.db.schema import PROVENANCE_KEYS

        assert all(k in r.key_value_pairs for k in PROVENANCE_KEYS)  # the same provenance as imported rows
        assert r.source == f"perov5_dev:train:{sid}" and r.parent_id == 0
        assert r.task_key == task_key(sid, 5.0, LJ_LEVEL)
        # enthalpy per atom = energy per atom + P V / N at 5 GPa
        from gencrystal.units import gpa_to_ev_per_a3

        assert math.isclose(r.enthalpy_per_atom, r.energy_per_atom + gpa_to_ev_per_a3(5.0) * r.volume / r.natoms,
                            rel_tol=0, abs_tol=1e-6)
        assert r.toatoms().get_chemical_formula() == atoms.get_chemical_formula()


def test_duplicates_are_merged_keeping_lowest_enthalpy(tmp_path):
    from ase.build import bulk

    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    pairs = [("a", base.copy()), ("b", base.copy()), ("c", bulk("Cu", "bcc", a=2.9, cubic=True))]
    pairs[1][1].rattle(0.02, seed=1)
    from ase.calculators.emt import EMT

    from gencrystal.potentials import calculator_potential

    pot = calculator_potential(EMT, "emt-test")
    url = str(tmp_path / "dup.db")
    s = build_database(pairs, [0.0], url, pot, relax_options={"fmax": 0.01, "steps": 200}, chunk_size=3, progress=False,
                       source_label="t")
    rows = list(connect(url).select())
    fcc = [r for r in rows if r.task_key in (task_key("a", 0, "emt-test"), task_key("b", 0, "emt-test"))]
    assert len(fcc) == 1 and fcc[0].n_merged == 1  # fcc a and b are one structure
    assert s.merged == 1 and s.kept == 2
    ledger = read_ledger(connect(url))
    assert sorted(v[0] for v in ledger.values()) == ["kept", "kept", "merged"]
    # the kept fcc row has the lower enthalpy of the two
    assert fcc[0].merged_ids in ("t:a", "t:b")


def test_unstable_results_are_rejected_and_not_retried(tmp_path):
    from ase.build import bulk

    from gencrystal.potentials import calculator_potential
    from ase.calculators.emt import EMT

    pairs = [("cu", bulk("Cu", "fcc", a=3.6))]
    url = str(tmp_path / "rej.db")
    # one step cannot converge: the task is rejected, recorded, and not run again
    s = build_database(pairs, [0.0], url, calculator_potential(EMT, "emt-test"), relax_options={"fmax": 1e-6, "steps": 1},
                       chunk_size=1, progress=False)
    assert s.rejected == 1 and connect(url).count() == 0
    assert read_ledger(connect(url))[task_key("cu", 0.0, "emt-test")][0] == "rejected"
    s2 = build_database(pairs, [0.0], url, calculator_potential(EMT, "emt-test"), relax_options={"fmax": 1e-6, "steps": 1},
                        chunk_size=1, progress=False)
    assert s2.relaxed == 0 and s2.skipped_done == 1


def test_keep_criteria_reject_collapsed_structure():
    from gencrystal.relax import RelaxResult

    a = Atoms("H2", positions=[[0, 0, 0], [0.2, 0, 0]], cell=[3, 3, 3], pbc=True)
    res = RelaxResult(atoms=a, energy=-1.0, energy_per_atom=-0.5, enthalpy_per_atom=-0.4, converged=True)
    assert "min distance" in KeepCriteria().reason_to_reject(res)
    res.atoms = Atoms("H2", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[3, 3, 3], pbc=True)
    assert KeepCriteria().reason_to_reject(res) is None
    res.converged = False
    assert KeepCriteria().reason_to_reject(res) == "not converged"


def test_bad_inputs_give_one_line_errors(tmp_path):
    from gencrystal.errors import GencrystalError

    pot = lj_potential()
    a = Atoms("Cu", cell=[2.5, 2.5, 2.5], pbc=True)
    with pytest.raises(GencrystalError, match="negative"):
        build_database([("x", a)], [-1.0], str(tmp_path / "x.db"), pot, progress=False)
    with pytest.raises(GencrystalError, match="occurs twice"):
        build_database([("x", a), ("x", a)], [0.0], str(tmp_path / "x.db"), pot, progress=False)
    with pytest.raises(GencrystalError, match="pressures is empty"):
        build_database([("x", a)], [], str(tmp_path / "x.db"), pot, progress=False)
