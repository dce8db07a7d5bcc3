"""The benchmark's machinery end to end (`python -m bench --quick`): seeding, verification through the API,
both servers, wrk, the publish driver, RSS and the table. Tiny datasets and 1 s runs, so the numbers mean
nothing; what is checked is that every workload ran and reported a positive rate. In the PostgreSQL lane
the PostgreSQL half (a database created and dropped in that cluster) runs too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LABELS = (
    "raw ASGI, fixed JSON (the ceiling)",
    "GetChannel (production, 3 builds x 2 images)",
    "GetIteration by fingerprint",
    "GetBucket",
    "ListIterations, first page",
    "ListIterations, deep page",
    "ListBuckets, first page",
    "Packer publish, one worker (complete publishes/s)",
    "Packer publish, --workers 2 (complete publishes/s)",
)


def _rates(table: str, label: str) -> list[float]:
    """The two req/s cells (small and large dataset) of the row that starts with label."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(label):
            return [float(re.sub(r"[^\d.]", "", cells[1])), float(re.sub(r"[^\d.]", "", cells[5]))]
    raise AssertionError(f"no row {label!r} in:\n{table}")


def test_quick_benchmark_reports_every_workload(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk; scripts/test installs it when run as root)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    postgres = os.environ.get("PACKYARD_TEST_POSTGRES_URL")
    if postgres:
        env["PACKYARD_DATABASE_URL"] = postgres
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--quick", "--publish-workers", "2"),
            *("--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    tables = out.stdout.split("packyard on ")[1:]
    assert [t.split(",", 1)[0] for t in tables] == (["SQLite", "PostgreSQL"] if postgres else ["SQLite"])
    for table in tables:
        for label in LABELS:
            small, large = _rates(table, label)
            assert small > 0, f"{label}: {small}"
            assert large > 0, f"{label}: {large}"
        assert "peak RSS of the server (VmHWM)" in table
        assert "peak RSS of a worker, --workers 2" in table
    assert "verified through the API" in out.stderr
    verdicts = [line for line in out.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert any("GetChannel at" in v for v in verdicts)
    assert any("Packer publish on SQLite" in v for v in verdicts)
    assert any("peak RSS" in v for v in verdicts)
    # Metrics and JSON logs off and on, at the largest SQLite dataset: both sides measured, the observed
    # server seen counting and logging every GetChannel request it answered.
    assert any("metrics and JSON request logs on GetChannel at 500" in v for v in verdicts)
    assert "GetChannel at 500 with metrics and JSON request logs off / on, alternating runs" in tables[0]
    if postgres:
        assert any("GetChannel PostgreSQL/SQLite" in v for v in verdicts)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for run in results["runs"]:
        for size in run["sizes"]:
            assert size["peak_rss"] > 0
            assert size["worker_peak_rss"] > 0
            assert size["publish_workers"] == 2
            assert not [k for k, m in size["results"].items() if m["errors"]], size["results"]
        observed = [size["observed"] for size in run["sizes"] if size["observed"] is not None]
        if run["name"] == "SQLite":
            assert len(observed) == 1
            (o,) = observed
            assert len(o["off_rps"]) == len(o["on_rps"]) == len(o["off_cpu_us"]) == len(o["on_cpu_us"]) == 4
            assert min(o["off_rps"] + o["on_rps"]) > 0
            assert min(o["off_cpu_us"] + o["on_cpu_us"]) > 0  # the server's CPU time per request, read from /proc
            assert o["counted"] >= o["requested"] > 0
            assert o["logged"] >= o["requested"]
            assert not o["errors"]
        else:
            assert observed == []
