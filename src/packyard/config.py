"""Settings, read from PACKYARD_* environment variables and command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from packyard.domain.rules import Limits


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "packyard"


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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        if env.get("PACKYARD_DATA_DIR"):
            values["data_dir"] = Path(env["PACKYARD_DATA_DIR"])
        if env.get("PACKYARD_DATABASE_URL"):
            values["database_url"] = env["PACKYARD_DATABASE_URL"]
        if env.get("PACKYARD_PUBLIC_URL"):
            values["public_url"] = env["PACKYARD_PUBLIC_URL"]
        if env.get("PACKYARD_SECRET_KEY"):
            values["secret_key"] = env["PACKYARD_SECRET_KEY"]
        if env.get("PACKYARD_READ_CACHE_MB"):
            try:
                values["read_cache_bytes"] = int(float(env["PACKYARD_READ_CACHE_MB"]) * 1024 * 1024)
            except ValueError:
                raise SystemExit(
                    f"PACKYARD_READ_CACHE_MB must be a number of megabytes, not {env['PACKYARD_READ_CACHE_MB']!r}"
                ) from None
        for key, name in (
            ("token_ttl_seconds", "PACKYARD_TOKEN_TTL_SECONDS"),
            ("heartbeat_grace_seconds", "PACKYARD_HEARTBEAT_GRACE_SECONDS"),
            ("job_interval_seconds", "PACKYARD_JOB_INTERVAL_SECONDS"),
        ):
            if env.get(name):
                try:
                    values[key] = float(env[name]) if key == "job_interval_seconds" else int(env[name])
                except ValueError:
                    raise SystemExit(f"{name} must be a number of seconds, not {env[name]!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'packyard.db').resolve()}"
