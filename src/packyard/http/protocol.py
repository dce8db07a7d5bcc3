"""uvicorn's httptools protocol, with each answer's head and body leaving in one socket write, and with
bounds on what a client connection may hold: time to send a request's head and body, the head's size,
and the number of connections a worker keeps open.

uvicorn writes the status line and headers when the application sends `http.response.start`, and the
body in a second write when it sends `http.response.body`: two send() calls, and two wake-ups of the
client, for every answer. Here the writes a connection makes in one turn of the event loop are joined
and go out together at the end of that turn (the next callback the loop runs), which for an answer sent
as start-then-body, as packyard's are, is one write.

uvicorn closes a connection that sits idle after an answer (its keep-alive timeout), but nothing else:
a client that never finishes a request's head, or trickles its body, holds its connection, and a
descriptor, for ever, and a head of any size is buffered. Here (see `ConnectionLimits` in
packyard/config.py and docs/limits.md):

- a head must be complete within `head_timeout_seconds` of the connection opening (or of the next
  request's first byte on a kept-alive one), and a body within `body_timeout_seconds` of its head;
- a head over `max_head_bytes` or with more than `max_headers` headers gets 431 and the connection is
  closed; an unfinished head is counted as it arrives, so a huge one is refused after one read, not
  buffered whole;
- a worker holds at most `max_connections`, kept below its descriptor limit. A connection over the bound
  evicts the oldest connection that hasn't finished its head (so a fresh one, such as a health check,
  gets in while slow clients fill the worker), or is closed at once when every connection is busy with
  a request.

An answer given before the request's body has all arrived (a body over its limit is refused on its
Content-Length) on a connection that then closes (the client sent `Connection: close`, as Python's
urllib does) would be lost to most clients: closing a socket with unread data in it makes the kernel
send a reset, and a client still sending its body sees `Connection reset` or `Broken pipe`, never the
answer. So such a close lingers: the answer is written, the write side shut down where the transport
can (plain TCP; TLS can't half-close), and the rest of the body read and dropped, unparsed, until the
client closes, or `DRAIN_MAX_BYTES` or `DRAIN_SECONDS` have passed. On a kept-alive connection uvicorn
already reads and drops the rest of the body, within the body's deadline.

The deadlines are kept by one sweep per worker (a timer every quarter of the shorter timeout, at most a
second apart, while connections are open), not a timer per request; a request costs two clock reads
and a few attribute updates. Nothing else about uvicorn changes; `packyard serve` and the benchmark's
raw ASGI ceiling both run on this protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from time import monotonic
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from packyard.config import ConnectionLimits

DEFAULT_MAX_CONNECTIONS = 1000
# How much of an answered request's unread body a closing connection reads and drops, at most, and for
# how long, so that the client gets to read the answer (docs/limits.md).
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0

# Where a connection is in reading its current request: waiting for the rest of a head, or past it.
_HEAD = 1
_BODY = 2

_TOO_LARGE_STATUS = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
_TOO_LARGE_BODY = b"Request header fields too large."
_TOO_LARGE_TAIL = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
_TOO_LARGE_TAIL %= len(_TOO_LARGE_BODY)


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (worker processes inherit it), and
    return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            # macOS: an unlimited hard limit can't be the soft one; its kernel's ceiling is the next best.
            if hard == resource.RLIM_INFINITY and soft < 10240:
                with contextlib.suppress(ValueError, OSError):
                    resource.setrlimit(resource.RLIMIT_NOFILE, (10240, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def connection_cap(configured: int | None) -> tuple[int, int | None]:
    """The most connections one worker holds, and the descriptor limit it was fitted under (None: none).

    The configured number (1,000 when unset), lowered so that an eighth of the descriptor limit (at least
    64) stays free for the worker's own files, its database connections and a burst of accepts."""
    wanted = configured or DEFAULT_MAX_CONNECTIONS
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    room = soft - min(max(64, soft // 8), soft // 2)
    return max(1, min(wanted, room)), int(soft)


class _Guard:
    """One server's (one worker's) connections: the bound on their number and their deadlines."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits, logger: logging.Logger) -> None:
        self.loop = loop
        self.logger = logger
        self.head_timeout = limits.head_timeout_seconds
        self.body_timeout = limits.body_timeout_seconds
        self.max_head_bytes = limits.max_head_bytes
        self.max_headers = limits.max_headers
        self.max_connections, fd_limit = connection_cap(limits.max_connections)
        if limits.max_connections and self.max_connections < limits.max_connections:
            logger.warning(
                "PACKYARD_MAX_CONNECTIONS=%d lowered to %d to fit this process's limit of %s open files",
                limits.max_connections,
                self.max_connections,
                fd_limit,
            )
        self.interval = min(1.0, max(0.05, min(self.head_timeout, self.body_timeout) / 4))
        self.open: set[JoinedWritesProtocol] = set()
        # The connections waiting for the rest of a head, oldest first (insertion order is start order).
        self.waiting: dict[JoinedWritesProtocol, None] = {}
        self.timer: asyncio.TimerHandle | None = None
        reasons = ("head timeout", "body timeout", "evicted", "refused", "head too large", "trailers too large")
        self.counts = dict.fromkeys(reasons, 0)
        self.last_report = float("-inf")

    @classmethod
    def of(cls, protocol: JoinedWritesProtocol) -> _Guard:
        state = protocol.server_state
        guard: _Guard | None = getattr(state, "packyard_guard", None)
        if guard is None:
            guard = cls(protocol.loop, ConnectionLimits.from_env(), protocol.logger)
            state.packyard_guard = guard  # type: ignore[attr-defined]
        return guard

    def admit(self, conn: JoinedWritesProtocol) -> bool:
        """Count a new connection in, evicting the oldest unfinished head to make room; False if no room."""
        if len(self.open) >= self.max_connections:
            if not self.waiting:
                self.counts["refused"] += 1
                return False
            oldest = next(iter(self.waiting))
            self.release(oldest)
            oldest.transport.abort()
            self.counts["evicted"] += 1
        self.open.add(conn)
        self.waiting[conn] = None
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval, self.sweep)
        return True

    def release(self, conn: JoinedWritesProtocol) -> None:
        self.open.discard(conn)
        self.waiting.pop(conn, None)

    def sweep(self) -> None:
        """Close the connections past their head or body deadline; again in `interval` while any are open."""
        self.timer = None
        now = monotonic()
        late: list[tuple[JoinedWritesProtocol, str]] = []
        head_cutoff = now - self.head_timeout
        for conn in self.waiting:  # oldest first
            if conn._since > head_cutoff:
                break
            if not conn.flow.read_paused:  # paused: a pipelined request ahead of this head is still running
                late.append((conn, "head timeout"))
        body_cutoff = now - self.body_timeout
        for conn in self.open:
            if conn._phase == _BODY and conn._since <= body_cutoff and conn._reading_body():
                late.append((conn, "body timeout"))
        for conn, reason in late:
            self.release(conn)
            conn.transport.abort()
            self.counts[reason] += 1
        if now - self.last_report >= 10.0 and any(self.counts.values()):
            self.last_report = now
            self.logger.warning(
                "connections closed by the limits (at most %d open, %gs for a head, %gs for a body): %s",
                self.max_connections,
                self.head_timeout,
                self.body_timeout,
                ", ".join(f"{n} {what}" for what, n in self.counts.items() if n),
            )
            self.counts = dict.fromkeys(self.counts, 0)
        if self.open:
            self.timer = self.loop.call_later(self.interval, self.sweep)


class _HeadTooLarge(Exception):
    pass


class _JoinedWrites:
    """A transport whose writes within one turn of the loop reach the real transport as one."""

    __slots__ = ("_held", "_lingering", "_loop", "_protocol", "_transport")

    def __init__(
        self, transport: Any, loop: asyncio.AbstractEventLoop, protocol: JoinedWritesProtocol | None = None
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._protocol = protocol
        self._held: list[bytes] = []
        self._lingering = False

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        if self._lingering:
            return
        if self._protocol is not None and self._protocol._body_unread():
            self._lingering = True
            self._protocol._linger(self._transport)
            return
        self._transport.close()

    def is_closing(self) -> bool:
        return self._lingering or bool(self._transport.is_closing())

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class JoinedWritesProtocol(HttpToolsProtocol):
    _guard: _Guard
    _phase = _HEAD
    _since = 0.0  # monotonic time the current phase (head or body) began
    _head_bytes = 0  # bytes read while the current head was unfinished (added after each read)
    _read = 0  # size of the current read
    _body_progress = False  # the current read ended a head or brought a piece of body
    _body_stall = 0  # bytes read in a body phase since its last progress (chunk framing, trailers)
    _too_large = False
    _body_complete = True  # the current request's body has all been read (or it has none)
    _drained = -1  # bytes dropped while lingering; -1 while not lingering
    _drain_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop, self))  # type: ignore[arg-type]
        self._since = monotonic()
        guard = self._guard = _Guard.of(self)
        if not guard.admit(self):
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.release(self)
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, with the refusal of a head that is too large, and the lingering close
        if self._drained >= 0:
            self._drained += len(data)
            if self._drained > DRAIN_MAX_BYTES:
                self.transport.abort()
            return
        self._unset_keepalive_if_required()
        self._read = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_large:
                self._refuse_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._phase == _HEAD:  # the read ended inside a head: count it against the limit
            self._head_bytes += self._read
            if self._head_bytes > self._guard.max_head_bytes:
                self._refuse_head()
        elif self._body_progress:
            self._body_progress = False
            self._body_stall = 0
        else:  # a read with no body in it: chunk framing or trailers, which the head's limit bounds too
            self._body_stall += self._read
            if self._body_stall > self._guard.max_head_bytes:
                self._guard.counts["trailers too large"] += 1
                self.transport.abort()  # no answer to deliver, nothing to linger for

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != _HEAD:  # the next request on a kept-alive connection; its head's time starts now
            self._phase = _HEAD
            self._since = monotonic()
            self._head_bytes = 0
            self._guard.waiting[self] = None

    def on_headers_complete(self) -> None:
        guard = self._guard
        if len(self.headers) > guard.max_headers or (
            self._head_bytes + self._read > guard.max_head_bytes and self._head_size() > guard.max_head_bytes
        ):
            self._too_large = True
            raise _HeadTooLarge
        guard.waiting.pop(self, None)
        self._phase = _BODY
        self._since = monotonic()
        self._body_progress = True
        self._body_complete = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_progress = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_complete = True
        super().on_message_complete()

    def _body_unread(self) -> bool:
        """Whether the current request's body is still (partly) to come from the client."""
        return self._phase == _BODY and not self._body_complete and self._drained < 0

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close gracefully with an answer written and a body still coming (see the module's docstring)."""
        self._drained = 0
        if transport.can_write_eof():
            transport.write_eof()  # the answer, then end of stream: the client may read it while it sends
        transport.resume_reading()  # uvicorn paused reads when the unread body filled its buffer
        self._drain_timer = self.loop.call_later(DRAIN_SECONDS, transport.close)

    def handle_websocket_upgrade(self) -> None:
        self._guard.release(self)  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _reading_body(self) -> bool:
        """Whether the request's body is still to come from the client (rather than waiting on the app)."""
        cycle = self.cycle
        return (
            cycle is not None
            and cycle.more_body
            and not cycle.waiting_for_100_continue
            and not self.flow.read_paused
            and not self.transport.is_closing()
        )

    def _refuse_head(self) -> None:
        self._guard.counts["head too large"] += 1
        content = [_TOO_LARGE_STATUS]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content += [_TOO_LARGE_TAIL, _TOO_LARGE_BODY]
        self.transport.write(b"".join(content))
        self.transport.close()
