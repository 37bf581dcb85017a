"""CSP match rate / RMSE: self-match, shuffled pairs, perturbations, invariances, k-sample."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from gencrystal.errors import GencrystalError
from gencrystal.metrics.csp import csp_metrics
from gencrystal.metrics.io import Entry, pair_predictions
from gencrystal.metrics.matching import MATCH, NO_MATCH, TIMEOUT, rms_distances


def _score(refs, preds, mode="id", **kw):
    cands, _ = pair_predictions(refs, preds, mode=mode)
    return csp_metrics(refs, preds, cands, progress=False, **kw)


def test_self_match_rate_one_rmse_zero(mp20_slice):
    m, rows = _score(mp20_slice, mp20_slice, workers=2)
    wo = m["without_validity_filter"]
    assert wo["match_rate"] == 1.0 and wo["n_matched"] == len(mp20_slice)
    assert wo["rmse"] < 1e-6
    # with the paper's filter only pairs with valid reference (= valid prediction) count
    n_valid = sum(r.ref_struct_valid and r.ref_comp_valid for r in rows)
    assert 0 < n_valid < len(mp20_slice)  # MP-20 holds SMACT-invalid compositions
    assert m["match_rate"] == pytest.approx(n_valid / len(mp20_slice))
    assert m["rmse"] < 1e-6
    assert m["n_ref"] == m["n_pred"] == len(mp20_slice)
    assert m["protocol"]["matcher"]["stol"] == 0.5 and m["protocol"]["matcher"]["ltol"] == 0.3


def test_shuffled_assignment_matches_almost_nothing(mp20_slice):
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(mp20_slice))
    preds = [mp20_slice[i] for i in perm]
    m, _ = _score(mp20_slice, preds, mode="order", workers=2)
    assert m["without_validity_filter"]["match_rate"] <= 0.02


def _perturbed(s: Structure, direction: np.ndarray, amplitude: float) -> Structure:
    return Structure(s.lattice, s.species, s.cart_coords + amplitude * direction, coords_are_cartesian=True)


def test_rmse_grows_monotonically_with_perturbation(mp20_slice):
    refs = [e for e in mp20_slice if len(e.structure) >= 4][:40]
    rng = np.random.default_rng(1)
    dirs = [rng.normal(size=(len(e.structure), 3)) for e in refs]
    amps = [0.0, 0.02, 0.05, 0.1, 0.15]
    per_ref = []
    for a in amps:
        preds = [Entry(e.id, _perturbed(e.structure, d, a)) for e, d in zip(refs, dirs)]
        m, rows = _score(refs, preds, workers=1)
        per_ref.append([r.rmse for r in rows])
        # a perturbation breaks symmetry, so a few primitive cells grow and stop matching
        assert m["without_validity_filter"]["match_rate"] >= (1.0 if a == 0 else 0.85)
    # compare the same crystals at every amplitude: those that match throughout
    common = [i for i in range(len(refs)) if all(p[i] is not None for p in per_ref)]
    assert len(common) >= 30
    means = [float(np.mean([p[i] for i in common])) for p in per_ref]
    assert means[0] < 1e-6
    assert all(b > a for a, b in zip(means, means[1:])), means
    # per crystal too
    for i in common:
        seq = [p[i] for p in per_ref]
        assert all(b >= a - 1e-9 for a, b in zip(seq, seq[1:])), (refs[i].id, seq)


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q if np.linalg.det(q) > 0 else -q


def test_rotated_translated_permuted_copy_matches(mp20_slice):
    rng = np.random.default_rng(2)
    refs = mp20_slice[:40]
    preds = []
    for e in refs:
        s = e.structure
        rot = _rotation(rng)
        lat = s.lattice.matrix @ rot.T
        # a different but equivalent cell choice (unimodular integer transform)
        m = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
        new_lat = m @ lat
        cart = s.cart_coords @ rot.T + rng.normal(size=3) * 3.0
        perm = rng.permutation(len(s))
        species = [s.species[i] for i in perm]
        moved = Structure(Lattice(new_lat), species, cart[perm], coords_are_cartesian=True, to_unit_cell=True)
        preds.append(Entry(e.id, moved))
    m, rows = _score(refs, preds, workers=1)
    assert m["without_validity_filter"]["match_rate"] == 1.0
    assert m["without_validity_filter"]["rmse"] < 1e-4


def test_k_sample_takes_min_over_matching_candidates(mp20_slice):
    refs = [e for e in mp20_slice if len(e.structure) >= 4][:10]
    rng = np.random.default_rng(3)
    preds = []
    for e in refs:
        d = rng.normal(size=(len(e.structure), 3))
        other = mp20_slice[-1].structure  # a wrong crystal: never matches these refs' compositions
        preds += [Entry(f"{e.id}#0", other, {"ref_id": e.id}),
                  Entry(f"{e.id}#1", _perturbed(e.structure, d, 0.1), {"ref_id": e.id}),
                  Entry(f"{e.id}#2", _perturbed(e.structure, d, 0.03), {"ref_id": e.id})]
    m, rows = _score(refs, preds, workers=1)
    assert m["protocol"]["k"] == 3 and m["protocol"]["name"] == "3-sample"
    assert m["without_validity_filter"]["match_rate"] == 1.0
    # the first candidate (the wrong crystal) alone matches nothing
    assert m["first_candidate_1_sample"]["without_validity_filter"]["match_rate"] == 0.0
    m1, _ = _score(refs, [p for p in preds if p.id.endswith("#2")], workers=1)
    m2, _ = _score(refs, [p for p in preds if p.id.endswith("#1")], workers=1)
    assert m["without_validity_filter"]["rmse"] == pytest.approx(m1["without_validity_filter"]["rmse"])
    assert m1["without_validity_filter"]["rmse"] < m2["without_validity_filter"]["rmse"]
    assert all(r.best_pred_id.endswith("#2") for r in rows)


def _nacl(a=5.64):
    return Structure(Lattice.cubic(a), ["Na"] * 4 + ["Cl"] * 4,
                     [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]])


def _nacl2():
    # SMACT-invalid composition, structurally fine
    return Structure(Lattice.cubic(6.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [.5, .5, .5], [0, .5, .5]])


def test_smact_invalid_composition_never_counts_with_filter():
    refs = [Entry("ok", _nacl()), Entry("bad", _nacl2())]
    m, rows = _score(refs, [Entry("ok", _nacl()), Entry("bad", _nacl2())])
    assert m["without_validity_filter"]["match_rate"] == 1.0
    assert m["match_rate"] == 0.5
    assert rows[1].ref_comp_valid is False and rows[1].matched and not rows[1].matched_filtered


def _pair_at(d: float) -> Structure:
    # NaCl "molecule" in a 5 Å box: structurally invalid when d < 0.5 Å
    return Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [d / 5.0, 0, 0]])


def test_validity_modes_differ_as_documented():
    refs = [Entry("r", _pair_at(0.45))]        # invalid reference (0.45 Å < 0.5 Å)
    pred = Entry("r", _pair_at(0.55))          # valid prediction that matches it
    one, _ = _score(refs, [pred], validity_mode="paper")
    assert one["without_validity_filter"]["match_rate"] == 1.0
    # 1-sample: DiffCSP needs pred and ref valid -> not counted; CDVAE's RecEval (pred only) counts it
    assert one["match_rate"] == 0.0
    assert _score(refs, [pred], validity_mode="pred")[0]["match_rate"] == 1.0
    assert _score(refs, [pred], validity_mode="both")[0]["match_rate"] == 0.0
    # k-sample: DiffCSP's RecEvalBatch checks only the prediction -> counted; "both" keeps it out
    k2 = [pred, Entry("r", _pair_at(0.56))]
    assert _score(refs, k2, validity_mode="paper")[0]["match_rate"] == 1.0
    assert _score(refs, k2, validity_mode="pred")[0]["match_rate"] == 1.0
    assert _score(refs, k2, validity_mode="both")[0]["match_rate"] == 0.0
    with pytest.raises(GencrystalError, match="validity_mode"):
        _score(refs, [pred], validity_mode="nope")


def test_invalid_predictions_never_count_with_filter():
    refs = [Entry("r", _pair_at(0.8))]
    bad = Entry("r", _pair_at(0.45))
    m, rows = _score(refs, [bad])
    assert m["without_validity_filter"]["match_rate"] == 1.0 and m["match_rate"] == 0.0
    assert rows[0].n_valid_candidates == 0


def test_missing_predictions_count_as_unmatched(mp20_slice):
    refs = mp20_slice[:10]
    m, rows = _score(refs, refs[:5])
    assert m["without_validity_filter"]["match_rate"] == 0.5
    assert m["n_ref_with_pred"] == 5
    assert [r.n_candidates for r in rows] == [1] * 5 + [0] * 5


def test_pairing_errors():
    refs = [Entry("a", _nacl()), Entry("b", _nacl())]
    with pytest.raises(GencrystalError, match="no prediction id matches"):
        pair_predictions(refs, [Entry("zzz", _nacl())], mode="id")
    with pytest.raises(GencrystalError, match="multiple of 2"):
        pair_predictions(refs, [Entry("x", _nacl())] * 3, mode="order")
    with pytest.raises(GencrystalError, match="occurs twice"):
        pair_predictions([Entry("a", _nacl())] * 2, [Entry("a", _nacl())], mode="id")
    cands, unpaired = pair_predictions(refs, [Entry("p1", _nacl(), {"ref_id": "b"}), Entry("q", _nacl())], mode="id")
    assert cands == [[], [0]] and unpaired == [1]


def test_rms_distances_statuses_and_timeout():
    s = _nacl()
    res = rms_distances([(s, s), (s, _nacl2()), (None, s)], workers=1, progress=False)
    assert res[0][2] == MATCH and res[0][0] < 1e-8
    assert res[1][2] == NO_MATCH and res[1][0] is None
    assert res[2][2] == "skipped"
    # a timeout far below one matcher call's cost is reported as such, not as a crash
    big = Structure(Lattice.cubic(12.0), ["Si"] * 64, np.random.default_rng(0).random((64, 3)))
    res = rms_distances([(big, big)], workers=1, timeout_s=1e-4, progress=False)
    assert res[0][2] == TIMEOUT


def test_parallel_equals_serial(mp20_slice):
    pairs = [(e.structure, e.structure) for e in mp20_slice[:16]] + [(mp20_slice[0].structure, mp20_slice[1].structure)]
    a = rms_distances(pairs, workers=1, progress=False)
    b = rms_distances(pairs, workers=2, progress=False)
    assert [x[2] for x in a] == [x[2] for x in b]
    assert np.allclose([x[0] or 0 for x in a], [x[0] or 0 for x in b])


@pytest.mark.slow
def test_full_mp20_test_set_against_itself(mp20_test_csv):
    """All 9,046 MP-20 test crystals scored against themselves (~1-2 min on 2 cores)."""
    from gencrystal.metrics.io import read_entries

    refs = read_entries(mp20_test_csv)
    assert len(refs) == 9046
    m, rows = _score(refs, refs, workers=2, timeout_s=60)
    assert m["without_validity_filter"]["match_rate"] == 1.0
    assert m["without_validity_filter"]["rmse"] < 1e-6
    assert m["match_rate"] == pytest.approx(m["n_ref_valid"] / 9046)


def test_parallel_timeouts_are_reported():
    big = Structure(Lattice.cubic(12.0), ["Si"] * 64, np.random.default_rng(0).random((64, 3)))
    s = _nacl()
    res = rms_distances([(big, big), (s, s), (big, big)], workers=2, timeout_s=1e-4, progress=False)
    assert res[0][2] == TIMEOUT and res[2][2] == TIMEOUT and res[1][2] in (TIMEOUT, MATCH)
    res = rms_distances([(s, s), (s, _nacl2())], workers=2, timeout_s=30, progress=False)
    assert [r[2] for r in res] == [MATCH, NO_MATCH]


def test_a_pair_stuck_where_sigalrm_cannot_reach_is_recovered_with_one_worker(monkeypatch):
    """A matcher call that SIGALRM cannot interrupt (pymatgen's C code on a degenerate lattice;
    here: the alarm blocked while it sleeps) becomes a timeout, and the other pairs still get
    scored, with workers=1 too (the pairs run in a forked worker under the pool's watchdog)."""
    import signal
    import time

    from gencrystal.metrics import matching

    real = matching._one

    def stuck_on_the_big_one(pair):
        if pair[0] is not None and len(pair[0]) == 3:  # the 3-site "degenerate" structure
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
        return real(pair)

    monkeypatch.setattr(matching, "_one", stuck_on_the_big_one)
    s = _nacl()
    odd = Structure(Lattice.cubic(4.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.2, 0.1, 0.3]])
    t0 = time.time()
    res = rms_distances([(s, s), (odd, s), (s, _nacl2())], workers=1, timeout_s=0.5, progress=False)
    assert [r[2] for r in res] == [MATCH, TIMEOUT, NO_MATCH]
    assert time.time() - t0 < 45  # the watchdog (3 x timeout + 30 s), not the 60 s sleep
