"""The import graph between the project's packages, read from the source (every ``import``, also inside functions):

    python -m scripts.package_diagram [--out docs/packages.md]

prints the arrows (package -> package it imports, with the number of importing modules) and writes them as a
mermaid diagram. :func:`violations` lists the arrows the layering forbids: dependencies point one way,
methods -> fairkit -> edflow -> torch, and no method imports another; ``tests/test_layering.py`` asserts there are none.
"""
from __future__ import annotations

import argparse
import ast
import os
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("iin", "nullsample", "end", "latentdebias", "fairgen")
LIBRARY = ("fairkit", "edflow")
PACKAGES = METHODS + LIBRARY
# What each package may import among the project's packages (itself aside).
ALLOWED = {**{m: {"fairkit", "edflow"} for m in METHODS}, "fairkit": {"edflow"}, "edflow": set()}


def imported_packages(path: str) -> set[str]:
    """The project packages a module imports (absolute imports; relative ones stay inside its package)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & set(PACKAGES)


def edges(root: str = ROOT) -> Counter:
    """(importer, imported) -> number of modules of the importer that import the other package."""
    counts = Counter()
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if name.endswith(".py"):
                    for other in imported_packages(os.path.join(folder, name)) - {package}:
                        counts[package, other] += 1
    return counts


def violations(counts: Counter) -> list[tuple[str, str]]:
    return sorted(edge for edge in counts if edge[1] not in ALLOWED[edge[0]])


def mermaid(counts: Counter) -> str:
    lines = ["```mermaid", "graph TD"]
    lines += [f"  {a} -->|{n}| {b}" for (a, b), n in sorted(counts.items())]
    lines += ["  edflow --> torch", "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="write the diagram as markdown here (e.g. docs/packages.md)")
    args = parser.parse_args(argv)
    counts = edges()
    for (a, b), n in sorted(counts.items()):
        print(f"{a} -> {b}  ({n} modules)")
    bad = violations(counts)
    print("forbidden arrows: " + (", ".join(f"{a} -> {b}" for a, b in bad) if bad else "none"))
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Packages and their imports\n\nRegenerate with `python -m scripts.package_diagram --out "
                    "docs/packages.md`. An arrow is `import`s of the project's packages, labelled with the number of "
                    "modules that import; the layering (methods -> fairkit -> edflow -> torch, no method importing "
                    "another) is asserted by `tests/test_layering.py`.\n\n" + mermaid(counts) + "\n")


if __name__ == "__main__":
    main()
