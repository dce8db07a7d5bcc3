"""A token in a query string never reaches the log: uvicorn's access log lines keep the path and the
harmless parameters, with secret-looking values redacted, in one server process and with --workers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from packyard.http.access_log import REDACTED, RedactQuery, redact_query
from tests.support.server import ServerProcess, free_port, stop, wait_healthy

SECRET = "SECRETVALUE0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/healthz", "/healthz"),
        ("/healthz?", "/healthz?"),
        (f"/a?access_token={SECRET}", f"/a?access_token={REDACTED}"),
        (f"/a?pagination.page_size=10&token={SECRET}&x=1", f"/a?pagination.page_size=10&token={REDACTED}&x=1"),
        (f"/a?client_secret={SECRET}&code={SECRET}", f"/a?client_secret={REDACTED}&code={REDACTED}"),
        (f"/a?Access%5FToken={SECRET}", f"/a?Access%5FToken={REDACTED}"),  # names compared decoded, any case
        (f"/a?api_key={SECRET}&password={SECRET}", f"/a?api_key={REDACTED}&password={REDACTED}"),
        (f"/a?q={JWT}", f"/a?q={REDACTED}"),  # a JWT under any name
        (f"/a?{SECRET}", f"/a?{REDACTED}"),  # a bare parameter: nothing says what it is
        (
            "/a?pagination.next_page_token=abc&sorting.order_by=name",
            f"/a?pagination.next_page_token={REDACTED}&sorting.order_by=name",
        ),
        ("/a?x=1&&y=", "/a?x=1&&y="),
    ],
)
def test_redact_query(target: str, logged: str) -> None:
    assert redact_query(target) == logged


def test_the_filter_rewrites_uvicorns_access_record_and_leaves_other_records_alone() -> None:
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/a?access_token={SECRET}", "1.1", 200), None,
    )  # fmt: skip
    assert RedactQuery().filter(access)
    assert SECRET not in access.getMessage()
    assert f'"GET /a?access_token={REDACTED} HTTP/1.1" 200' in access.getMessage()
    other = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("a", "b?c"), None)
    assert RedactQuery().filter(other)
    assert other.args == ("a", "b?c")


def output_with(server: ServerProcess, text: str, timeout: float = 10.0) -> str:
    """The server's output once it contains text (its log lines are written as the answers go)."""
    deadline = time.monotonic() + timeout
    while text not in (output := server.output()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in the server's output:\n{output}")
        time.sleep(0.05)  # polling a file another process writes, bounded by the deadline
    return output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_token_in_a_query_string_is_not_in_the_servers_output(tmp_path: Path, workers: int) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "packyard", "serve", "--no-tls", "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--log-level", "info", "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(server)
        org = "11111111-1111-1111-1111-111111111111"
        buckets = f"/packer/2021-04-30/organizations/{org}/projects/{org}/images/buckets"
        assert httpx.get(f"{server.url}/healthz?access_token={SECRET}&probe=1", timeout=5).status_code == 200
        refused = httpx.get(f"{server.url}{buckets}?access_token={SECRET}&pagination.page_size=5", timeout=5)
        assert refused.status_code == 401  # a token in the query string is not how packyard takes one
        assert httpx.get(f"{server.url}/healthz?{SECRET}", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/healthz?last=1", timeout=5).status_code == 200
        output = output_with(server, '"GET /healthz?last=1 HTTP/1.1" 200')  # each line is out before its answer
        assert SECRET not in output
        assert f'"GET /healthz?access_token={REDACTED}&probe=1 HTTP/1.1" 200' in output
        assert f'"GET /healthz?{REDACTED} HTTP/1.1" 200' in output
        assert f'"GET {buckets}?access_token={REDACTED}&pagination.page_size=5 HTTP/1.1" 401' in output
    finally:
        stop(server)
    assert SECRET not in server.output()
