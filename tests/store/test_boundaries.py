"""The store is the only door to the data: nothing outside ``faceid.store`` reaches its tables.

Read from the source with ``ast`` (imports inside functions count; comments and strings do not): a module
outside the package that imports the table definitions (``faceid.store.schema``) or SQLAlchemy itself is
working on the tables instead of asking the store.
"""

from __future__ import annotations

import ast
from pathlib import Path

import faceid

PACKAGE = Path(faceid.__file__).parent
STORE = PACKAGE / "store"
PRIVATE_TO_THE_STORE = ("faceid.store.schema", "faceid.store._schema")
DATABASE_LIBRARIES = ("sqlalchemy", "alembic", "psycopg", "pgvector")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every module ``path`` imports, ``from a import b`` counted as ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def _outside_the_store() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if STORE not in p.parents)


def _offenders(forbidden: tuple[str, ...]) -> list[str]:
    """``path:line imports module`` for each import statement outside the store that reaches ``forbidden``."""
    offenders: dict[tuple[str, int], str] = {}
    for path in _outside_the_store():
        for line, module in _imported(path):
            if any(module == name or module.startswith(name + ".") for name in forbidden):
                offenders.setdefault((str(path.relative_to(PACKAGE.parent)), line), module)
    return [f"{where}:{line} imports {module}" for (where, line), module in sorted(offenders.items())]


def test_the_walk_sees_the_package() -> None:
    modules = _outside_the_store()
    assert len(modules) > 50 and PACKAGE / "server" / "app.py" in modules
    assert not any(STORE in p.parents for p in modules)
    # The check itself finds what it looks for: the store's own modules do import the tables.
    assert any(m in PRIVATE_TO_THE_STORE for _, m in _imported(STORE / "store.py"))


def test_no_module_outside_the_store_imports_its_tables() -> None:
    offenders = _offenders(PRIVATE_TO_THE_STORE)
    assert not offenders, "ask the store (faceid.store.Store) instead of reading its tables:\n" + "\n".join(offenders)


def test_no_module_outside_the_store_opens_the_database() -> None:
    offenders = _offenders(DATABASE_LIBRARIES)
    assert not offenders, "only faceid.store talks to the database:\n" + "\n".join(offenders)
