"""Structure search baselines on one potential: AIRSS-like random search, CALYPSO-like
particle-swarm optimisation, and sampling from the trained generative model.

Public API::

    from gencrystal.search import run_search, RandomSearch, PSOSearch, GenerativeSearch
    res = run_search("SiO2", 50.0, RandomSearch(), budget=20, db_url="out/candidates.db",
                     out_dir="out", potential="chgnet", formula_units=[2], seed=0)
"""

from gencrystal.search.methods import Candidate, GenerativeSearch, Proposal, PSOSearch, RandomSearch, SearchMethod
from gencrystal.search.runner import SearchResult, load_candidates, run_search, search_identity

__all__ = [
    "Candidate",
    "GenerativeSearch",
    "PSOSearch",
    "Proposal",
    "RandomSearch",
    "SearchMethod",
    "SearchResult",
    "load_candidates",
    "run_search",
    "search_identity",
]
