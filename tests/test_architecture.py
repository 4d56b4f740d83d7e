"""The layout rules of docs/architecture.md, checked on every module of every app.

- the import graph: ``lint-imports`` with the contracts in pyproject.toml (layers and the Django-free
  engine; function-level imports count);
- only ``arena`` writes arena's tables, by ORM (``Model.objects....create/update/delete/...``) or SQL;
- no app module over 500 lines (migrations aside): past that it becomes a package by concern.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "core", "arena", "annotations", "preferences", "rating")
MAX_LINES = 500
ORM_WRITES = {
    "create",
    "bulk_create",
    "bulk_update",
    "update",
    "delete",
    "get_or_create",
    "update_or_create",
    "raw",
}
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE|COPY)\s+\"?arena_", re.I)


def _modules(*apps: str) -> Iterator[Path]:
    for app in apps:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def arena_table_writes(source: str) -> list[str]:
    """The places in a module's source that write an arena table: an ORM write reached from a
    model imported from ``arena.models`` (``Vote.objects.filter(...).update(...)``), or a string
    holding SQL that writes an ``arena_*`` table."""
    tree = ast.parse(source)
    arena_models: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "arena.models":
            arena_models.update(alias.asname or alias.name for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_WRITE.search(node.value):
                found.append(f"line {node.lineno}: SQL {SQL_WRITE.search(node.value)[0]!r}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ORM_WRITES
        ):
            root = node.func.value
            while isinstance(root, ast.Call | ast.Attribute):
                root = root.func if isinstance(root, ast.Call) else root.value
            if isinstance(root, ast.Name) and root.id in arena_models:
                found.append(f"line {node.lineno}: {root.id}...{node.func.attr}()")
    return found


def test_import_rules_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_the_write_check_sees_orm_and_sql_writes():
    sample = (
        "from arena.models import Vote as V, LLM\n"
        "def f(ids):\n"
        "    V.objects.filter(id__in=ids).update(flags=[])\n"
        "    LLM.objects.get_or_create(slug='x')\n"
        "    LLM.objects.filter(active=True).count()\n"
        "    run('UPDATE arena_vote SET flags = flags')\n"
        "    run('SELECT * FROM arena_vote')\n"
    )
    assert arena_table_writes(sample) == [
        "line 3: V...update()",
        "line 4: LLM...get_or_create()",
        "line 6: SQL 'UPDATE arena_'",
    ]


@pytest.mark.parametrize("app", [a for a in APPS if a != "arena"])
def test_only_arena_writes_arena_tables(app):
    writes = {
        str(path.relative_to(ROOT)): found
        for path in _modules(app)
        if (found := arena_table_writes(path.read_text()))
    }
    assert writes == {}, "write through an arena service instead"


def test_no_app_module_is_over_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules(*APPS)
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, "split these into packages by concern"


def _imported_names(tree: ast.AST, module: str) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def test_no_module_binds_response_to_both_the_arena_model_and_drf_s_response():
    """The arena's ``Response`` (an LLM's answer, the domain's word, table ``arena_response``)
    and DRF's HTTP ``Response`` must never meet under one name in a module; import one of them
    under another name (``from rest_framework.response import Response as ApiResponse``)."""
    both = []
    for path in _modules(*APPS):
        tree = ast.parse(path.read_text())
        names = _imported_names(tree, "arena.models") & _imported_names(
            tree, "rest_framework.response"
        )
        if "Response" in names:
            both.append(str(path.relative_to(ROOT)))
    assert both == []
