"""Settings, read from PACKYARD_* environment variables and command-line flags."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from packyard.auth.oidc_settings import OidcSettings
from packyard.domain.rules import Limits
from packyard.ops.settings import OpsSettings


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "packyard"


@dataclass(frozen=True)
class ConnectionLimits:
    """What one worker allows a client connection: how long it may take to send a request's head and its
    body, how large the head may be, and how many connections the worker holds at once. Enforced by the
    HTTP protocol (packyard/http/protocol.py) and documented in docs/limits.md."""

    head_timeout_seconds: float = 10.0  # from the connection (or the next request's first byte) to its last header
    body_timeout_seconds: float = 30.0  # from the end of the head to the end of the body
    max_head_bytes: int = 64 * 1024  # request line and headers together; more gets a 431
    max_headers: int = 100  # more gets a 431
    max_connections: int | None = None  # per worker; None is 1,000, lowered to fit the descriptor limit

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ConnectionLimits:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for key, name, kind in (
            ("head_timeout_seconds", "PACKYARD_HEAD_TIMEOUT_SECONDS", float),
            ("body_timeout_seconds", "PACKYARD_BODY_TIMEOUT_SECONDS", float),
            ("max_head_bytes", "PACKYARD_MAX_HEAD_BYTES", int),
            ("max_headers", "PACKYARD_MAX_HEADERS", int),
            ("max_connections", "PACKYARD_MAX_CONNECTIONS", int),
        ):
            if env.get(name):
                try:
                    value = kind(env[name])
                except ValueError:
                    value = 0
                if not 0 < value < math.inf:
                    what = "number of seconds" if kind is float else "whole number"
                    raise SystemExit(f"packyard: {name} must be a positive {what}, not {env[name]!r}")
                values[key] = value
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    secret_key: str | None = None
    token_ttl_seconds: int = 3600
    heartbeat_grace_seconds: int = 600
    job_interval_seconds: float = 1.0
    public_url: str | None = None
    read_cache_bytes: int = 16 * 1024 * 1024  # per process; 0 turns the read cache off
    limits: Limits = field(default_factory=Limits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    ops: OpsSettings = field(default_factory=OpsSettings)  # metrics and logs (packyard/ops/settings.py)
    oidc: OidcSettings | None = None  # the console's single sign-on (auth/oidc_settings.py); None: none

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        if env.get("PACKYARD_DATA_DIR"):
            values["data_dir"] = Path(env["PACKYARD_DATA_DIR"])
        if env.get("PACKYARD_DATABASE_URL"):
            values["database_url"] = env["PACKYARD_DATABASE_URL"]
        if env.get("PACKYARD_PUBLIC_URL"):
            url = urlsplit(env["PACKYARD_PUBLIC_URL"])
            if url.scheme not in ("http", "https") or not url.netloc:
                raise SystemExit(
                    "packyard: PACKYARD_PUBLIC_URL must be where clients reach this server, such as "
                    f"https://packyard.example.com, not {env['PACKYARD_PUBLIC_URL']!r}"
                )
            values["public_url"] = env["PACKYARD_PUBLIC_URL"]
        if env.get("PACKYARD_SECRET_KEY"):
            values["secret_key"] = env["PACKYARD_SECRET_KEY"]
        if env.get("PACKYARD_READ_CACHE_MB"):
            try:
                megabytes = float(env["PACKYARD_READ_CACHE_MB"])
            except ValueError:
                megabytes = math.nan
            if not 0 <= megabytes < math.inf:
                raise SystemExit(
                    "packyard: PACKYARD_READ_CACHE_MB must be a number of megabytes (0 turns the cache off), "
                    f"not {env['PACKYARD_READ_CACHE_MB']!r}"
                )
            values["read_cache_bytes"] = int(megabytes * 1024 * 1024)
        for key, name in (
            ("token_ttl_seconds", "PACKYARD_TOKEN_TTL_SECONDS"),
            ("heartbeat_grace_seconds", "PACKYARD_HEARTBEAT_GRACE_SECONDS"),
            ("job_interval_seconds", "PACKYARD_JOB_INTERVAL_SECONDS"),
        ):
            if env.get(name):
                try:
                    number = float(env[name]) if key == "job_interval_seconds" else int(env[name])
                except ValueError:
                    number = 0
                if not 0 < number < math.inf:
                    raise SystemExit(f"packyard: {name} must be a positive number of seconds, not {env[name]!r}")
                values[key] = number
        values["connections"] = ConnectionLimits.from_env(env)
        values["ops"] = OpsSettings.from_env(env)
        values["oidc"] = OidcSettings.from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'packyard.db').resolve()}"
