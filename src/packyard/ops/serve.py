"""`packyard serve`'s operational flags: where logs go and in what format, and where metrics are served.

The flags set the PACKYARD_* variables they stand for, so that the worker processes of `--workers N`
(which build their app from the environment) see the same settings as a single process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packyard.config import Settings
from packyard.ops.settings import LOG_FORMATS, OpsSettings

if TYPE_CHECKING:
    from packyard.http.app import App


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="json (one object per line) or plain (PACKYARD_LOG_FORMAT; default: plain when stderr is a "
        "terminal, json otherwise)",
    )
    p.add_argument("--log-file", help="write the log to this file instead of stderr (PACKYARD_LOG_FILE)")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at /metrics on a listener of their own, without a token "
        "(PACKYARD_METRICS_PORT; default: none)",
    )
    p.add_argument(
        "--metrics-host",
        help="the address of the metrics listener (PACKYARD_METRICS_HOST; default 127.0.0.1, this machine only)",
    )


def settings(args: argparse.Namespace, base: Settings) -> Settings:
    """base with the operational flags applied (also exported for worker processes), and the log format
    decided: the flag, else PACKYARD_LOG_FORMAT, else plain on a terminal and json otherwise."""
    for flag, name in (
        ("log_format", "PACKYARD_LOG_FORMAT"),
        ("log_file", "PACKYARD_LOG_FILE"),
        ("metrics_port", "PACKYARD_METRICS_PORT"),
        ("metrics_host", "PACKYARD_METRICS_HOST"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[name] = str(value)
    ops = OpsSettings.from_env()
    if ops.log_format is None:
        terminal = ops.log_file is None and sys.stderr.isatty()
        ops = replace(ops, log_format="plain" if terminal else "json")
        os.environ["PACKYARD_LOG_FORMAT"] = ops.log_format or "json"
    if ops.log_file is not None:
        try:
            ops.log_file.parent.mkdir(parents=True, exist_ok=True)
            with ops.log_file.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise SystemExit(f"packyard: can't write the log file {ops.log_file}: {exc.strerror}") from None
    return replace(base, ops=ops)


def uvicorn_options(ops: OpsSettings, log_level: str) -> dict[str, Any]:
    from packyard.http.access_log import log_config  # noqa: PLC0415

    file = str(ops.log_file) if ops.log_file is not None else None
    # uvicorn's own access log is off: packyard writes one line per request itself (http/access_log.py).
    return {"log_config": log_config(ops.log_format or "json", log_level, file), "access_log": False}


@contextlib.contextmanager
def metrics(settings: Settings, *, workers: int, app: App | None = None) -> Iterator[Settings]:
    """Around uvicorn.run: with several workers and metrics on, the private directory where each worker
    leaves its counts (made fresh, removed afterwards); with --metrics-port, its listener (in this
    process: for several workers the supervising one, which adds up the workers' counts). Yields the
    settings the app(s) should be built with."""
    from packyard.ops import metrics as m  # noqa: PLC0415 - prometheus_client loads only for serve

    ops = settings.ops
    if not ops.metrics:
        yield settings
        return
    directory: Path | None = None
    stop = None
    db = None
    try:
        if workers > 1:
            directory = Path(tempfile.mkdtemp(prefix="packyard-metrics-"))  # 0700, and new for every run
            os.environ["PACKYARD_METRICS_DIR"] = str(directory)
            settings = replace(settings, ops=replace(ops, metrics_dir=directory))
        if ops.metrics_port is not None:
            if directory is not None:
                from packyard.storage.db import Database  # noqa: PLC0415

                db = Database(settings.effective_database_url)
                shared = directory
                reg = m.registry(lambda: m.merge(m.read_states(shared, skip_own=False)), db, process=False)
            else:
                assert app is not None
                assert app.services.metrics_registry is not None
                reg = app.services.metrics_registry
            stop = m.serve_port(ops.metrics_host, ops.metrics_port, reg)
        yield settings
    finally:
        if stop is not None:
            stop()
        if db is not None:
            db.dispose()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop("PACKYARD_METRICS_DIR", None)
