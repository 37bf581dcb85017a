"""Writers of small source files for the `db import` tests: VASP vasprun.xml (handmade,
parsed by pymatgen's Vasprun), a CALYPSO results folder as cak.py leaves it, Cond-CDVAE
style feather tables and ComputedStructureEntry JSON."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest


def _v(tag, val):
    if isinstance(val, bool):
        return f'<i type="logical" name="{tag}"> {"T" if val else "F"} </i>'
    if isinstance(val, int):
        return f'<i type="int" name="{tag}">{val}</i>'
    if isinstance(val, float):
        return f'<i name="{tag}">{val}</i>'
    return f'<i type="string" name="{tag}">{val}</i>'


def vasprun_xml(atoms, energies, incar) -> str:
    """A small but complete-enough vasprun.xml: one ionic step per total energy (eV per
    cell, σ→0), PAW_PBE POTCAR titles, the INCAR tags in <incar> and <parameters>."""
    symbols = atoms.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    atoms = atoms[sorted(range(len(atoms)), key=lambda i: species.index(symbols[i]))]
    symbols = atoms.get_chemical_symbols()
    counts = Counter(symbols)

    def structure(name):
        cell = "".join(f"<v>{a:.8f} {b:.8f} {c:.8f}</v>" for a, b, c in atoms.cell.array)
        rec = "".join(f"<v>{a:.8f} {b:.8f} {c:.8f}</v>" for a, b, c in atoms.cell.reciprocal())
        pos = "".join(f"<v>{a:.8f} {b:.8f} {c:.8f}</v>" for a, b, c in atoms.get_scaled_positions())
        attr = f' name="{name}"' if name else ""
        return (f'<structure{attr}><crystal><varray name="basis">{cell}</varray>'
                f'<i name="volume">{atoms.get_volume():.8f}</i><varray name="rec_basis">{rec}</varray></crystal>'
                f'<varray name="positions">{pos}</varray></structure>')

    params = {"PREC": "accurate", "ENCUT": 520.0, "ISPIN": 1, "NELM": 60, "EDIFF": 1e-6, "GGA": "--",
              "LHFCALC": False, "AEXX": 0.0, "HFSCREEN": 0.0, "LDAU": False, "METAGGA": "--"}
    params.update(incar)
    steps = []
    for e in energies:
        en = (f'<energy><i name="e_fr_energy">{e + 0.01:.8f}</i><i name="e_wo_entrp">{e:.8f}</i>'
              f'<i name="e_0_energy">{e:.8f}</i></energy>')
        forces = "".join("<v>0.0 0.0 0.0</v>" for _ in atoms)
        steps.append(f'<calculation>{"".join(f"<scstep>{en}</scstep>" for _ in range(3))}{structure("")}'
                     f'<varray name="forces">{forces}</varray>'
                     f'<varray name="stress"><v>0 0 0</v><v>0 0 0</v><v>0 0 0</v></varray>{en}</calculation>')
    atomrows = "".join(f"<rc><c>{s}</c><c>{species.index(s) + 1}</c></rc>" for s in symbols)
    typerows = "".join(f"<rc><c>{counts[s]}</c><c>{s}</c><c>1.0</c><c>1.0</c><c>  PAW_PBE {s} 01Jan2000</c></rc>"
                       for s in species)
    return ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>'
            '<generator><i name="program" type="string">vasp </i><i name="version" type="string">6.4.2 </i></generator>'
            f'<incar>{"".join(_v(k, x) for k, x in incar.items())}</incar>'
            '<kpoints><generation param="Gamma"><v type="int">4 4 4</v></generation>'
            '<varray name="kpointlist"><v>0.0 0.0 0.0</v></varray><varray name="weights"><v>1.0</v></varray></kpoints>'
            f'<parameters><separator name="general">{"".join(_v(k, x) for k, x in params.items())}</separator></parameters>'
            f'<atominfo><atoms>{len(atoms)}</atoms><types>{len(species)}</types>'
            '<array name="atoms"><dimension dim="1">ion</dimension><field type="string">element</field>'
            f'<field type="int">atomtype</field><set>{atomrows}</set></array>'
            '<array name="atomtypes"><dimension dim="1">type</dimension><field type="int">atomspertype</field>'
            '<field type="string">element</field><field>mass</field><field>valence</field>'
            f'<field type="string">pseudopotential</field><set>{typerows}</set></array></atominfo>'
            f'{structure("initialpos")}{"".join(steps)}{structure("finalpos")}</modeling>\n')


def write_calypso_search(folder: Path, entries, pstress_kbar: float, incar_extra: str = "", missing_ranks=()) -> Path:
    """A CALYPSO calculation folder after ``cak.py --vasp -m 0.1``: INCAR_1..INCAR_3
    (PSTRESS in kbar), results/Analysis_Output.dat (rank (structure number) enthalpy
    space group) and results/dir_0.1/UCell_<rank>_<sg>.vasp. ``entries`` are
    ``(structure, enthalpy per atom eV, space group number)`` sorted by enthalpy."""
    from pymatgen.io.vasp.inputs import Poscar

    results = folder / "results"
    (results / "dir_0.1").mkdir(parents=True)
    for n in (1, 2, 3):
        (folder / f"INCAR_{n}").write_text(f"SYSTEM = search\nPREC = {'Accurate' if n == 3 else 'Normal'}\n"
                                           f"ENCUT = {400 + 50 * n}\nIBRION = 2\nISIF = 3\nNSW = 40\n"
                                           f"PSTRESS = {pstress_kbar}\n{incar_extra}")
    lines = ["  Index  Enthalpy(eV)   SpaceGroup(0.1)", "  " + "-" * 40]
    for rank, (structure, h, sg) in enumerate(entries, start=1):
        lines.append(f"  {rank:4d} ({10 * rank + 3:5d})   {h:12.6f}   {sg:4d}")
        if rank not in missing_ranks:
            Poscar(structure).write_file(str(results / "dir_0.1" / f"UCell_{rank}_{sg}.vasp"))
    (results / "Analysis_Output.dat").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def writers():
    """The writer functions, for tests that build their own source files."""
    return {"vasprun": vasprun_xml, "calypso": write_calypso_search}
