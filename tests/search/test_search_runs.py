"""Search runs on a cheap potential (ASE EMT): every candidate in the database, outputs,
resumption without repeats or losses, PSO progress."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gencrystal.db.schema import connect
from gencrystal.search import PSOSearch, RandomSearch, load_candidates, run_search

RELAX = {"fmax": 0.05, "steps": 150}


@pytest.fixture(scope="module")
def emt():
    from ase.calculators.emt import EMT

    from gencrystal.potentials import calculator_potential

    return calculator_potential(EMT, "emt-test")


class Killed(KeyboardInterrupt):
    pass


def killing_relax(after: int, counter: dict):
    from gencrystal.relax import relax_structures

    def relax(atoms_list, **kw):
        ids = kw.pop("ids")
        out = []
        for a, sid in zip(atoms_list, ids):
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


def signature(db_url, search_id):
    cands = load_candidates(connect(db_url), search_id)
    return [(i, c.generation, c.origin, c.particle, c.ok,
             None if not c.ok else round(c.enthalpy_per_atom, 8), tuple(np.round(c.atoms.cell.cellpar(), 4)))
            for i, c in sorted(cands.items())]


def _resume_case(tmp_path, emt, method_factory, formula, z, budget, kill_after, chunk):
    ref = run_search(formula, 0.0, method_factory(), budget, str(tmp_path / "ref.db"), tmp_path / "ref", emt,
                     formula_units=[z], seed=3, relax_options=RELAX, chunk=chunk, progress=False)
    url = str(tmp_path / "killed.db")
    counter = {"n": 0}
    with pytest.raises(Killed):
        run_search(formula, 0.0, method_factory(), budget, url, tmp_path / "killed", emt, formula_units=[z], seed=3,
                   relax_options=RELAX, chunk=chunk, progress=False, relax_fn=killing_relax(kill_after, counter))
    n_saved = connect(url).count()
    # whole chunks only: the chunk in flight is lost, everything before it is kept
    assert kill_after - chunk < n_saved <= kill_after
    again = {"n": 0}
    res = run_search(formula, 0.0, method_factory(), budget, url, tmp_path / "killed", emt, formula_units=[z], seed=3,
                     relax_options=RELAX, chunk=chunk, progress=False, relax_fn=counting_relax(again))
    assert again["n"] == budget - n_saved  # nothing relaxed twice
    assert res.n_new == budget - n_saved and res.n_done == budget
    assert signature(url, res.search_id) == signature(str(tmp_path / "ref.db"), ref.search_id)
    rows = list(connect(url).select(search_id=res.search_id))
    assert sorted(r.candidate for r in rows) == list(range(budget))  # no duplicates, no losses
    # running again with the same budget relaxes nothing
    third = {"n": 0}
    run_search(formula, 0.0, method_factory(), budget, url, tmp_path / "killed", emt, formula_units=[z], seed=3,
               relax_options=RELAX, chunk=chunk, progress=False, relax_fn=counting_relax(third))
    assert third["n"] == 0 and connect(url).count() == budget
    return res


def test_random_search_resumes_without_repeats(tmp_path, emt):
    _resume_case(tmp_path, emt, lambda: RandomSearch(chunk=2), "Cu", 2, budget=5, kill_after=3, chunk=2)


def test_pso_search_resumes_mid_generation(tmp_path, emt):
    res = _resume_case(tmp_path, emt, lambda: PSOSearch(population=3, fresh_fraction=0.34), "Cu", 2, budget=7,
                       kill_after=4, chunk=2)
    assert {c.generation for c in res.candidates} == {0, 1, 2}


def test_every_candidate_is_in_the_database_and_outputs(tmp_path, emt):
    res = run_search("AuCu", 0.0, RandomSearch(chunk=2), 4, str(tmp_path / "c.db"), tmp_path / "out", emt,
                     formula_units=[1], seed=0, relax_options=RELAX, chunk=2, progress=False)
    db = connect(str(tmp_path / "c.db"))
    rows = {r.candidate: r for r in db.select(search_id=res.search_id)}
    assert sorted(rows) == [0, 1, 2, 3]
    for c in res.candidates:
        r = rows[c.index]
        assert r.id == c.row_id and r.method == "random" and r.level_of_theory == "emt-test"
        assert r.source == "search:random" and r.pressure_gpa == 0.0 and r.generation == 0
        assert r.toatoms().get_chemical_formula() == "AuCu"
        if c.ok:
            assert math.isclose(r.enthalpy_per_atom, c.enthalpy_per_atom)
    ranking = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert sorted(x["candidate"] for x in ranking) == [0, 1, 2, 3]
    ok = [x["enthalpy_per_atom"] for x in ranking if x["status"] == "ok"]
    assert ok == sorted(ok)
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert state["n_done"] == 4 and state["best"]["enthalpy_per_atom"] == min(ok)
    curve = [v for v in state["convergence"] if v is not None]
    assert all(b <= a for a, b in zip(curve, curve[1:]))  # best-so-far never rises
    assert (tmp_path / "out" / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    from ase.io import read

    best = read(tmp_path / "out" / "best.extxyz", index=0)
    assert math.isclose(best.info["enthalpy_per_atom"], min(ok))


def test_pso_candidates_record_parentage(tmp_path, emt):
    res = run_search("Cu", 0.0, PSOSearch(population=3, fresh_fraction=0.34), 6, str(tmp_path / "p.db"), None, emt,
                     formula_units=[2], seed=1, relax_options=RELAX, chunk=3, progress=False)
    db = connect(str(tmp_path / "p.db"))
    moved = [r for r in db.select(search_id=res.search_id) if r.origin == "pso"]
    assert moved, "generation 1 holds PSO moves"
    for r in moved:
        parent = db.get(id=r.parent_id)
        assert parent.search_id == res.search_id and parent.generation == r.generation - 1
        assert r.particle == parent.particle
        assert r.data["velocity_frac"].shape == (r.natoms, 3)


def test_bad_search_inputs(tmp_path, emt):
    from gencrystal.errors import GencrystalError

    with pytest.raises(GencrystalError, match="budget"):
        run_search("Cu", 0.0, RandomSearch(), 0, str(tmp_path / "x.db"), None, emt, progress=False)
    with pytest.raises(GencrystalError, match="negative"):
        run_search("Cu", -3, RandomSearch(), 2, str(tmp_path / "x.db"), None, emt, progress=False)
    with pytest.raises(GencrystalError, match="unknown element"):
        run_search("Xq2", 0.0, RandomSearch(), 2, str(tmp_path / "x.db"), None, emt, progress=False)
    with pytest.raises(GencrystalError, match="population"):
        PSOSearch(population=1)


@pytest.mark.slow
def test_pso_lowers_the_best_enthalpy_over_generations(tmp_path, emt):
    """AuCu (Z = 2) with EMT: generation 0 (random) misses the best structure that later
    generations reach through PSO moves."""
    pop = 5
    res = run_search("AuCu", 0.0, PSOSearch(population=pop, fresh_fraction=0.4), 3 * pop, str(tmp_path / "p.db"), None,
                     emt, formula_units=[2], seed=2, relax_options=RELAX, chunk=pop, progress=False)
    best_by_gen = {}
    for c in res.candidates:
        if c.ok:
            best_by_gen[c.generation] = min(best_by_gen.get(c.generation, math.inf), c.enthalpy_per_atom)
    running = np.minimum.accumulate([best_by_gen[g] for g in sorted(best_by_gen)])
    assert running[-1] < running[0] - 1e-3  # lower by more than 1 meV/atom
    assert res.best.origin == "pso" and res.best.generation >= 1
