"""Known high-pressure phases for the "how many structures to locate it" benchmark.

Structures come from the AFLOW prototype library that ships with pymatgen
(``pymatgen/analysis/prototypes/aflow_prototypes.json.gz``; Mehl et al., Comput. Mater.
Sci. 136, S1 (2017) and Hicks et al., 161, S1 (2019)), element-substituted onto the
prototype's sites and rescaled so that the shortest bond equals the sum of covalent
radii (the potential's relaxation at the target pressure sets the final volume).

Published anchors (Cond-CDVAE paper, mean number of samples to locate the phase;
CALYPSO's number in parentheses, None = not found) are kept beside each target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError


@dataclass(frozen=True)
class KnownPhase:
    """A target: composition (reduced formula and Z), pressure (GPa), AFLOW prototype and
    the element map onto its species, with the published anchor numbers."""

    key: str
    name: str
    formula: str
    formula_units: int
    pressure_gpa: float
    aflow_label: str
    prototype_tag: str  # strukturbericht or mineral name that singles out the library entry
    substitution: tuple[tuple[str, str], ...]
    cond_cdvae_mean: float | None
    calypso: float | None

    def anchor_text(self) -> str:
        cc = "–" if self.cond_cdvae_mean is None else f"{self.cond_cdvae_mean:g}"
        ca = "not found" if self.calypso is None else f"{self.calypso:g}"
        return f"{cc} ({ca})"


KNOWN_PHASES: dict[str, KnownPhase] = {p.key: p for p in [
    KnownPhase("li_ci16", "Li cI16", "Li", 8, 50.0, "A_cI16_220_c", "High pressure (38.9 GPa) phase of lithium",
               (("Li", "Li"),), 566, 50),
    KnownPhase("sio2_quartz", "SiO2 α-quartz", "SiO2", 3, 0.0, "A2B_hP9_152_c_a", "quartz (alpha)",
               (("Si", "Si"), ("O", "O")), 62.8, 189),
    KnownPhase("sio2_coesite", "SiO2 coesite", "SiO2", 8, 5.0, "A2B_mC48_15_ae3f_2f", "Coesite",
               (("Si", "Si"), ("O", "O")), 328, None),
    KnownPhase("sio2_rutile", "SiO2 rutile-type (stishovite)", "SiO2", 2, 50.0, "A2B_tP6_136_f_a", "Rutile",
               (("Ti", "Si"), ("O", "O")), 5, 90),
    KnownPhase("sio2_cacl2", "SiO2 CaCl2-type", "SiO2", 2, 80.0, "AB2_oP6_58_a_g", "Hydrophilite",
               (("Ca", "Si"), ("Cl", "O")), 10.2, 61),
    KnownPhase("sio2_pyrite", "SiO2 pyrite-type", "SiO2", 4, 300.0, "AB2_cP12_205_a_c", "Pyrite",
               (("Fe", "Si"), ("S", "O")), 28.8, 66),
    KnownPhase("b_alpha12", "B α-B12", "B", 12, 0.0, "A_hR12_166_2h", "alpha boron", (("B", "B"),), 74, 392),
    KnownPhase("b_alpha_ga", "B α-Ga-type", "B", 4, 100.0, "A_oC8_64_f", "A11", (("Ga", "B"),), 58, 78),
]}


def prototype_structure(phase: KnownPhase) -> Atoms:
    """The element-substituted AFLOW prototype of ``phase`` (atoms sorted by atomic number),
    scaled so that its shortest bond (between different species, when there are several)
    is the sum of covalent radii."""
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
    from pymatgen.core import Element

    from gencrystal.search.generate import sort_by_species
    from gencrystal.structures import to_atoms

    entries = [e for e in AFLOW_PROTOTYPE_LIBRARY if e["tags"].get("aflow") == phase.aflow_label]
    if len(entries) > 1:
        entries = [e for e in entries if phase.prototype_tag in (e["tags"].get("mineral"), e["tags"].get("strukturbericht"))]
    if len(entries) != 1:
        raise GencrystalError(f"AFLOW prototype {phase.aflow_label} ({phase.prototype_tag}) not found in pymatgen's library")
    s = entries[0]["snl"].structure.copy()
    s.replace_species({Element(a): Element(b) for a, b in phase.substitution})
    if s.composition.reduced_formula != phase.formula:
        raise GencrystalError(f"{phase.name}: substituted prototype is {s.composition.reduced_formula}, expected {phase.formula}")
    atoms = sort_by_species(to_atoms(s))
    from ase.data import covalent_radii

    dm = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e9
    if len(set(atoms.numbers)) > 1:  # scale on the shortest bond between different species
        dm = dm + 1e9 * (atoms.numbers[:, None] == atoms.numbers[None, :])
    i, j = np.unravel_index(np.argmin(dm), dm.shape)
    target = covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]
    atoms.set_cell(atoms.cell.array * (target / dm[i, j]), scale_atoms=True)
    n_fu = len(atoms) / sum(int(v) for v in s.composition.reduced_composition.as_dict().values())
    if int(round(n_fu)) != phase.formula_units:
        raise GencrystalError(f"{phase.name}: prototype cell has Z={n_fu:g}, expected {phase.formula_units}")
    return atoms


def matches(candidate: Atoms, reference: Atoms, kind: str = "loose") -> bool:
    """True when ``candidate`` is the ``reference`` phase under the named tolerance set of
    :func:`gencrystal.matching.make_matcher` (Cond-CDVAE's loose / medium / strict)."""
    from gencrystal.matching import make_matcher
    from gencrystal.structures import to_structure

    return bool(make_matcher(kind).fit(to_structure(candidate), to_structure(reference)))
