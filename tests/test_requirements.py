"""Every third-party package the product imports is pinned in requirements.txt (not just pulled in by another)."""

from __future__ import annotations

import ast
import re
import sys

from tests.shared import REPO

PRODUCT = ["app.py", "analysis", "connectors", "model", "snapshots", "ui", "views"]
DISTRIBUTION = {"yaml": "pyyaml"}  # import name → distribution name, where they differ


def _imports() -> set[str]:
    files = [REPO / e for e in PRODUCT if e.endswith(".py")]
    files += [p for e in PRODUCT if not e.endswith(".py") for p in (REPO / e).rglob("*.py")]
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    local = {p.name for p in REPO.iterdir() if p.is_dir()} | {p.stem for p in REPO.glob("*.py")}
    return {n for n in names if n not in sys.stdlib_module_names and n not in local and n != "__future__"}


def test_product_imports_are_pinned() -> None:
    pinned = {
        re.split(r"[\[=<>~ ]", line, maxsplit=1)[0].lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }
    imported = {DISTRIBUTION.get(n, n).lower() for n in _imports()}
    assert {"polars", "streamlit", "httpx"} <= imported  # the scan sees the product
    assert imported - pinned == set(), "imported by the product but not pinned in requirements.txt"
