"""The benchmark of issue 7: `python -m bench` (see README.md, "Benchmark", and docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
