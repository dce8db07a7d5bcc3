"""The repository stands alone: a LICENSE matching pyproject's license, a suite that finds HashiCorp's API
documents through PACKYARD_SPEC_DIR or beside the checkout and otherwise stops at once with one line that
says where to get them, and a server that never reads those documents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.contract import validator
from tests.contract.validator import SPEC_FILES, missing_spec, spec_dir

REPO = Path(__file__).resolve().parents[1]


def test_the_license_file_is_the_license_pyproject_names() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MPL-2.0"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("Mozilla Public License Version 2.0\n")
    assert "Exhibit A - Source Code Form License Notice" in text
    assert len(text.splitlines()) > 350  # the whole license, not a pointer to it


def test_the_spec_dir_may_hold_the_documents_or_an_hcp_directory_of_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "hcp").mkdir()
    for name in SPEC_FILES:
        (tmp_path / "hcp" / name).write_text("{}")
    monkeypatch.setenv("PACKYARD_SPEC_DIR", str(tmp_path))  # like shared/spec
    assert spec_dir() == tmp_path / "hcp"
    assert missing_spec() is None
    monkeypatch.setenv("PACKYARD_SPEC_DIR", str(tmp_path / "hcp"))  # like shared/spec/hcp
    assert spec_dir() == tmp_path / "hcp"
    assert missing_spec() is None
    (tmp_path / "hcp" / SPEC_FILES[2]).unlink()
    problem = missing_spec()
    assert problem is not None
    assert SPEC_FILES[2] in problem
    assert SPEC_FILES[0] not in problem
    assert "PACKYARD_SPEC_DIR" in problem


def _copy_of_the_suite(tmp_path: Path) -> Path:
    """The tests and pyproject.toml where no shared/spec lies beside them, as in a fresh clone."""
    clone = tmp_path / "clone" / "packyard"
    clone.mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", clone)
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    assert not (clone.parent / "shared").exists()
    return clone


def _pytest(clone: Path, spec: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PACKYARD_SPEC_DIR"}
    if spec is not None:
        env["PACKYARD_SPEC_DIR"] = spec
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_clone_without_the_documents_stops_at_once_with_one_line(tmp_path: Path) -> None:
    clone = _copy_of_the_suite(tmp_path)
    for spec in (None, str(tmp_path / "nowhere")):
        result = _pytest(clone, spec)
        assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error: nothing ran
        assert result.stdout == ""
        lines = [line for line in result.stderr.splitlines() if line.strip()]  # pytest adds a blank line
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("ERROR: the tests need HashiCorp's API documents")
        assert "PACKYARD_SPEC_DIR" in lines[0]
        assert "https://developer.hashicorp.com/hcp/api-docs/packer" in lines[0]
        assert "Traceback" not in result.stderr


def test_a_clone_given_the_documents_runs_its_suite(tmp_path: Path) -> None:
    documents = spec_dir()
    clone = _copy_of_the_suite(tmp_path)
    for spec in (documents, documents.parent):  # the documents' directory, or the one holding hcp/
        result = _pytest(clone, str(spec), "tests/contract/test_validator.py", "-k", "document_loads")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout  # the three documents' loading tests


def test_the_server_never_reads_the_documents() -> None:
    """They are the tests' contract, not the server's: nothing under src names them or the variable."""
    source = REPO / "src" / "packyard"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert "swagger.json" not in text, path
        assert "PACKYARD_SPEC_DIR" not in text, path
    assert validator.__file__.startswith(str(REPO / "tests"))
