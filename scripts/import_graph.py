"""The module import graph of ``gencrystal`` (read with ``ast``; nothing is imported or run).

Prints every cycle between sub-packages (``gencrystal.data`` -> ``gencrystal.db`` -> ...
-> ``gencrystal.data``) and every import of ``gencrystal.cli`` from a library module (``gencrystal.__main__``,
the ``python -m gencrystal`` entry, is part of the CLI), and
exits 1 if there is any (0 otherwise). Imports inside functions count (they run when the
function does); imports under ``if TYPE_CHECKING:`` do not.

    python scripts/import_graph.py [--package gencrystal] [--modules]

``--modules`` also prints the module-level cycles inside each package.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = "cli"


def module_name(path: Path, root: Path) -> str:
    """``gencrystal/relax/engine.py`` -> ``gencrystal.relax.engine``; packages drop ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The ``known`` modules that the module ``name`` (file ``path``) imports at any depth of its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = resolve(alias.name)
                if hit:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                hit = resolve(f"{mod}.{alias.name}") if mod else None
                if hit is None or hit == mod.rpartition(".")[0]:
                    hit = resolve(mod)
                if hit:
                    found.add(hit)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def build_graph(package: str = "gencrystal", root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: {imported module, ...}}`` over every ``.py`` file of ``package`` under ``root``."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    return {name: imports_of(p, name, p.name == "__init__.py", known) for name, p in files.items()}


def area(module: str, package: str = "gencrystal") -> str:
    """The sub-package a module belongs to (``gencrystal.relax.engine`` -> ``gencrystal.relax``);
    top-level modules (``gencrystal.units``) are their own area."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else package


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def package_graph(graph: dict[str, set[str]], package: str = "gencrystal") -> dict[str, set[str]]:
    """The graph between sub-packages (an edge per module import that crosses two of them)."""
    pg: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        a = area(mod, package)
        pg.setdefault(a, set())
        for d in deps:
            b = area(d, package)
            if b != a and b != package:  # the package root (`gencrystal/__init__`) is below everyone
                pg[a].add(b)
    return pg


def witnesses(graph: dict[str, set[str]], a: str, b: str, package: str = "gencrystal") -> list[str]:
    """The module imports behind the package edge ``a -> b``."""
    return sorted(f"{m} -> {d}" for m, deps in graph.items() if area(m, package) == a
                  for d in deps if area(d, package) == b)


def problems(package: str = "gencrystal", root: Path = ROOT, modules: bool = False) -> list[str]:
    """One line per package cycle (with the imports that make it) and per library import of the CLI."""
    graph = build_graph(package, root)
    lines: list[str] = []
    pg = package_graph(graph, package)
    for comp in _sccs(pg):
        inside = set(comp)
        edges = [f"{a} -> {b} ({'; '.join(witnesses(graph, a, b, package))})"
                 for a in comp for b in sorted(pg[a] & inside)]
        lines.append(f"package cycle {' <-> '.join(comp)}: " + ", ".join(edges))
    cli = f"{package}.{CLI}"
    for mod, deps in sorted(graph.items()):
        if mod in (package, f"{package}.__main__", cli) or mod.startswith(cli + "."):
            continue
        for d in sorted(deps):
            if d == cli or d.startswith(cli + "."):
                lines.append(f"library module {mod} imports the CLI layer ({d})")
    if modules:
        for comp in _sccs(graph):
            lines.append(f"module cycle: {' <-> '.join(comp)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", default="gencrystal")
    p.add_argument("--modules", action="store_true", help="also report module-level cycles")
    args = p.parse_args(argv)
    lines = problems(args.package, ROOT, modules=args.modules)
    for line in lines:
        print(line)
    if not lines:
        graph = build_graph(args.package, ROOT)
        print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports: no package cycle, "
              "no library import of the CLI")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
