"""Helpers for the tests that run the official code beside ours (``tests/official/``).

- ``official_checkout(method) -> Path``: the checkout named by ``FAIRKIT_OFFICIAL_<METHOD>``; when that variable is
  unset, the calling test module is skipped with the reason (call it at module level).
- ``load_functions(path, names, namespace) -> dict``: the named top-level functions, classes or assignments of a
  source file, executed in a copy of ``namespace`` (which supplies what they use: torch, numpy, ...) without running
  the file's imports; official modules often import edflow, TensorFlow or other packages we lack at their top.
- ``load_statements(path, targets) -> list``: the statements anywhere in a file (inside functions, loops or the
  ``__main__`` block too) that assign one of ``targets``, written as in the source (``"sin_theta"``,
  ``"clf_g.coef_"``, ``"X_all[j - 15000]"``; tuple targets match by element), in source order; for code that lives
  in scripts rather than functions. ``run_statements(statements, namespace) -> dict`` executes them.

The ``compare`` fixture (``conftest.py``) checks and records the largest difference of each comparison.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ENV_PREFIX = "FAIRKIT_OFFICIAL_"


def official_checkout(method: str) -> Path:
    """The official repository's checkout for ``method`` (``"iin"`` reads ``FAIRKIT_OFFICIAL_IIN``)."""
    variable = ENV_PREFIX + method.upper()
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"{variable} is not set; point it at a checkout of the official repository to compare with it "
                    f"(see README.md, 'Checks against the official code')", allow_module_level=True)
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{variable}={value} is not a directory; point it at a checkout of the official "
                                f"repository")
    return path


def _parse(path: Path) -> ast.Module:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the official checkout (another version of the repository?)")
    return ast.parse(path.read_text(), filename=str(path))


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def load_functions(path, names, namespace: dict) -> dict:
    """``{name: object}`` for the named top-level definitions of ``path``, executed in order of the source in a copy
    of ``namespace`` (so that they see each other)."""
    tree = _parse(path)
    wanted = set(names)
    selected = [node for node in tree.body if wanted & set(_defined_names(node))]
    found = {name for node in selected for name in _defined_names(node)}
    if wanted - found:
        raise LookupError(f"{path} defines no top-level {sorted(wanted - found)}")
    scope = dict(namespace)
    exec(compile(ast.Module(body=selected, type_ignores=[]), str(path), "exec"), scope)
    return {name: scope[name] for name in names}


def _target_texts(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    else:
        return set()
    texts = set()
    for target in targets:
        texts.add(ast.unparse(target))
        if isinstance(target, (ast.Tuple, ast.List)):
            texts.update(ast.unparse(element) for element in target.elts)
    return texts


def load_statements(path, targets) -> list[ast.stmt]:
    """The statements of ``path`` that assign one of ``targets`` (see the module's docstring), in source order."""
    tree = _parse(path)
    wanted = set(targets)
    selected = [node for node in ast.walk(tree) if isinstance(node, ast.stmt) and wanted & _target_texts(node)]
    found = set().union(*(_target_texts(node) for node in selected)) if selected else set()
    if wanted - found:
        raise LookupError(f"{path} has no assignment to {sorted(wanted - found)}")
    return sorted(selected, key=lambda node: (node.lineno, node.col_offset))


def run_statements(statements: list[ast.stmt], namespace: dict) -> dict:
    """Execute ``statements`` in ``namespace`` (changed in place, and returned)."""
    module = ast.Module(body=[ast.fix_missing_locations(s) for s in statements], type_ignores=[])
    exec(compile(module, "<official statements>", "exec"), namespace)
    return namespace
