"""No module of the package grows past a size one can hold in mind: past it, split it by what it does
(storage/sql.py held nine repositories and the read cache's queries in 1,285 lines before it was split)."""

from __future__ import annotations

from pathlib import Path

MAX_LINES = 600
SOURCE = Path(__file__).resolve().parents[1] / "src"  # src/**/*.py


def oversized(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found[str(path.relative_to(root))] = lines
    return found


def test_no_module_is_over_the_limit() -> None:
    assert oversized(SOURCE) == {}, f"modules over {MAX_LINES} lines; split them by what they do"


def test_the_check_counts_lines(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * 601)
    (tmp_path / "small.py").write_text("x = 1\n" * 600)
    assert oversized(tmp_path) == {"pkg/big.py": 601}
