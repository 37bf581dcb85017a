"""METRe and cRMSE on closed-form cases: polymorphs, duplicates, a miss, integer multiples of a formula."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from gencrystal.errors import GencrystalError
from gencrystal.matching import make_matcher
from gencrystal.metrics.csp import csp_metrics
from gencrystal.metrics.io import Entry, pair_predictions
from gencrystal.metrics.metre import capped_rmse, composition_key, metre_metrics


def rocksalt(a: float = 5.64, el=("Na", "Cl")) -> Structure:
    """Conventional rock-salt cell (8 atoms)."""
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(el), [[0, 0, 0], [0.5, 0.5, 0.5]])


def cscl(a: float = 3.4, el=("Na", "Cl")) -> Structure:
    """CsCl-type cell (2 atoms): a different polymorph of the same AB composition."""
    return Structure(Lattice.cubic(a), list(el), [[0, 0, 0], [0.5, 0.5, 0.5]])


def entry(sid: str, s: Structure, ref_id: str | None = None) -> Entry:
    return Entry(sid, s, {"ref_id": ref_id} if ref_id else {})


def _both(refs, preds):
    cands, _ = pair_predictions(refs, preds, mode="id")
    std, _ = csp_metrics(refs, preds, cands, progress=False, validity_mode="pred")
    met, rows = metre_metrics(refs, preds, progress=False)
    return std["without_validity_filter"], met, rows


def test_polymorphs_swapped_standard_misses_metre_finds_both():
    refs = [entry("rs", rocksalt()), entry("cs", cscl())]
    preds = [entry("p0", cscl(), "rs"), entry("p1", rocksalt(5.5), "cs")]  # each polymorph generated for the other
    std, met, rows = _both(refs, preds)
    assert std["match_rate"] == 0.0 and std["crmse"] == pytest.approx(0.5)
    assert met["metre"] == 1.0
    assert met["n_pairs"] == 4 and met["n_compositions"] == 1
    # rs matched by p1 (rescaled lattice: RMSE ~ 0), cs by p0
    assert {r.ref_id: r.best_pred_id for r in rows} == {"rs": "p1", "cs": "p0"}
    assert met["crmse"] == pytest.approx(0.0, abs=1e-6)


def test_duplicate_references_one_prediction_matches_both():
    refs = [entry("a", rocksalt()), entry("a_dup", rocksalt(5.70))]
    preds = [entry("p", rocksalt(), "a")]
    std, met, _ = _both(refs, preds)
    assert std["match_rate"] == 0.5 and std["crmse"] == pytest.approx(0.25, abs=1e-6)
    assert met["metre"] == 1.0 and met["n_matched"] == 2


def test_a_miss_costs_stol_and_other_compositions_are_not_compared():
    refs = [entry("nacl", rocksalt()), entry("kcl", rocksalt(6.3, ("K", "Cl")))]
    preds = [entry("p_nacl", rocksalt(), "nacl"), entry("p_kcl", cscl(3.8, ("K", "Cl")), "kcl")]
    std, met, rows = _both(refs, preds)
    assert met["metre"] == 0.5 and std["match_rate"] == 0.5
    assert met["crmse"] == pytest.approx(0.25, abs=1e-6)  # (0 + stol) / 2
    assert met["n_pairs"] == 2  # NaCl vs KCl never compared
    kcl = next(r for r in rows if r.ref_id == "kcl")
    assert not kcl.matched and kcl.capped_rmse == 0.5 and kcl.n_same_composition_preds == 1


def test_integer_multiple_of_formula_is_compared_and_matches():
    ref = rocksalt().get_primitive_structure()            # Na1Cl1
    big = rocksalt()                                       # Na4Cl4
    big.make_supercell([2, 1, 1])                          # Na8Cl8
    assert composition_key(big) == composition_key(ref) == "NaCl"
    met, rows = metre_metrics([entry("r", ref)], [entry("p", big)], progress=False)
    assert met["metre"] == 1.0 and rows[0].rmse == pytest.approx(0.0, abs=1e-6)


def test_crmse_uses_the_matchers_rmse_of_a_perturbed_match():
    ref = cscl()  # a 2-atom primitive cell stays primitive when one atom moves
    pert = Structure(ref.lattice, ref.species, [[0, 0, 0], [0.5, 0.53, 0.56]])
    expected = make_matcher("csp").get_rms_dist(pert, ref)[0]
    assert 0.01 < expected < 0.5
    refs = [entry("r", ref), entry("miss", cscl(3.9, ("K", "Br")))]
    met, _ = metre_metrics(refs, [entry("p", pert)], progress=False)
    assert met["metre"] == 0.5
    assert met["crmse"] == pytest.approx((expected + 0.5) / 2)
    assert met["rmse_matched"] == pytest.approx(expected)


def test_unreadable_prediction_and_no_prediction_count_as_misses():
    refs = [entry("r", rocksalt())]
    met, rows = metre_metrics(refs, [Entry("broken", None)], progress=False)
    assert met["metre"] == 0.0 and met["crmse"] == 0.5 and met["n_pairs"] == 0
    assert met["n_ref_without_same_composition_pred"] == 1


def test_capped_rmse_closed_form_and_limits():
    assert capped_rmse([0.1, None, 0.3, None], 0.5) == pytest.approx((0.1 + 0.5 + 0.3 + 0.5) / 4)
    assert np.isnan(capped_rmse([], 0.5))
    with pytest.raises(GencrystalError, match="max_pairs"):
        metre_metrics([entry("r", rocksalt())], [entry(f"p{i}", rocksalt()) for i in range(3)], max_pairs=2,
                      progress=False)


def test_evaluate_csp_protocol_metre_cli(tmp_path, capsys):
    from gencrystal.cli import main
    from gencrystal.io import write_extxyz
    from gencrystal.structures import to_atoms

    def frames(items):
        out = []
        for sid, s, ref_id in items:
            a = to_atoms(s)
            a.info["id"] = sid
            if ref_id:
                a.info["ref_id"] = ref_id
            out.append(a)
        return out

    write_extxyz(frames([("rs", rocksalt(), None), ("cs", cscl(), None)]), tmp_path / "ref.extxyz")
    write_extxyz(frames([("p0", cscl(), "rs"), ("p1", rocksalt(5.5), "cs")]), tmp_path / "pred.extxyz")
    out = tmp_path / "out"
    rc = main(["evaluate", "csp", f"pred={tmp_path / 'pred.extxyz'}", f"ref={tmp_path / 'ref.extxyz'}", f"out={out}",
               "protocol=metre", "workers=1", "progress=false", "plots=false", "validity_mode=pred"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["without_validity_filter"]["match_rate"] == 0.0 and m["without_validity_filter"]["crmse"] == 0.5
    assert m["metre"]["metre"] == 1.0 and m["metre"]["crmse"] < 1e-6
    assert (out / "per_structure_metre.csv").read_text().splitlines()[0].startswith("ref_id,")
    assert "METRe 100.00 %" in capsys.readouterr().out
    assert main(["evaluate", "csp", f"pred={tmp_path / 'pred.extxyz'}", f"ref={tmp_path / 'ref.extxyz'}",
                 f"out={tmp_path / 'bad'}", "protocol=everyone"]) == 2
    assert not (tmp_path / "bad").exists()


def _mixed_pool() -> list[Structure]:
    """NaCl cells that reduce to 1, 2 and 8+ sites, rattled copies and supercells (so reduction matters)."""
    rng = np.random.default_rng(3)
    out = [rocksalt(), rocksalt(5.5), cscl(), cscl(3.6)]
    big = rocksalt()
    big.make_supercell([2, 1, 1])
    out.append(big)
    for base in (rocksalt(), cscl()):
        r = base.copy()
        r.perturb(0.15, min_distance=0.05, seed=int(rng.integers(1 << 30)))
        out.append(r)
    odd = Structure(Lattice.orthorhombic(3.9, 4.3, 5.1), ["Na", "Cl"] * 2, rng.random((4, 3)))
    out.append(odd)
    return out


@pytest.mark.parametrize("workers, timeout_s", [(1, 0.0), (2, 30.0)])
def test_reduce_once_gives_get_rms_dist_values(workers, timeout_s):
    from gencrystal.metrics.matching import rms_distances

    pool = _mixed_pool()
    pairs = [(a, b) for a in pool for b in pool] + [(None, pool[0])]
    plain = rms_distances(pairs, workers=workers, timeout_s=timeout_s, progress=False)
    once = rms_distances(pairs, workers=workers, timeout_s=timeout_s, progress=False, reduce_once=True)
    assert [r[2] for r in once] == [r[2] for r in plain]
    assert {r[2] for r in plain} >= {"match", "no_match", "skipped"}
    for a, b in zip(plain, once):
        if a[2] == "match":
            assert b[0] == pytest.approx(a[0], abs=1e-9) and b[1] == pytest.approx(a[1], abs=1e-9)


def test_reduce_once_skips_pairs_of_different_reduced_size(monkeypatch):
    """Cells whose reduced site counts differ are never handed to the matcher (no supercell matching)."""
    from gencrystal.metrics import matching

    calls = []
    real = matching._rms_of_reduced
    monkeypatch.setattr(matching, "_rms_of_reduced", lambda sm, p, r: calls.append((len(p), len(r))) or real(sm, p, r))
    big = rocksalt()
    big.make_supercell([2, 1, 1])
    sizes = {"rs": rocksalt(), "rs_big": big, "cs": cscl()}
    pairs = [(a, b) for a in sizes.values() for b in sizes.values()]
    res = matching.rms_distances(pairs, workers=1, timeout_s=0.0, progress=False, reduce_once=True)
    assert len(calls) == 9 and set(calls) == {(2, 2)}  # every rock-salt cell reduces to 2 sites, as CsCl
    assert all(r[2] == "match" for r in res[:2])
    odd = Structure(Lattice.cubic(4.0), ["Na", "Cl"] * 2, [[0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3], [0.6, 0.3, 0.8]])
    calls.clear()
    res = matching.rms_distances([(odd, cscl()), (odd, odd)], workers=1, timeout_s=0.0, progress=False, reduce_once=True)
    assert [r[2] for r in res] == ["no_match", "match"] and calls == [(4, 4)]
