"""One catalogue of known crystal structures (Å, GPa): the demo's reference phases, the
shipped model's seed prototypes and the targets of the known-phase benchmark.

:data:`STRUCTURES` holds each structure once, by id (``"SiO2-stishovite"``):

- textbook structures built from their space group and Wyckoff positions (ASE ``crystal`` /
  ``bulk``) with ambient or near-ambient experimental lattice parameters — starting points
  for a relaxation at a pressure, not results;
- three phases taken from the AFLOW prototype library that ships with pymatgen
  (``aflow_prototypes.json.gz``; Mehl et al., Comput. Mater. Sci. 136, S1 (2017); Hicks
  et al., 161, S1 (2019)), element-substituted and scaled so that the shortest bond is the
  sum of covalent radii: coesite, pyrite-type SiO2 and α-Ga-type B.

:func:`prototypes` is the seed set's structure list (``data/fixtures/hp_seeds.extxyz``),
:data:`DEMO_REFERENCES` what the demo relaxes beside its samples, and :data:`TARGETS` the
benchmark targets: a structure, the formula units Z of the searched cell, the pressure and
the published Cond-CDVAE / CALYPSO numbers (mean structures to locate the phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from ase import Atoms

from gencrystal.errors import GencrystalError


@dataclass(frozen=True)
class KnownStructure:
    """A known crystal structure: ``id``, reduced ``formula``, space-group number, where its
    cell comes from, and the builder of its cell (Å)."""

    id: str
    formula: str
    space_group: int
    source: str
    build: Callable[[], Atoms]

    def atoms(self) -> Atoms:
        """A fresh copy of the structure, periodic, with ``info['id']`` set."""
        atoms = self.build().copy()
        atoms.pbc = True
        atoms.info = {"id": self.id}
        return atoms


def _primitive(atoms: Atoms) -> Atoms:
    """The spglib primitive cell of ``atoms`` (pymatgen), Niggli-reduced."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from gencrystal.structures import to_atoms, to_structure

    s = SpacegroupAnalyzer(to_structure(atoms), symprec=1e-3).get_primitive_standard_structure()
    return to_atoms(s.get_reduced_structure())


def _bulk(symbol: str, kind: str, **kw) -> Callable[[], Atoms]:
    def build() -> Atoms:
        from ase.build import bulk

        return bulk(symbol, kind, **kw)
    return build


def _crystal(symbols, basis, spacegroup: int, cellpar, primitive: bool = False) -> Callable[[], Atoms]:
    def build() -> Atoms:
        from ase.spacegroup import crystal

        atoms = crystal(symbols, basis=basis, spacegroup=spacegroup, cellpar=cellpar)
        return _primitive(atoms) if primitive else atoms
    return build


def _aflow(label: str, tag: str, substitution: tuple[tuple[str, str], ...], formula: str) -> Callable[[], Atoms]:
    """The AFLOW prototype ``label`` (``tag``: mineral or strukturbericht name that singles it out),
    species substituted, sorted by atomic number, scaled to covalent-radius bond lengths."""

    def build() -> Atoms:
        from ase.data import covalent_radii
        from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
        from pymatgen.core import Element

        from gencrystal.search.generate import sort_by_species
        from gencrystal.structures import to_atoms

        entries = [e for e in AFLOW_PROTOTYPE_LIBRARY if e["tags"].get("aflow") == label]
        if len(entries) > 1:
            entries = [e for e in entries if tag in (e["tags"].get("mineral"), e["tags"].get("strukturbericht"))]
        if len(entries) != 1:
            raise GencrystalError(f"AFLOW prototype {label} ({tag}) not found in pymatgen's library")
        s = entries[0]["snl"].structure.copy()
        s.replace_species({Element(a): Element(b) for a, b in substitution})
        if s.composition.reduced_formula != formula:
            raise GencrystalError(f"AFLOW {label}: substituted prototype is {s.composition.reduced_formula}, expected {formula}")
        atoms = sort_by_species(to_atoms(s))
        dm = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e9
        if len(set(atoms.numbers)) > 1:  # scale on the shortest bond between different species
            dm = dm + 1e9 * (atoms.numbers[:, None] == atoms.numbers[None, :])
        i, j = np.unravel_index(np.argmin(dm), dm.shape)
        target = covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]]
        atoms.set_cell(atoms.cell.array * (target / dm[i, j]), scale_atoms=True)
        return atoms
    return build


_EXP = "experimental lattice (ambient or near-ambient), Wyckoff positions"
STRUCTURES: dict[str, KnownStructure] = {s.id: s for s in [
    KnownStructure("Li-bcc", "Li", 229, _EXP, _bulk("Li", "bcc", a=3.44, cubic=True)),
    KnownStructure("Li-fcc", "Li", 225, _EXP, _bulk("Li", "fcc", a=4.30)),
    KnownStructure("Li-hcp", "Li", 194, _EXP, _bulk("Li", "hcp", a=3.09, c=5.05)),
    # cI16 (I-43d), the 40-60 GPa phase; conventional 16-atom cell
    KnownStructure("Li-cI16", "Li", 220, _EXP,
                   _crystal("Li", [(0.055, 0.055, 0.055)], 220, [5.27, 5.27, 5.27, 90, 90, 90])),
    KnownStructure("Si-diamond", "Si", 227, _EXP, _bulk("Si", "diamond", a=5.43)),
    KnownStructure("Si-betaSn", "Si", 141, _EXP, _crystal("Si", [(0, 0, 0)], 141, [4.69, 4.69, 2.58, 90, 90, 90])),
    KnownStructure("Si-sh", "Si", 191, _EXP, _crystal("Si", [(0, 0, 0)], 191, [2.53, 2.53, 2.37, 90, 90, 120])),
    KnownStructure("Si-hcp", "Si", 194, _EXP, _bulk("Si", "hcp", a=2.55, c=4.16)),
    KnownStructure("Si-fcc", "Si", 225, _EXP, _bulk("Si", "fcc", a=3.60)),
    KnownStructure("SiO2-alpha-quartz", "SiO2", 154, _EXP,
                   _crystal(["Si", "O"], [(0.4697, 0.0, 2 / 3), (0.1466, 0.7331, 0.1191)], 154,
                            [4.913, 4.913, 5.405, 90, 90, 120])),
    KnownStructure("SiO2-stishovite", "SiO2", 136, _EXP,
                   _crystal(["Si", "O"], [(0, 0, 0), (0.3062, 0.3062, 0)], 136, [4.178, 4.178, 2.666, 90, 90, 90])),
    KnownStructure("SiO2-CaCl2", "SiO2", 58, _EXP,
                   _crystal(["Si", "O"], [(0, 0, 0), (0.326, 0.279, 0)], 58, [4.00, 4.13, 2.56, 90, 90, 90])),
    KnownStructure("SiO2-aPbO2", "SiO2", 60, _EXP,
                   _crystal(["Si", "O"], [(0, 0.152, 0.25), (0.266, 0.379, 0.422)], 60, [4.10, 4.95, 4.52, 90, 90, 90])),
    KnownStructure("B-alpha12", "B", 166, _EXP + "; spglib primitive cell",
                   _crystal(["B", "B"], [(0.11886, 0.88114, 0.89133), (0.19686, 0.80314, 0.02432)], 166,
                            [4.908, 4.908, 12.567, 90, 90, 120], primitive=True)),
    KnownStructure("SiO2-coesite", "SiO2", 15, "AFLOW A2B_mC48_15_ae3f_2f (Coesite), covalent-radius scale",
                   _aflow("A2B_mC48_15_ae3f_2f", "Coesite", (("Si", "Si"), ("O", "O")), "SiO2")),
    KnownStructure("SiO2-pyrite", "SiO2", 205, "AFLOW AB2_cP12_205_a_c (Pyrite; Fe->Si, S->O), covalent-radius scale",
                   _aflow("AB2_cP12_205_a_c", "Pyrite", (("Fe", "Si"), ("S", "O")), "SiO2")),
    KnownStructure("B-alphaGa", "B", 64, "AFLOW A_oC8_64_f (A11, α-Ga; Ga->B), covalent-radius scale",
                   _aflow("A_oC8_64_f", "A11", (("Ga", "B"),), "B")),
]}

#: the seed set's prototypes, in the order of ``data/fixtures/hp_seeds.extxyz``
SEED_PROTOTYPES: tuple[str, ...] = (
    "Li-bcc", "Li-fcc", "Li-hcp", "Li-cI16", "Si-diamond", "Si-betaSn", "Si-sh", "Si-hcp", "Si-fcc",
    "SiO2-alpha-quartz", "SiO2-stishovite", "SiO2-CaCl2", "SiO2-aPbO2", "B-alpha12",
)

#: the known phases the demo relaxes beside the samples, per composition
DEMO_REFERENCES: dict[str, tuple[str, ...]] = {
    "Li": ("Li-bcc", "Li-fcc", "Li-cI16"),
    "SiO2": ("SiO2-stishovite", "SiO2-CaCl2", "SiO2-aPbO2"),
}


def structure(sid: str) -> Atoms:
    """The catalogue structure ``sid`` (a fresh copy); :class:`GencrystalError` for an unknown id."""
    if sid not in STRUCTURES:
        raise GencrystalError(f"unknown known structure {sid!r}; choose from {', '.join(sorted(STRUCTURES))}")
    return STRUCTURES[sid].atoms()


def prototypes() -> list[Atoms]:
    """The seed set's known structures (Li, Si, SiO2, B; ambient-like cells, Å), ``info['id']`` set.

    Li: bcc, fcc, hcp, cI16 (I-43d, conventional 16-atom cell). Si: diamond, β-Sn, simple
    hexagonal, hcp, fcc. SiO2: α-quartz, stishovite, CaCl2-type (Pnnm), α-PbO2-type (Pbcn).
    B: α-B12 (primitive)."""
    return [structure(s) for s in SEED_PROTOTYPES]


# --------------------------------------------------------------------------- benchmark targets
@dataclass(frozen=True)
class Target:
    """A known-phase benchmark target: the catalogue structure, the formula units Z of the
    searched cell, the pressure (GPa) and the published anchors (Cond-CDVAE mean structures
    to locate it; CALYPSO's number, None = not found). ``extrapolation``: the pressure lies
    beyond the 0–100 GPa range the generative models are trained on."""

    key: str
    name: str
    structure_id: str
    formula_units: int
    pressure_gpa: float
    cond_cdvae_mean: float | None
    calypso: float | None
    extrapolation: bool = False

    @property
    def formula(self) -> str:
        return STRUCTURES[self.structure_id].formula

    def structure(self) -> Atoms:
        return structure(self.structure_id)

    def anchor_text(self) -> str:
        cc = "–" if self.cond_cdvae_mean is None else f"{self.cond_cdvae_mean:g}"
        ca = "not found" if self.calypso is None else f"{self.calypso:g}"
        return f"{cc} ({ca})"


TARGETS: dict[str, Target] = {t.key: t for t in [
    Target("li_ci16", "Li cI16", "Li-cI16", 8, 50.0, 566, 50),
    Target("sio2_rutile", "SiO2 rutile-type (stishovite)", "SiO2-stishovite", 2, 50.0, 5, 90),
    Target("sio2_cacl2", "SiO2 CaCl2-type", "SiO2-CaCl2", 2, 80.0, 10.2, 61),
    Target("sio2_apbo2", "SiO2 α-PbO2-type", "SiO2-aPbO2", 4, 100.0, 21.6, 74.7),
    Target("sio2_pyrite", "SiO2 pyrite-type", "SiO2-pyrite", 4, 300.0, 28.8, 66, extrapolation=True),
    Target("b_alpha_ga", "B α-Ga-type", "B-alphaGa", 4, 100.0, 58, 78),
    Target("b_alpha12", "B α-B12", "B-alpha12", 12, 0.0, 74, 392),
    Target("sio2_quartz", "SiO2 α-quartz", "SiO2-alpha-quartz", 3, 0.0, 62.8, 189),
    Target("sio2_coesite", "SiO2 coesite", "SiO2-coesite", 8, 5.0, 328, None),
]}
#: the targets of the headline benchmark (issue list); quartz and coesite are extra
HEADLINE_TARGETS: tuple[str, ...] = ("li_ci16", "sio2_rutile", "sio2_cacl2", "sio2_apbo2", "sio2_pyrite",
                                     "b_alpha_ga", "b_alpha12")


def target(key: str) -> Target:
    """The benchmark target ``key``; :class:`GencrystalError` for an unknown key."""
    if key not in TARGETS:
        raise GencrystalError(f"unknown target {key!r}; choose from {', '.join(TARGETS)}")
    return TARGETS[key]


def target_structure(key: str) -> Atoms:
    """The known structure of target ``key`` (Hydra-friendly: ``_target_`` with ``key``)."""
    return target(key).structure()


def matches(candidate: Atoms, reference: Atoms, kind: str = "loose") -> bool:
    """True when ``candidate`` is the ``reference`` phase under the named tolerance set of
    :func:`gencrystal.matching.make_matcher` (Cond-CDVAE's loose / medium / strict)."""
    from gencrystal.matching import make_matcher
    from gencrystal.structures import to_structure

    return bool(make_matcher(kind).fit(to_structure(candidate), to_structure(reference)))
