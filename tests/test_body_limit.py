"""A body over its limit gets its 400 even while the client is still sending it.

The answer is given on the Content-Length, before the body has arrived. Python's urllib sends
`Connection: close`, so the server closes the connection after answering; closing a socket with unread
data makes the kernel send a reset, and the client, still sending, saw `Connection reset by peer` or
`Broken pipe` instead of the answer. The protocol now lingers (packyard/http/protocol.py): these tests
send multi-megabyte bodies with urllib and http.client to real `packyard serve` processes, over plain
HTTP and TLS, and read the answer."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from packyard.domain.rules import Limits
from packyard.http.protocol import DRAIN_MAX_BYTES
from packyard.tls import ensure_local_tls
from tests.conftest import Backend
from tests.support.server import ServerProcess, free_port, stop, wait_healthy

pytestmark = pytest.mark.slow

LIMIT = Limits().max_body_bytes
SBOM_LIMIT = Limits().max_sbom_body_bytes


@dataclass
class Server:
    url: str
    context: ssl.SSLContext | None
    org_id: str
    project_id: str
    token: str

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.split("://", 1)[1].split(":")
        return host, int(port)

    def prefix(self, tree: str = "2021-04-30") -> str:
        return f"/packer/{tree}/organizations/{self.org_id}/projects/{self.project_id}"

    def connection(self) -> http.client.HTTPConnection:
        host, port = self.host_port
        if self.context is not None:
            return http.client.HTTPSConnection(host, port, timeout=30, context=self.context)
        return http.client.HTTPConnection(host, port, timeout=30)


def _token(url: str, context: ssl.SSLContext | None, client_id: str, secret: str) -> str:
    form = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}".encode()
    request = urllib.request.Request(url + "/oauth2/token", data=form)  # noqa: S310 - our own server
    with urllib.request.urlopen(request, timeout=30, context=context) as answer:  # noqa: S310
        return str(json.load(answer)["access_token"])


@contextlib.contextmanager
def _serve(tmp_path: Path, backend: Backend, tls: bool) -> Iterator[Server]:
    url = backend.new_url(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env.update(PACKYARD_DATABASE_URL=url, PACKYARD_SECRET_KEY="body-limit-test-secret")
    flags = ["--no-tls"]
    context = None
    if tls:
        files = ensure_local_tls(tmp_path / "certs")
        flags = ["--tls-cert", str(files.cert), "--tls-key", str(files.key)]
        context = ssl.create_default_context(cafile=str(files.ca_cert))
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "packyard", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, *flags, "--log-level", "warning"], env=env, stdout=out, stderr=out)
    scheme = "https" if tls else "http"
    server = ServerProcess(process, f"{scheme}://127.0.0.1:{port}", log)
    try:
        if tls:
            deadline = time.monotonic() + 20
            while True:  # bounded polling of a starting process
                assert process.poll() is None, server.output()
                try:
                    urllib.request.urlopen(server.url + "/healthz", timeout=1, context=context).close()  # noqa: S310
                    break
                except (urllib.error.URLError, OSError):
                    assert time.monotonic() < deadline, server.output()
                    time.sleep(0.1)
        else:
            wait_healthy(server)
        token = _token(server.url, context, backend.init.client_id, backend.init.client_secret)
        yield Server(server.url, context, backend.init.organization_id, backend.init.project_id, token)
        assert "Traceback" not in server.output()
    finally:
        stop(server)
        backend.release(url)


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest, tmp_path: Path, backend: Backend) -> Iterator[Server]:
    with _serve(tmp_path, backend, tls=request.param == "https") as running:
        yield running


def _urllib_put(server: Server, path: str, body: bytes) -> tuple[int, dict[str, object]]:
    """PUT with urllib (which sends `Connection: close`), the answer's status and JSON body."""
    request = urllib.request.Request(  # noqa: S310 - our own server
        server.url + path,
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60, context=server.context) as answer:  # noqa: S310
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def _too_large(status: int, body: dict[str, object], limit: int) -> None:
    assert status == 400, body
    assert body["code"] == 3
    assert body["message"] == f"request body is larger than the limit of {limit} bytes"


def test_urllib_reads_the_400_for_a_five_megabyte_body(server: Server) -> None:
    body = b'{"bucket_slug": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    for _ in range(3):  # every time, not by luck of timing
        status, answer = _urllib_put(server, server.prefix() + "/images", body)
        _too_large(status, answer, LIMIT)
    # The server is unharmed: a request within the limit is served.
    assert _urllib_put(server, server.prefix() + "/images", b'{"bucket_slug": "fits"}')[0] == 200


def test_a_kept_alive_connection_reads_the_400_and_serves_the_next_request(server: Server) -> None:
    connection = server.connection()
    try:
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        body = b"[" + b"0," * (3 * 1024 * 1024) + b"0]"
        connection.request("PUT", server.prefix() + "/images", body=body, headers=headers)
        answer = connection.getresponse()
        _too_large(answer.status, json.loads(answer.read()), LIMIT)
        connection.request("GET", server.prefix() + "/images", headers=headers)  # the same connection
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_the_sbom_route_keeps_its_larger_limit(server: Server) -> None:
    sboms = server.prefix("2023-01-01") + "/buckets/none/versions/none/builds/none/sboms"
    # Over the general limit but within UploadSbom's: read and judged on its content, not refused for size.
    status, answer = _urllib_put(server, sboms, b'{"compressed_sbom": "' + b"A" * (5 * 1024 * 1024) + b'"}')
    assert status in (400, 404), answer
    assert "larger than the limit" not in str(answer["message"])
    # Over UploadSbom's own limit: its 400, read by a client still sending.
    status, answer = _urllib_put(server, sboms, b'{"compressed_sbom": "' + b"A" * (SBOM_LIMIT + 1024) + b'"}')
    _too_large(status, answer, SBOM_LIMIT)


def test_draining_is_bounded(tmp_path: Path, backend: Backend) -> None:
    """A client that keeps sending after its answer is cut off once DRAIN_MAX_BYTES have been dropped."""
    with _serve(tmp_path, backend, tls=False) as running:
        host, port = running.host_port
        with socket.create_connection((host, port), timeout=30) as sock:
            head = (
                f"PUT {running.prefix()}/images HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                f"Authorization: Bearer {running.token}\r\nContent-Length: {4 * DRAIN_MAX_BYTES}\r\n\r\n"
            )
            sock.sendall(head.encode())
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            sent = 0
            chunk = b"x" * 65536
            cut_off = False
            while sent < 4 * DRAIN_MAX_BYTES:
                try:
                    sent += sock.send(chunk)
                except (ConnectionResetError, BrokenPipeError):  # once the bound is passed
                    cut_off = True
                    break
            assert cut_off
            assert DRAIN_MAX_BYTES <= sent < 4 * DRAIN_MAX_BYTES
