"""scripts/import_graph.py: no package-level import cycle in gencrystal, no library import of the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402


def _problems(graph):
    lines = []
    pg = import_graph.package_graph(graph)
    lines += [" <-> ".join(c) for c in import_graph._sccs(pg)]
    lines += [f"{m} -> {d}" for m, deps in graph.items() for d in deps
              if d.startswith("gencrystal.cli") and not m.startswith(("gencrystal.cli", "gencrystal.__main__"))]
    return lines


def test_gencrystal_has_no_package_cycle_and_no_library_import_of_the_cli():
    graph = import_graph.build_graph("gencrystal", ROOT)
    assert "gencrystal.cli" in graph and "gencrystal.diffusion.sampler" in graph
    assert _problems(graph) == []


def test_script_exits_0_and_says_so():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout
    assert len(lines) == 1 and "no package cycle, no library import of the CLI" in lines[0]


def _write(root: Path, rel: str, text: str = "") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


@pytest.mark.parametrize("nested", [False, True])
def test_a_package_cycle_and_a_library_import_of_the_cli_are_found(tmp_path, nested):
    """A synthetic package: pkg.a -> pkg.b (inside a function when ``nested``), pkg.b -> pkg.a, pkg.c -> pkg.cli."""
    imp = "def f():\n    from pkg.b import x\n" if nested else "from pkg.b import x\n"
    _write(tmp_path, "pkg/__init__.py")
    _write(tmp_path, "pkg/a/__init__.py")
    _write(tmp_path, "pkg/a/m.py", imp)
    _write(tmp_path, "pkg/b/__init__.py", "from ..a import m\nx = 1\n")
    _write(tmp_path, "pkg/c.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\nimport pkg.cli\n")
    _write(tmp_path, "pkg/cli/__init__.py", "from pkg.c import *\n")
    lines = import_graph.problems("pkg", tmp_path)
    assert any(ln.startswith("package cycle pkg.a <-> pkg.b") for ln in lines), lines
    assert "library module pkg.c imports the CLI layer (pkg.cli)" in lines
    graph = import_graph.build_graph("pkg", tmp_path)
    assert graph["pkg.c"] == {"pkg.cli"}  # the TYPE_CHECKING import is not counted
    assert graph["pkg.b"] == {"pkg.a.m"}


def test_every_test_folder_is_a_package():
    """Each folder of tests holds an __init__.py: test modules of equal names in two folders
    would otherwise collide under pytest's rootdir-based import."""
    tests = Path(__file__).resolve().parent
    folders = [d for d in tests.rglob("*") if d.is_dir() and d.name != "__pycache__" and any(d.glob("test_*.py"))]
    assert folders and [str(d.relative_to(tests)) for d in folders if not (d / "__init__.py").is_file()] == []
