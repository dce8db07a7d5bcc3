"""The fuzzing lane prints its counts in the terminal summary, so they show even when pytest captures output."""

from __future__ import annotations

import pytest

#: Lines the lane wants printed at the end of the run (filled by tests/fuzz/test_schemathesis.py).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)
