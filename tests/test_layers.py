"""The layers hold: no product module imports a floor above its own, and nothing below ``ui`` imports Streamlit.

Floors, bottom-up: ``model`` < ``config`` and ``connectors.errors`` < ``connectors`` < ``analysis`` <
``snapshots`` < the command line (``cli.py``, and its shim ``analysis/__main__.py``) < ``ui`` < ``views`` and
``app.py``. A module may import its own floor and any floor below it. On top of that, ``analysis`` never
imports ``connectors`` (it must not know where a frame came from), and the product never imports ``tests``
or ``bench``. Every import counts, wherever it is written: module level, inside a function, under
``TYPE_CHECKING``, or as a literal ``importlib.import_module("…")``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.shared import REPO

PRODUCT = ["app.py", "cli.py", "config.py", "analysis", "connectors", "model", "snapshots", "ui", "views"]

FLOOR_NAMES = ["model", "config, connectors.errors", "connectors", "analysis", "snapshots", "cli", "ui", "views, app"]
UI_FLOOR = FLOOR_NAMES.index("ui")
NOT_PRODUCT = ("tests", "bench")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a dotted module name, and where it is written."""

    path: str  # relative to the repo, with forward slashes
    line: int
    module: str  # the module importing
    target: str  # the module imported

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _product_files() -> list[Path]:
    files = [REPO / e for e in PRODUCT if e.endswith(".py")]
    files += sorted(p for e in PRODUCT if not e.endswith(".py") for p in (REPO / e).rglob("*.py"))
    return files


PRODUCT_MODULES = frozenset(_module_name(p) for p in _product_files())


def _first(name: str) -> str:
    return name.split(".", 1)[0]


def floor(module: str) -> int | None:
    """The floor of a product module (None for anything outside the layered product)."""
    if module == "analysis.__main__":
        return FLOOR_NAMES.index("cli")
    if module == "connectors.errors" or module.startswith("connectors.errors."):
        return FLOOR_NAMES.index("config, connectors.errors")
    top = _first(module)
    by_top = {"model": "model", "config": "config, connectors.errors", "connectors": "connectors",
              "analysis": "analysis", "snapshots": "snapshots", "cli": "cli", "ui": "ui", "views": "views, app",
              "app": "views, app"}
    return FLOOR_NAMES.index(by_top[top]) if top in by_top else None


def _resolve_from(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[Import]:
    """Every module the file at ``path`` imports, with the line it is written on."""
    return imports_in(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix())


def imports_in(source: str, rel: str) -> list[Import]:
    """Every module ``source`` imports, as if it were the repo file ``rel`` (forward slashes)."""
    module = _module_name(REPO / rel)
    tree = ast.parse(source, filename=rel)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, module, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, rel.endswith("__init__.py"))
            for alias in node.names:
                # `from pkg import sub` imports the submodule pkg.sub when there is one.
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append(Import(rel, node.lineno, module, sub if sub in PRODUCT_MODULES else base))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(rel, node.lineno, module, node.args[0].value))
    return sorted(set(found), key=lambda imp: (imp.line, imp.target))


def violation(imp: Import) -> str | None:
    """Why ``imp`` breaks the layering, or None when it is allowed."""
    own, target_top = floor(imp.module), _first(imp.target)
    if own is None:
        return None
    if target_top in NOT_PRODUCT:
        return "the product imports test or benchmark code"
    if target_top == "streamlit" and own < UI_FLOOR:
        return f"{FLOOR_NAMES[own]} is below ui and must import without Streamlit"
    if _first(imp.module) == "analysis" and own == FLOOR_NAMES.index("analysis") and target_top == "connectors":
        return "analysis must not know where a frame came from"
    theirs = floor(imp.target)
    if theirs is not None and theirs > own:
        return f"{FLOOR_NAMES[own]} imports the higher floor {FLOOR_NAMES[theirs]}"
    return None


def violations(files: list[Path]) -> list[tuple[Import, str]]:
    found = []
    for path in files:
        for imp in imports_of(path):
            reason = violation(imp)
            if reason is not None:
                found.append((imp, reason))
    return found


def _report(found: list[tuple[Import, str]]) -> str:
    return "\n".join(f"{imp}  ({reason})" for imp, reason in found)


def test_no_product_module_imports_a_higher_floor_or_streamlit_below_ui() -> None:
    found = violations(_product_files())
    assert found == [], "layer violations:\n" + _report(found)


def test_the_scan_sees_every_kind_of_import() -> None:
    """The scanner itself: relative, in-function, TYPE_CHECKING and import_module imports are all seen."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "from . import cohort\n"
        "from .. import config\n"
        "if TYPE_CHECKING:\n"
        "    from ui.state import FilterState\n"
        "def f() -> None:\n"
        "    import streamlit as st\n"
        "    from connectors import errors\n"
        "    importlib.import_module('views.overview')\n"
    )
    scanned = imports_in(source, "analysis/_layers_probe.py")
    assert {(3, "analysis.cohort"), (4, "config"), (6, "ui.state"), (8, "streamlit"), (9, "connectors.errors"),
            (10, "views.overview")} <= {(imp.line, imp.target) for imp in scanned}
    reasons = {imp.target: violation(imp) for imp in scanned}
    assert reasons["analysis.cohort"] is None
    assert reasons["config"] is None
    assert "higher floor ui" in str(reasons["ui.state"])
    assert "Streamlit" in str(reasons["streamlit"])
    assert "where a frame came from" in str(reasons["connectors.errors"])
    assert "higher floor views" in str(reasons["views.overview"])
    assert str(next(i for i in scanned if i.target == "ui.state")).startswith("analysis/_layers_probe.py:6: ")


def test_the_cli_shim_and_the_cli_may_use_connectors_but_not_the_ui() -> None:
    shim = imports_in("from cli import main\nfrom connectors.registry import build_all\n", "analysis/__main__.py")
    assert [violation(imp) for imp in shim] == [None, None]
    cli = imports_in("import connectors.registry\nimport analysis.cohort\nimport ui.state\n", "cli.py")
    assert [violation(imp) is None for imp in cli] == [True, True, False]
    below = imports_in("import tests.shared\nfrom bench import cohort_speed\n", "model/_probe.py")
    assert all("test or benchmark" in str(violation(imp)) for imp in below)


def test_floors_order_the_layers() -> None:
    order = ["model.schemas", "connectors.errors", "connectors.base", "analysis.cohort", "snapshots.store", "cli",
             "ui.state", "views.overview"]
    floors = [floor(m) for m in order]
    assert floors == sorted(floors) and len(set(floors)) == len(floors)
    assert floor("config") == floor("connectors.errors")
    assert floor("app") == floor("views.overview")
    assert floor("analysis.__main__") == floor("cli")
    assert floor("polars") is None and floor("streamlit") is None
