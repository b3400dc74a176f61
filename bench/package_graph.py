"""The workflow service's package import graph: cycles between its subpackages.

    .venv/bin/python bench/package_graph.py [--modules]

Builds the import graph with grimp (what import-linter reads) and collapses it to the
top-level subpackages of ``workflow_service`` (a top-level module such as ``engine``
is its own node). Counts every elementary cycle between subpackages (``a -> b -> a``)
with one import that makes each edge, the strongly connected groups, and the line
counts of the ten largest modules. Cycles of two packages are listed; ``--all`` lists
every cycle. ``--modules`` also counts top-level modules as
nodes in the cycle search (by default only packages are, as the layering is about
packages).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PACKAGE = "workflow_service"


def node_of(module: str, packages: set[str], with_modules: bool) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    top = ".".join(parts[:2])
    if top in packages or with_modules:
        return top
    return None


def simple_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle, each reported once (rotated to start at its least node)."""
    found: set[tuple[str, ...]] = set()
    nodes = sorted(edges)

    def walk(start: str, node: str, path: list[str], seen: set[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                walk(start, nxt, path, seen)
                path.pop()
                seen.discard(nxt)

    for start in nodes:
        walk(start, start, [start], {start})
    return [list(c) for c in sorted(found, key=lambda c: (len(c), c))]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="top-level modules are nodes too")
    parser.add_argument("--all", action="store_true", help="list every cycle, not only a <-> b")
    args = parser.parse_args()

    graph = grimp.build_graph(PACKAGE)
    modules = graph.modules
    packages = {
        m for m in modules if m.count(".") == 1 and any(o.startswith(m + ".") for o in modules)
    }
    edges: dict[str, set[str]] = defaultdict(set)
    example: dict[tuple[str, str], str] = {}
    for importer in sorted(modules):
        a = node_of(importer, packages, args.modules)
        if a is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            b = node_of(imported, packages, args.modules)
            if b is None or b == a:
                continue
            edges[a].add(b)
            example.setdefault((a, b), f"{importer} -> {imported}")
    for node in packages:
        edges.setdefault(node, set())

    short = lambda n: n.removeprefix(PACKAGE + ".")  # noqa: E731
    cycles = simple_cycles(edges)
    print(f"nodes: {len(edges)} ({'packages and modules' if args.modules else 'packages'})")
    print(f"edges between them: {sum(len(v) for v in edges.values())}")
    by_length: dict[int, int] = defaultdict(int)
    for cycle in cycles:
        by_length[len(cycle)] += 1
    lengths = ", ".join(f"{n} of {k}" for k, n in sorted(by_length.items()))
    print(f"cycles between subpackages: {len(cycles)} ({lengths or 'none'})")
    for cycle in cycles if args.all else [c for c in cycles if len(c) == 2]:
        ring = cycle + [cycle[0]]
        print("  " + " -> ".join(short(n) for n in ring))
        for a, b in itertools.pairwise(ring):
            print(f"      {example[(a, b)]}")
    groups = strongly_connected(edges)
    print(f"strongly connected groups: {len(groups)}")
    for group in groups:
        print("  {" + ", ".join(short(n) for n in group) + "}")

    sizes = []
    for module in modules:
        if not module.startswith(PACKAGE):
            continue
        rel = Path(*module.split("."))
        path = ROOT / (str(rel) + ".py")
        if not path.exists():
            path = ROOT / rel / "__init__.py"
        if path.exists():
            sizes.append((sum(1 for _ in path.open(encoding="utf-8")), module))
    sizes.sort(reverse=True)
    print("largest modules (lines):")
    for lines, module in sizes[:10]:
        print(f"  {lines:5d}  {module}")


if __name__ == "__main__":
    main()
