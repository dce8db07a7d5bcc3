"""uvicorn's access log without secrets from query strings.

uvicorn logs every request as ``client - "METHOD /path?query HTTP/1.1" status``, the query string as the
client sent it. packyard takes its bearer token only from the Authorization header, but a client (or a
proxy, or a person pasting a URL) can still put one in ``?access_token=...``, and an access log is read
by more people than the database. ``RedactQuery`` rewrites the request target of each access log record:
the value of every parameter whose name looks secret (access_token, token, client_secret, code,
password, key, signature ...), every value that looks like a JWT, and every bare parameter without a
name become ``[redacted]``; the path and the other parameters stay, so the line still says what was
asked. ``log_config`` is uvicorn's own logging configuration with that filter on the ``uvicorn.access``
logger; uvicorn applies it in every worker process too (``--workers N``).
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# A parameter whose name contains one of these has its value redacted.
SECRET_NAME_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "code",
    "key",
    "signature",
    "auth",
    "credential",
    "session",
    "assertion",
)
_FILTER = "packyard_redact_query"


def _secret_name(name: str) -> bool:
    decoded = unquote_plus(name).lower()
    return any(part in decoded for part in SECRET_NAME_PARTS)


def _looks_like_jwt(value: str) -> bool:
    return unquote_plus(value).lstrip().startswith("eyJ")  # base64url of '{"': every JWT's header


def redact_query(target: str) -> str:
    """A request target with the values of secret-looking query parameters replaced by [redacted]."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq:
            parts.append(REDACTED if part else part)  # a bare parameter: nothing says what it is
        elif _secret_name(name) or _looks_like_jwt(value):
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class RedactQuery(logging.Filter):
    """Redacts the request target of uvicorn's access log records (their third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with RedactQuery on its access logger."""
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - only `packyard serve` needs uvicorn

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})[_FILTER] = {"()": f"{__name__}.RedactQuery"}
    access = config["loggers"]["uvicorn.access"]
    access["filters"] = [*access.get("filters", []), _FILTER]
    # packyard's own lines (the TLS renewal and reload, for one) beside uvicorn's, on stderr.
    config["loggers"]["packyard"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
