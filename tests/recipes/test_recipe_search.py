"""The `Add a search method` recipe of docs/architecture.md, done exactly: one module (a
SearchMethod), one YAML in a `search/method/` folder, then `gencrystal search method=NAME`."""

from __future__ import annotations

import json
import sys
import textwrap

import ase.db

MODULE = '''
"""Prototype search: candidates are textbook lattices of a one-element formula, scaled."""
from dataclasses import dataclass, field

from ase.build import bulk

from gencrystal.search.methods import Proposal, SearchMethod


@dataclass
class PrototypeSearch(SearchMethod):
    """Candidate i is ``bulk(element, structures[i % k], a=a * scales[i // k % m])`` (a in Å)."""

    structures: list = field(default_factory=lambda: ["fcc", "bcc", "sc"])
    a: float = 3.6
    scales: list = field(default_factory=lambda: [1.0, 0.95])
    name: str = "prototypes"

    def batch_size(self) -> int:
        return len(self.structures)

    def settings(self):
        return {"structures": list(self.structures), "a": self.a, "scales": list(self.scales)}

    def propose(self, batch, start, stop, history, ctx):
        k, out = len(self.structures), []
        for i in range(start, stop):
            kind, scale = self.structures[i % k], self.scales[(i // k) % len(self.scales)]
            atoms = bulk(ctx.elements[0], kind, a=self.a * scale)
            out.append(Proposal(i, atoms, batch, origin=self.name, meta={"prototype": kind}))
        return out
'''

YAML = '''
_target_: my_search.PrototypeSearch
name: prototypes
structures: [fcc, bcc, sc]
a: 3.6          # Å
scales: [1.0, 0.95]
'''

# A cheap potential for the test (ASE's EMT), as a config; not part of the recipe.
EMT_YAML = '''
_target_: gencrystal.potentials.calculator_potential
make_calculator: {_target_: ase.calculators.emt.EMT, _partial_: true}
level_of_theory: emt
'''


def test_add_a_search_method_with_one_module_and_one_yaml(tmp_path, monkeypatch, capsys):
    from gencrystal.cli import main

    (tmp_path / "my_search.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_search", None)
    (tmp_path / "myconf" / "search" / "method").mkdir(parents=True)
    (tmp_path / "myconf" / "search" / "method" / "prototypes.yaml").write_text(textwrap.dedent(YAML))
    (tmp_path / "myconf" / "potential").mkdir()
    (tmp_path / "myconf" / "potential" / "emt.yaml").write_text(textwrap.dedent(EMT_YAML))

    out = tmp_path / "search"
    args = ["search", "composition=Cu", "pressure=0", "method=prototypes", "budget=6", f"out={out}",
            f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "potential=emt", "relax.fmax=0.02",
            "progress=false"]
    assert main(args) == 0
    assert "search prototypes Cu" in capsys.readouterr().out
    rows = list(ase.db.connect(str(out / "candidates.db")).select())
    assert sorted(r.candidate for r in rows) == list(range(6))
    assert {r.method for r in rows} == {"prototypes"} and {r.level_of_theory for r in rows} == {"emt"}
    ranking = json.loads((out / "ranking.json").read_text())
    assert ranking[0]["candidate"] % 3 == 0  # EMT copper: fcc has the lowest enthalpy of fcc / bcc / sc
    # a method setting is a plain override: a resumed run with a larger budget adds candidates 6..8
    assert main(args[:4] + ["budget=9"] + args[5:]) == 0
    assert sorted(r.candidate for r in ase.db.connect(str(out / "candidates.db")).select()) == list(range(9))
