"""rating.engine is Django-free: no module imports Django or a project app, even lazily."""

import ast
import subprocess
import sys
from pathlib import Path

import rating.engine

ENGINE = Path(rating.engine.__file__).parent
PROJECT = ("django", "rest_framework", "channels", "celery", "arena", "annotations",
           "preferences", "core", "config")  # fmt: skip


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_engine_module_imports_django_or_the_project_anywhere_in_its_code():
    modules = sorted(ENGINE.rglob("*.py"))
    assert len(modules) > 10
    bad = [
        f"{path.name}: {name}"
        for path in modules
        for name in _imported_modules(path)
        if name.split(".")[0] in PROJECT
        or (name.startswith("rating") and not name.startswith("rating.engine"))
    ]
    assert bad == []


def test_importing_every_engine_module_loads_no_django():
    names = [f"rating.engine.{p.stem}" for p in sorted(ENGINE.glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=ENGINE.parent.parent,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
