"""The operational settings: where metrics are served and who may read them, and how logs are written.

Read from PACKYARD_* environment variables (the flags of `packyard serve` set the same variables, so
that the worker processes of `--workers N`, which build their app from the environment, see them too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_FORMATS = ("json", "plain")


@dataclass(frozen=True)
class OpsSettings:
    # /metrics on the API's own port, for a bearer token equal to this value (None: not served there).
    metrics_token: str | None = None
    # /metrics on a listener of its own at metrics_host:metrics_port, without a token (None: none).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # json or plain; None: plain when stderr is a terminal, json otherwise (resolved by `packyard serve`).
    log_format: str | None = None
    log_file: Path | None = None  # None: stderr
    # Set by `packyard serve --workers N` for its workers (not a setting for people): the private directory
    # where each worker leaves its counts for the process that answers a scrape (ops/metrics.py).
    metrics_dir: Path | None = None

    @property
    def metrics(self) -> bool:
        """Whether requests are counted at all: only when something can read the counts."""
        return self.metrics_token is not None or self.metrics_port is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpsSettings:
        env = os.environ if environ is None else environ
        token = env.get("PACKYARD_METRICS_TOKEN") or None
        if token is not None and len(token) < 16:
            raise SystemExit(
                "PACKYARD_METRICS_TOKEN must be at least 16 characters (it guards /metrics on the API's port); "
                "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        port = None
        if env.get("PACKYARD_METRICS_PORT"):
            raw = env["PACKYARD_METRICS_PORT"]
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise SystemExit(f"PACKYARD_METRICS_PORT must be a TCP port number (1-65535), not {raw!r}")
            port = int(raw)
        log_format = env.get("PACKYARD_LOG_FORMAT") or None
        if log_format is not None and log_format not in LOG_FORMATS:
            raise SystemExit(f"PACKYARD_LOG_FORMAT must be json or plain, not {log_format!r}")
        return cls(
            metrics_token=token,
            metrics_port=port,
            metrics_host=env.get("PACKYARD_METRICS_HOST") or "127.0.0.1",
            log_format=log_format,
            log_file=Path(env["PACKYARD_LOG_FILE"]) if env.get("PACKYARD_LOG_FILE") else None,
            metrics_dir=Path(env["PACKYARD_METRICS_DIR"]) if env.get("PACKYARD_METRICS_DIR") else None,
        )
