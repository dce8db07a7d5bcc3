"""The domain's modules import each other without a cycle, also through imports inside functions: a
lazy import that holds a loop apart is a cycle all the same."""

from __future__ import annotations

import ast
from pathlib import Path

import packyard.domain

PACKAGE = "packyard.domain"
DOMAIN = Path(packyard.domain.__file__).parent
OUTSIDE = ("packyard.http", "packyard.storage", "packyard.pipeline", "sqlalchemy", "msgspec")


def _imports(path: Path, directory: Path) -> set[str]:
    """The domain modules a module imports, wherever in it the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            # `from packyard.domain import lookup` names a module; `from packyard.domain.x import y` one too.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                module = name[len(PACKAGE) + 1 :].split(".")[0]
                if (directory / f"{module}.py").exists():
                    found.add(module)
    found.discard(path.stem)
    return found


def graph(directory: Path = DOMAIN) -> dict[str, set[str]]:
    return {p.stem: _imports(p, directory) for p in sorted(directory.glob("*.py")) if p.stem != "__init__"}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk, each as the path that closes it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            walk(start, [start])
    return found


def test_the_domain_has_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, "import cycles in packyard.domain: " + "; ".join(" -> ".join(c) for c in found)


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from packyard.domain import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from packyard.domain.a import x\n    return x\n")
    edges = graph(tmp_path)
    assert edges == {"a": {"b"}, "b": {"a"}}
    assert cycles(edges) == [["a", "b", "a"]]


def test_the_domain_imports_neither_http_nor_sql() -> None:
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for module in modules:
                assert not module.startswith(OUTSIDE), f"{path.name} imports {module}"


STORAGE = DOMAIN.parent / "storage"
NOT_FROM_STORAGE = ("packyard.auth", "packyard.http", "packyard.pipeline")


def _imported(path: Path) -> list[str]:
    """Every module a file imports, wherever in it the import statement stands."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return found


def test_storage_reaches_auth_http_and_the_pipeline_only_through_ports() -> None:
    """Storage is given what it needs from auth (the vault, as a domain/ports.py Sealer) and imports
    neither it nor the layers above."""
    paths = sorted(STORAGE.rglob("*.py"))
    assert any(p.name == "unit_of_work.py" for p in paths)
    offending = [
        f"{path.relative_to(STORAGE)} imports {module}"
        for path in paths
        for module in _imported(path)
        if module.startswith(NOT_FROM_STORAGE)
    ]
    assert not offending, offending


def test_the_storage_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from packyard.auth.vault import Vault\n    return Vault\n")
    assert "packyard.auth.vault" in _imported(module)
