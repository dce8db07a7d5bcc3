"""What a client connection may hold against a real `packyard serve --no-tls` process: the time to send a
request's head and its body, the size of the head, and (under a 1,024-descriptor limit) a share of the
worker's descriptors that still leaves /healthz answering while 1,100 slow clients are connected.

Every wait here is bounded in time and every loop in count; every socket is closed in a finally block."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

from packyard.config import ConnectionLimits, Settings
from packyard.http.protocol import JoinedWritesProtocol, connection_cap
from tests.support.server import ServerProcess, free_port, stop, wait_healthy

pytestmark = pytest.mark.slow
needs_proc = pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc/<pid> (Linux)")

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SWEEP = 0.25  # the server's sweep interval for these timeouts: a quarter of the shorter one
SLACK = 2.0  # scheduling slack on a loaded machine, on top of a timeout and its sweep
SLOW_CLIENTS = 1100
FD_LIMIT = 1024
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: slow.example\r\nX-Slow: "


def _limit_files(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


@contextlib.contextmanager
def _server(tmp_path: Path, name: str, env: dict[str, str], files: tuple[int, int]) -> Iterator[ServerProcess]:
    """One `packyard serve --no-tls` with its own SQLite data dir, started under the given descriptor limits."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    environment.update(XDG_DATA_HOME=str(tmp_path / "xdg"), PACKYARD_JOB_INTERVAL_SECONDS="0.5", **env)
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "packyard", "serve", "--no-tls", "--host", "127.0.0.1", "--port", str(port)),
                *("--data-dir", str(tmp_path / name), "--log-level", "warning"),
            ],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_files(*files),  # noqa: PLW1509 - setrlimit only, no threads in the child
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(server)
        yield server
    finally:
        stop(server)


def _address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Short head and body timeouts, started with a soft descriptor limit below its hard one."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"needs a hard descriptor limit of at least 4096 (have {hard})")
    env = {"PACKYARD_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT), "PACKYARD_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}
    with _server(tmp_path_factory.mktemp("limits"), "limits", env, (512, 4096)) as process:
        yield process


@contextlib.contextmanager
def _connection(server: ServerProcess, timeout: float = 5.0) -> Iterator[socket.socket]:
    sock = socket.create_connection(_address(server), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Read (and drop) whatever comes until the server closes the connection; False if it hasn't by the deadline."""
    for _ in range(10_000):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


def _read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes]:
    """The status and body of one response on `sock` (HTTP/1.1 with content-length)."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    try:
        return response.status, response.read()
    finally:
        response.close()


def _healthz(server: ServerProcess, timeout: float = 5.0) -> int:
    host, port = _address(server)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@needs_proc
def test_the_descriptor_limit_is_raised_to_the_hard_limit_at_start(server: ServerProcess) -> None:
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line  # started with 512 / 4096


def test_a_connection_that_sends_nothing_or_never_finishes_its_head_is_closed(server: ServerProcess) -> None:
    with _connection(server) as silent, _connection(server) as partial, _connection(server) as trickling:
        opened = time.monotonic()
        partial.sendall(PARTIAL_HEAD)
        deadline = opened + HEAD_TIMEOUT + SWEEP + SLACK
        # One byte every tenth of a second does not buy more time: the deadline is the head's, not a read's.
        trickle_closed = False
        for _ in range(int((deadline - opened) / 0.1) + 1):
            try:
                trickling.sendall(b"x" if _ else PARTIAL_HEAD)
            except ConnectionError:
                trickle_closed = True
                break
            time.sleep(0.1)  # the trickle's pace, bounded by the loop's count
        assert trickle_closed or _closed_by_server(trickling, deadline)
        trickle_elapsed = time.monotonic() - opened
        assert _closed_by_server(partial, deadline)
        assert _closed_by_server(silent, deadline)
        assert HEAD_TIMEOUT * 0.9 <= trickle_elapsed <= HEAD_TIMEOUT + SWEEP + SLACK
    assert _healthz(server) == 200


def test_a_head_sent_slowly_but_in_time_is_answered(server: ServerProcess) -> None:
    with _connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(HEAD_TIMEOUT / 3)
        sock.sendall(b"Host: x\r\n\r\n")
        assert _read_response(sock)[0] == 200


def test_a_trickled_head_on_a_kept_alive_connection_is_closed(server: ServerProcess) -> None:
    with _connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[0] == 200
        time.sleep(HEAD_TIMEOUT * 1.5)  # idle between requests is the keep-alive timeout's (5 s), not the head's
        started = time.monotonic()
        sock.sendall(PARTIAL_HEAD)
        assert _closed_by_server(sock, started + HEAD_TIMEOUT + SWEEP + SLACK)
        assert time.monotonic() - started >= HEAD_TIMEOUT * 0.9


def test_a_trickled_body_is_closed_after_the_body_timeout(server: ServerProcess) -> None:
    head = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    with _connection(server) as sock:
        sock.sendall(head + b"Content-Length: 1000\r\n\r\ngrant_type=")
        started = time.monotonic()
        deadline = started + BODY_TIMEOUT + SWEEP + SLACK
        closed = False
        for _ in range(int((deadline - started) / 0.1) + 1):
            try:
                sock.sendall(b"x")
            except ConnectionError:
                closed = True
                break
            time.sleep(0.1)  # the trickle's pace, bounded by the loop's count
        assert closed or _closed_by_server(sock, deadline)
        elapsed = time.monotonic() - started
        # The body has its own (longer) bound, counted from the end of the head.
        assert BODY_TIMEOUT * 0.9 <= elapsed <= BODY_TIMEOUT + SWEEP + SLACK
    with _connection(server) as sock:  # a body sent in parts within the bound is answered
        body = b"grant_type=client_credentials&client_id=nobody&client_secret=nothing"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(BODY_TIMEOUT / 3)
        sock.sendall(body[10:])
        assert _read_response(sock)[0] == 401


def test_a_16_mib_header_is_refused_before_it_is_all_sent(server: ServerProcess) -> None:
    chunk = b"a" * 65536
    total = 16 * 1024 * 1024
    sent = 0
    with _connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(ConnectionError, TimeoutError):
            for _ in range(total // len(chunk)):
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < total, "the server read a 16 MiB header to its end"
        answer = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            sock.settimeout(5)
            answer = sock.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert _healthz(server) == 200


def test_a_16_mib_trailer_closes_the_connection_before_it_is_all_sent(server: ServerProcess) -> None:
    chunk = b"a" * 65536
    total = 16 * 1024 * 1024
    sent = 0
    with _connection(server) as sock:
        head = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head + b"b\r\ngrant_type=\r\n0\r\nX-Trailer: ")
        with contextlib.suppress(ConnectionError, TimeoutError):
            for _ in range(total // len(chunk)):
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < total, "the server read a 16 MiB trailer to its end"
        assert _closed_by_server(sock, time.monotonic() + 5)
    assert _healthz(server) == 200


def test_a_complete_head_over_64_kib_gets_431(server: ServerProcess) -> None:
    with _connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        status, body = _read_response(sock)
        assert (status, body) == (431, b"Request header fields too large.")
    with _connection(server) as sock:  # just under the limit is fine
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (60 * 1024) + b"\r\n\r\n")
        assert _read_response(sock)[0] == 200


def test_more_than_100_headers_get_431(server: ServerProcess) -> None:
    def head(count: int) -> bytes:  # Host and count - 1 others
        others = b"".join(b"X-H%d: v\r\n" % n for n in range(count - 1))
        return b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + others + b"\r\n"

    with _connection(server) as sock:
        sock.sendall(head(101))
        assert _read_response(sock)[0] == 431
    with _connection(server) as sock:
        sock.sendall(head(100))
        assert _read_response(sock)[0] == 200


def _open_slow_clients(server: ServerProcess, count: int, deadline: float) -> list[socket.socket]:
    """`count` connections that each sent part of a head and nothing more (the caller closes them)."""
    clients: list[socket.socket] = []
    address = _address(server)
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise AssertionError(f"opened only {len(clients)} of {count} slow connections in time")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            clients.append(sock)
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(address)
            # A refusal here means the server already evicted it to make room; it stays open on this side.
            with contextlib.suppress(ConnectionError):
                sock.sendall(PARTIAL_HEAD)
            sock.setblocking(False)
    except BaseException:
        for sock in clients:
            sock.close()
        raise
    return clients


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@needs_proc
def test_healthz_answers_while_1100_slow_clients_hold_connections_under_a_1024_descriptor_limit(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW_CLIENTS + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs a hard descriptor limit of at least {needed} in the test process (have {hard})")
    # The head timeout is long here, so what keeps /healthz answering is the connection bound and eviction.
    env = {"PACKYARD_HEAD_TIMEOUT_SECONDS": "120"}
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    clients: list[socket.socket] = []
    try:
        with _server(tmp_path, "fds", env, (FD_LIMIT, FD_LIMIT)) as server:
            clients = _open_slow_clients(server, SLOW_CLIENTS, time.monotonic() + 60)
            started = time.monotonic()
            status = _healthz(server, timeout=5.0)
            elapsed = time.monotonic() - started
            assert status == 200
            assert elapsed < 5.0
            assert server.process.poll() is None
            assert _open_descriptors(server.process.pid) < FD_LIMIT
            # The oldest slow clients made room: the server closed some of them, and the rest are still open.
            closed = 0
            for sock in clients:
                with contextlib.suppress(BlockingIOError):
                    try:
                        if sock.recv(1) == b"":
                            closed += 1
                    except ConnectionError:
                        closed += 1
            assert SLOW_CLIENTS - FD_LIMIT < closed < SLOW_CLIENTS, closed
            assert _healthz(server, timeout=5.0) == 200
            # The worker says what it did (its sweep reports within a second).
            for _ in range(50):
                if "evicted" in server.output():
                    break
                time.sleep(0.1)  # waiting for the report, bounded by the loop's count
            assert "evicted" in server.output(), server.output()
    finally:
        for sock in clients:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_limits_hold_on_asyncio_s_own_event_loop_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """`packyard serve` runs on uvloop; the protocol is the same on asyncio's loop (uvicorn's fallback)."""
    monkeypatch.setenv("PACKYARD_HEAD_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("PACKYARD_MAX_HEADERS", "5")

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    async def exchange(port: int, data: bytes) -> tuple[bytes, float]:
        """What the server sends back before it closes the connection, and how long that took."""
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            return await asyncio.wait_for(reader.read(), 5.0), time.monotonic() - started
        finally:
            writer.close()

    async def scenario() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, http=JoinedWritesProtocol, lifespan="off", log_level="warning", loop="none")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)  # bounded by the loop's count
            assert server.started
            answer, elapsed = await exchange(port, b"")  # nothing sent: closed at the head timeout
            assert answer == b""
            assert 0.25 <= elapsed < 3.0
            answer, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 5 + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 431 ")
            answer, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200 ")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_the_connection_settings_come_from_the_environment_and_must_be_positive() -> None:
    assert Settings.from_env({}).connections == ConnectionLimits(10.0, 30.0, 65536, 100, None)
    env = {
        "PACKYARD_HEAD_TIMEOUT_SECONDS": "2.5",
        "PACKYARD_BODY_TIMEOUT_SECONDS": "60",
        "PACKYARD_MAX_HEAD_BYTES": "8192",
        "PACKYARD_MAX_HEADERS": "20",
        "PACKYARD_MAX_CONNECTIONS": "50",
    }
    assert Settings.from_env(env).connections == ConnectionLimits(2.5, 60.0, 8192, 20, 50)
    for name, value in [
        ("PACKYARD_HEAD_TIMEOUT_SECONDS", "0"),
        ("PACKYARD_BODY_TIMEOUT_SECONDS", "soon"),
        ("PACKYARD_MAX_HEAD_BYTES", "-1"),
        ("PACKYARD_MAX_HEADERS", "1.5"),
        ("PACKYARD_MAX_CONNECTIONS", "nan"),
    ]:
        with pytest.raises(SystemExit, match=name):
            Settings.from_env({name: value})


def test_the_connection_bound_leaves_room_under_the_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert connection_cap(None) == (896, 1024)  # an eighth of 1,024 stays free
        assert connection_cap(5000) == (896, 1024)
        assert connection_cap(10) == (10, 1024)
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
        assert connection_cap(None) == (50, 100)  # at least 64 free, at most half
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY or soft >= 1200:
        assert connection_cap(None)[0] == 1000
