"""The request log: one line per request, in JSON or plain text, with its request id, and never a secret.

Each answered request gets a line with its time (RFC 3339, UTC), request id, operation, API tree,
principal id (the authenticated principal's id, never its token or secret; null when none was
authenticated), status, latency, method, peer address and path. The path's query string has the value
of every parameter whose name looks secret (access_token, token, client_secret, code, password, key,
signature ...), every value that looks like a JWT, and every bare parameter without a name replaced by
``[redacted]`` (`redact_query`): packyard takes its bearer token only from the Authorization header,
but a client, a proxy or a person pasting a URL can still put one in ``?access_token=...``. Headers and
bodies are never logged.

The request id is the client's ``X-Request-Id`` when it is sane (1 to 128 characters out of letters,
digits and ``._:@/+=-``), or one made here (a random per-process prefix and a counter: unique across
processes and restarts without a random draw per request); it is sent back in the answer's
``X-Request-Id`` header either way.

Cost. The line's fields are gathered as the answer leaves (a tuple appended to a list); the lines
go to the standard `logging` module together, as one record on the ``packyard.access`` logger, at most
FLUSH_SECONDS after the first of them (or sooner, once MAX_PENDING are waiting, and when the server
stops), and the handler writes them with one write(). A record and a write() per request would cost
more than the request's own work allows (docs/performance.md, docs/operations.md); the price is that
a line reaches the log up to FLUSH_SECONDS after its answer left, and that a process that is killed
(not stopped) loses the lines of that last moment. A formatter here writes the record as one line per
request.

Formats: `JsonFormatter` (one JSON object per line, encoded by msgspec, which packyard already uses for
every answer) and `PlainFormatter` (for a terminal). Both also format every other record (uvicorn's,
packyard's warnings) in the same format. `log_config` is the logging configuration `packyard serve`
hands uvicorn, which applies it in every worker process too.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import re
import time
from bisect import bisect_left
from collections.abc import MutableMapping
from itertools import count
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import msgspec

from packyard.ops.metrics import REQUEST_BOUNDS_NS

if TYPE_CHECKING:
    from packyard.http.request import Request
    from packyard.http.routing import Route
    from packyard.ops.metrics import Metrics

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
ACCESS_LOGGER = "packyard.access"
FLUSH_SECONDS = 0.02  # the longest a request's line waits to be written
MAX_PENDING = 256  # lines waiting that are written at once (more: the batch's text outgrows small allocations)
access = logging.getLogger(ACCESS_LOGGER)


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


# ---- request ids

_SANE_ID = re.compile(rb"[A-Za-z0-9._:@/+=\-]{1,128}")


class RequestIds:
    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode() + b"-"
        self._counter = count(1)

    def for_request(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The client's X-Request-Id when it is sane, else a new one."""
        for key, value in headers:
            if key == b"x-request-id":
                if _SANE_ID.fullmatch(value):
                    return value
                break
        return b"%s%x" % (self._prefix, next(self._counter))


# ---- one line per request


class Line(msgspec.Struct, gc=False):  # strings and numbers only: nothing for the garbage collector to track
    time: str
    level: str
    logger: str
    request_id: str
    operation: str
    api: str
    principal_id: str | None
    status: int
    latency_ms: float
    method: str
    path: str
    client: str


class RequestLines:
    """The lines of the requests answered together (see FLUSH_SECONDS): one logging record's message."""

    __slots__ = ("lines",)

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines

    def __str__(self) -> str:
        return "\n".join(plain_line(line) for line in self.lines)


def plain_line(line: Line) -> str:
    principal = line.principal_id or "-"
    return (
        f'{line.time} {line.client} "{line.method} {line.path}" {line.status} {line.latency_ms:.2f}ms '
        f"{line.operation} {line.api} principal={principal} id={line.request_id}"
    )


_last = (-1, "")  # the last millisecond formatted, and its text


def rfc3339(ns: int) -> str:
    """UTC, milliseconds, Z: 2026-12-07T12:00:00.123Z (answers come many to a millisecond under load)."""
    global _last  # noqa: PLW0603 - a one-entry cache
    ms = ns // 1_000_000
    last = _last
    if ms == last[0]:
        return last[1]
    second, rest = divmod(ms, 1000)
    text = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{rest:03d}Z"
    _last = (ms, text)
    return text


class RequestLog:
    """Per request: its id, its counts (when metrics are on) and its log line (when the access logger
    is on for INFO). `done` is the request path's part; `flush` writes the lines gathered since the
    last (see FLUSH_SECONDS)."""

    def __init__(self, slots: Metrics, *, counting: bool) -> None:
        self.ids = RequestIds()
        self.slots = slots
        self.counting = counting
        self.logging = access.isEnabledFor(logging.INFO)
        self._pending: list[tuple[Any, ...]] = []
        self._timer: asyncio.TimerHandle | None = None

    def refresh(self) -> None:
        """Re-read whether request lines are wanted (after logging was configured, and on SIGHUP)."""
        self.logging = access.isEnabledFor(logging.INFO)

    def done(
        self,
        route: Route | None,
        request: Request | None,
        status: int,
        start: int,
        rid: bytes,
        scope: MutableMapping[str, Any],
    ) -> None:
        end = perf_counter_ns()
        slot = self.slots.routes.get(id(route), self.slots.unmatched)
        if self.counting:  # RouteCounts.add, in line: this runs for every request
            series = slot.by_status.get(status)
            if series is None:
                series = slot.series(status)
            series.count += 1
            series.sum_ns += end - start
            series.buckets[bisect_left(REQUEST_BOUNDS_NS, end - start)] += 1
        if self.logging:
            principal = request.principal_id if request is not None else ""
            pending = self._pending
            client = scope.get("client")  # what the line needs, not the scope (which holds much more)
            query = scope.get("query_string")
            path = scope.get("raw_path") or scope["path"]
            # Strings, numbers and the client's (host, port) only: tuples the garbage collector stops tracking.
            line = (
                end,
                end - start,
                status,
                slot.operation,
                slot.api,
                rid,
                principal,
                scope["method"],
                path,
                query,
                client,
            )
            pending.append(line)
            if len(pending) == 1:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            elif len(pending) >= MAX_PENDING:
                self.flush()

    def flush(self) -> None:
        """Write the lines gathered so far (on a timer; when many are waiting; when the server stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        offset = time.time_ns() - perf_counter_ns()  # perf_counter instants to wall-clock time
        lines = []
        for end, ns, status, operation, api, rid, principal, method, path, query, client in pending:  # kept lean
            target = path.decode("latin-1") if type(path) is bytes else path  # as sent: %0A stays %0A
            if query:
                target = redact_query(f"{target}?{query.decode('latin-1')}")
            lines.append(
                Line(  # the fields in order
                    rfc3339(end + offset),
                    "info",
                    ACCESS_LOGGER,
                    rid.decode("ascii", "replace"),
                    operation,
                    api,
                    principal or None,
                    status,
                    ns // 1000 / 1000,  # to the microsecond
                    method,
                    target,
                    f"{client[0]}:{client[1]}" if client else "-",
                )
            )
        access.info(RequestLines(lines))


# ---- formatters


_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: a request line's fields (see Line), or for any other record its time,
    level, logger, message and, with an exception, its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, RequestLines):
            return _encoder.encode_lines(record.msg.lines).decode()[:-1]
        entry: dict[str, Any] = {
            "time": rfc3339(int(record.created * 1e9)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class PlainFormatter(logging.Formatter):
    """A line a person reads: UTC time, level, logger and message; a request line as plain_line."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, RequestLines):
            return str(record.msg)
        text = f"{rfc3339(int(record.created * 1e9))} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class ReopeningFileHandler(logging.handlers.WatchedFileHandler):
    """A log file that is opened again when it was moved away (logrotate), checked as each record is
    written, and on SIGHUP (`reopen_log_files`)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.flush()
                self.stream.close()
            self.stream = self._open()
            self._statstream()
        finally:
            self.release()


def reopen_log_files() -> int:
    """Reopen every log file packyard writes (SIGHUP); returns how many."""
    reopened = 0
    for name in ("", "packyard", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, ReopeningFileHandler):
                handler.reopen()
                reopened += 1
    return reopened


def log_config(log_format: str, level: str, log_file: str | None = None) -> dict[str, Any]:
    """The logging configuration of `packyard serve` (uvicorn applies it in each worker process): every
    record in one format on stderr or in log_file, request lines on packyard.access at INFO, uvicorn's
    own access log off (packyard's request lines replace it)."""
    formatter = JsonFormatter if log_format == "json" else PlainFormatter
    handler: dict[str, Any] = (
        {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        if log_file is None
        else {"class": f"{__name__}.ReopeningFileHandler", "filename": log_file, "encoding": "utf-8"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"packyard": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"packyard": {**handler, "formatter": "packyard"}},
        "loggers": {
            "uvicorn": {"handlers": ["packyard"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "propagate": False},
            "packyard": {"handlers": ["packyard"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["packyard"], "level": "WARNING"},
    }
