"""The diffusion core is domain-agnostic: no materials imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "gencrystal" / "diffusion"
FORBIDDEN = ("pymatgen", "ase", "matminer", "smact", "pyxtal", "chgnet", "sevenn", "gpaw", "torch_geometric")


def test_sources_import_only_torch_and_the_core_itself():
    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, f"{path.name} imports {name}"
                if top == "gencrystal":
                    assert name.startswith("gencrystal.diffusion"), f"{path.name} imports {name}"


def test_importing_the_core_loads_no_materials_module():
    code = ("import sys, gencrystal.diffusion; "
            "bad = [m for m in sys.modules if m.split('.')[0] in %r "
            "or (m.startswith('gencrystal.') and not m.startswith('gencrystal.diffusion'))]; "
            "print(bad); sys.exit(1 if bad else 0)" % (FORBIDDEN,))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
