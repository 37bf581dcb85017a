"""Active learning from DFT: a CHGNet committee that knows where it extrapolates.

Public API::

    from gencrystal.learn import load_committee, load_committee_potential, ActiveLearningLoop
    committee = load_committee("outputs/learn/iter_002/committee")
    atoms.calc = committee.calculator()        # committee mean; spread in calc.results
    atoms.get_potential_energy(); atoms.calc.results["stress_std"]   # GPa
    pot = load_committee_potential("outputs/learn/iter_002/committee")   # a gencrystal.potentials.Potential

``gencrystal learn composition=Li2 pressures=[0,25,50] iterations=3 out=DIR db=...`` runs
:class:`ActiveLearningLoop` (see ``docs/learn.md``).
"""

from gencrystal.potentials.committee import (
    Committee,
    CommitteeCalculator,
    Spread,
    is_committee_dir,
    load_committee,
    load_committee_potential,
)
from gencrystal.learn.finetune import FinetuneSettings, train_committee
from gencrystal.learn.labels import LabelStore, dft_single_point, structure_hash
from gencrystal.learn.loop import ActiveLearningLoop
from gencrystal.learn.select import UncertaintyPolicy, distance_fingerprint, select_frames

__all__ = [
    "ActiveLearningLoop",
    "Committee",
    "CommitteeCalculator",
    "FinetuneSettings",
    "LabelStore",
    "Spread",
    "UncertaintyPolicy",
    "dft_single_point",
    "distance_fingerprint",
    "is_committee_dir",
    "load_committee",
    "load_committee_potential",
    "select_frames",
    "structure_hash",
    "train_committee",
]
