"""Train/test leakage of a CSP split: test compositions and test structures also present in train/val.

The standard random splits of perov-5 and MP-20 put polymorphs of one composition on
both sides, and carbon-24 (one composition) holds many duplicate structures: a CSP model
can then "predict" a test crystal it has seen in training. :func:`leakage_report` counts,
for a test split against one or more other splits,

- test **compositions** (reduced formulas, so Fe4O6 and Fe2O3 are one) that occur in
  the other split(s), and the test structures that carry them;
- test **structures** that are StructureMatcher duplicates of a structure in the other
  split(s) (:func:`gencrystal.metrics.dng.novelty_flags`: MatterGen's matcher, ltol 0.2,
  stol 0.3, angle_tol 5°, by default; only structures of the same reduced formula are
  compared).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

from pymatgen.core import Structure

from gencrystal.metrics.dng import novelty_flags


def reduced_formula(structure: Structure) -> str:
    """The reduced formula of a structure (the composition key of the leakage counts and the splits)."""
    return structure.composition.reduced_formula


def leakage_report(
    test: Sequence[Structure], others: Mapping[str, Sequence[Structure]], matcher: str = "novelty", structures: bool = True
) -> dict[str, Any]:
    """Leakage of ``test`` into each split of ``others`` and into all of them together.

    Returns ``{"n_test", "n_test_compositions", "matcher", "against": {name: counts, ...,
    "+".join(names): counts}}`` where counts are ``n_compositions_shared`` (distinct test
    compositions found in that split), ``n_test_structures_with_shared_composition`` and,
    when ``structures``, ``n_test_structures_duplicated`` (test structures matching one of
    that split's structures), each with the fraction of the test split.
    """
    test_keys = [reduced_formula(s) for s in test]
    test_comps = set(test_keys)
    n = len(test)

    def counts(pool: Sequence[Structure]) -> dict[str, Any]:
        keys = {reduced_formula(s) for s in pool}
        shared = test_comps & keys
        rows = sum(1 for k in test_keys if k in shared)
        out: dict[str, Any] = {
            "n_other": len(pool),
            "n_compositions_shared": len(shared),
            "fraction_test_compositions_shared": len(shared) / len(test_comps) if test_comps else 0.0,
            "n_test_structures_with_shared_composition": rows,
            "fraction_test_structures_with_shared_composition": rows / n if n else 0.0,
        }
        if structures:
            cand = [s for s, k in zip(test, test_keys) if k in shared]
            dup = sum(
                not novel for novel in novelty_flags(cand, [s for s in pool if reduced_formula(s) in shared], matcher=matcher)
            )
            out["n_test_structures_duplicated"] = dup
            out["fraction_test_structures_duplicated"] = dup / n if n else 0.0
        return out

    against = {name: counts(pool) for name, pool in others.items()}
    if len(others) > 1:
        against["+".join(others)] = counts([s for pool in others.values() for s in pool])
    per_comp = Counter(test_keys)
    return {
        "n_test": n,
        "n_test_compositions": len(test_comps),
        "max_test_structures_per_composition": max(per_comp.values(), default=0),
        "matcher": matcher if structures else None,
        "against": against,
    }
