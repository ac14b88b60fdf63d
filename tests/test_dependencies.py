"""Every package StemDesk's own code imports is one a user's install has: named in pyproject.toml's dependencies, not
only in the test extras (which this suite runs with, so a missing runtime dependency would pass every other test and
fail for the user: `stemdesk midi` needed onnxruntime, installed only for the tests). An import inside a
``try: … except ImportError`` is an optional one and says what to install (Ray, for `batch --ray`)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

import tomllib
from conftest import REPO


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]).lower()


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in a ``try`` that catches ImportError (or ModuleNotFoundError)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                caught = handler.type
                names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
    return False


def required_imports() -> dict[str, list[str]]:
    """{top-level module: the files importing it without a fallback} over stemdesk/, third-party modules only."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "stemdesk").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "stemdesk" or _optional(node, parents):
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_what_stemdesk_imports_is_in_its_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {_name(requirement) for requirement in project["dependencies"]}
    distributions = packages_distributions()
    missing = {
        module: files
        for module, files in required_imports().items()
        if not any(_name(d) in runtime for d in distributions.get(module, [module]))
    }
    assert not missing, f"imported by StemDesk but not in [project] dependencies: {missing}"
    assert "threadpoolctl" in required_imports()  # the scan sees the imports inside functions too (limit_threads)
