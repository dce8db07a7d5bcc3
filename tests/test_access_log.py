"""The request log: a JSON line per request (or a plain one for a terminal) with its time, request id,
operation, API tree, principal id, status and latency; the request id also in X-Request-Id; never a
token or a secret, whether it came in a header, a body or a query string; the log file reopened on
SIGHUP."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.http.access_log import (
    ACCESS_LOGGER,
    REDACTED,
    JsonFormatter,
    PlainFormatter,
    log_config,
    redact_query,
)
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import Env
from tests.console.support import Browser, make_user
from tests.support.server import ServerProcess, free_port, stop, wait_healthy

SECRET = "SECRETVALUE0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
LINE_FIELDS = {
    "time", "level", "logger", "request_id", "operation", "api", "principal_id", "status", "latency_ms", "method",
    "path", "client",
}  # fmt: skip
GENERATED_ID = re.compile(r"[0-9a-f]{16}-[0-9a-f]+")


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


def rfc3339_utc(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None
    assert moment.utcoffset() == UTC.utcoffset(None)
    return moment


def test_other_records_in_both_formats() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("packyard.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    record.created = 1796646163.5
    entry = json.loads(JsonFormatter().format(record))
    assert set(entry) == {"time", "level", "logger", "message", "exception"}
    assert entry["time"] == "2026-12-07T12:22:43.500Z"
    assert (entry["level"], entry["logger"], entry["message"]) == ("error", "packyard.x", "failed here")
    assert "ValueError: boom" in entry["exception"]
    plain = PlainFormatter().format(record)
    assert plain.startswith("2026-12-07T12:22:43.500Z ERROR packyard.x: failed here\nTraceback")


# ---- in process, on both databases


@pytest.fixture
def lines(env: Env) -> Iterator[io.StringIO]:
    """What the access logger writes, in JSON, while the test runs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    env.app.requests.refresh()
    yield out
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def logged(env: Env, out: io.StringIO) -> list[dict[str, Any]]:
    env.app.requests.flush()  # what the timer does FLUSH_SECONDS after the first answer
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    for entry in entries:
        assert set(entry) == LINE_FIELDS
        rfc3339_utc(entry["time"])
        assert (entry["level"], entry["logger"]) == ("info", ACCESS_LOGGER)
        assert isinstance(entry["latency_ms"], float)
        assert entry["latency_ms"] >= 0
    return entries


def principal_id(env: Env, client_id: str) -> str:
    principal = env.db.run(lambda conn: SqlUnitOfWork(conn).principals.get_by_client_id(client_id), write=False)
    assert principal is not None
    return principal.id


def test_a_line_per_request_with_its_id_principal_and_no_secret(env: Env, lines: io.StringIO) -> None:
    c = env.client
    token = c.token
    incoming = "trace-0a1b.2c:3d@e/f+g=h"
    listed = c.get(c.p("/images"), headers={"X-Request-Id": incoming}, params={"pagination.page_size": "5"})
    assert listed.status_code == 200
    assert listed.headers["x-request-id"] == incoming  # a sane id is kept
    refused = c.get(c.p23("/buckets"), token="")
    secret = env.init.client_secret
    form = f"grant_type=client_credentials&client_id={env.init.client_id}&client_secret={secret}"
    issued = c.post(
        f"/oauth2/token?client_secret={secret}&access_token={token}",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "bad id, with spaces"},
    )
    assert issued.status_code == 200
    new_token = issued.json()["access_token"]
    too_long = c.get("/healthz", headers={"X-Request-Id": "a" * 129})
    missing = c.get("/packer/no/such/path")  # under an API root: the API's 404 (elsewhere, the console's)

    entries = logged(env, lines)
    assert len(entries) == 5
    first, second, third, fourth, fifth = entries
    assert first["request_id"] == incoming
    assert (first["operation"], first["api"], first["status"]) == ("PackerService_ListBuckets", "2021-04-30", 200)
    assert first["principal_id"] == principal_id(env, env.init.client_id)
    assert (first["method"], first["path"]) == ("GET", c.p("/images") + "?pagination.page_size=5")
    assert first["client"].startswith("127.0.0.1:")
    assert (second["operation"], second["api"], second["status"]) == ("PackerService_ListBuckets", "2023-01-01", 401)
    assert second["principal_id"] is None  # nobody was authenticated
    # Ids made here for the rest: the insane ones replaced, each new and sent back.
    for response, entry in zip((refused, issued, too_long, missing), entries[1:], strict=True):
        assert GENERATED_ID.fullmatch(entry["request_id"]), entry
        assert response.headers["x-request-id"] == entry["request_id"]
    assert len({e["request_id"] for e in entries}) == 5
    assert (third["operation"], third["api"], third["status"]) == ("OAuth2Token", "oauth", 200)
    assert third["path"] == f"/oauth2/token?client_secret={REDACTED}&access_token={REDACTED}"
    assert (fourth["operation"], fourth["api"]) == ("Health", "public")
    assert (fifth["operation"], fifth["api"], fifth["status"]) == ("unmatched", "none", 404)
    text = lines.getvalue()
    for secret_text in (secret, token, new_token, token.split(".")[2]):
        assert secret_text not in text


def test_console_pages_get_an_id_and_a_line_without_the_link_secret(env: Env, lines: io.StringIO) -> None:
    secret = make_user(env, "log@example.com", password=None)
    lines.truncate(0)
    lines.seek(0)
    browser = Browser(env)
    try:
        link = browser.get(f"/set-password/{secret}")
        page = browser.get("/sign-in?next=%2F")
    finally:
        browser.close()
    entries = logged(env, lines)
    assert [(e["operation"], e["api"], e["status"]) for e in entries] == [
        ("Console", "console", 200),
        ("Console", "console", 200),
    ]
    assert entries[0]["path"] == "/set-password/..."
    assert entries[1]["path"] == "/sign-in?next=%2F"
    assert link.headers["x-request-id"] == entries[0]["request_id"]
    assert page.headers["x-request-id"] == entries[1]["request_id"]
    assert secret not in lines.getvalue()


def test_no_lines_below_info(env: Env) -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.WARNING)
    try:
        env.app.requests.refresh()
        assert not env.app.requests.logging
        response = env.client.get("/healthz")
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"])  # ids are sent either way
    finally:
        logger.setLevel(logging.NOTSET)


# ---- real servers


def serve(tmp_path: Path, *args: str, workers: int = 1) -> ServerProcess:
    port = free_port()
    log = tmp_path / f"serve-{port}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    argv = [sys.executable, "-m", "packyard", "serve", "--no-tls", "--port", str(port), "--data-dir",
            str(tmp_path / "data"), "--workers", str(workers), *args]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    wait_healthy(server)
    return server


def output_with(read: Any, text: str, timeout: float = 10.0) -> str:
    """read() once it contains text (log lines are written as the answers go, by another process)."""
    deadline = time.monotonic() + timeout
    while text not in (output := read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared:\n{output}")
        time.sleep(0.05)  # polling a file another process writes, bounded by the deadline
    return str(output)


def credentials(output: str) -> tuple[str, str]:
    client_id = re.search(r"client_id: (\S+)", output)
    client_secret = re.search(r"client_secret: (\S+)", output)
    assert client_id is not None
    assert client_secret is not None
    return client_id.group(1), client_secret.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_served_request_log_is_json_and_holds_no_secret(tmp_path: Path, workers: int) -> None:
    server = serve(tmp_path, workers=workers)  # stderr is a file: JSON by default
    try:
        client_id, client_secret = credentials(server.output())
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        token = httpx.post(f"{server.url}/oauth2/token", data=form, timeout=5).json()["access_token"]
        org = "11111111-1111-1111-1111-111111111111"
        buckets = f"/packer/2021-04-30/organizations/{org}/projects/{org}/images"
        assert httpx.get(f"{server.url}/healthz?access_token={SECRET}&probe=1", timeout=5).status_code == 200
        bearer = {"Authorization": f"Bearer {token}", "X-Request-Id": "from-the-client"}
        answer = httpx.get(f"{server.url}{buckets}?access_token={SECRET}&pagination.page_size=5", headers=bearer)
        assert answer.status_code == 403  # a valid token, another organization's path
        assert answer.headers["x-request-id"] == "from-the-client"
        assert httpx.get(f"{server.url}/healthz?{SECRET}", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/healthz?last=1", timeout=5).status_code == 200
        output = output_with(server.output, '"path":"/healthz?last=1"')
    finally:
        stop(server)
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = {e["path"]: e for e in entries if e["logger"] == ACCESS_LOGGER}
    for entry in requests.values():
        assert set(entry) == LINE_FIELDS
    assert requests[f"/healthz?access_token={REDACTED}&probe=1"]["status"] == 200
    assert f"/healthz?{REDACTED}" in requests
    refused = requests[f"{buckets}?access_token={REDACTED}&pagination.page_size=5"]
    assert (refused["status"], refused["request_id"], refused["operation"]) == (
        403,
        "from-the-client",
        "PackerService_ListBuckets",
    )
    db = Database(f"sqlite:///{tmp_path / 'data' / 'packyard.db'}")
    try:
        principal = db.run(lambda conn: SqlUnitOfWork(conn).principals.get_by_client_id(client_id), write=False)
    finally:
        db.dispose()
    assert principal is not None
    assert refused["principal_id"] == principal.id  # who asked, by id
    assert requests["/oauth2/token"]["status"] == 200
    assert any(e["logger"] == "uvicorn.error" and "Application startup complete" in e["message"] for e in entries)
    log_only = "\n".join(line for line in server.output().splitlines() if line.startswith("{"))
    for secret_text in (SECRET, client_secret, token, token.split(".")[2]):
        assert secret_text not in log_only


@pytest.mark.slow
def test_plain_lines_and_a_log_file_reopened_on_sighup(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "packyard.log"
    server = serve(tmp_path, "--log-format", "plain", "--log-file", str(log_file))
    try:
        assert httpx.get(f"{server.url}/healthz?first=1", timeout=5).status_code == 200
        first = output_with(log_file.read_text, '"GET /healthz?first=1" 200')
        line = next(x for x in first.splitlines() if "first=1" in x)
        assert re.fullmatch(
            r"\S+Z 127\.0\.0\.1:\d+ \"GET /healthz\?first=1\" 200 \d+\.\d\dms Health public principal=- id=[0-9a-f-]+",
            line,
        ), line
        rotated = log_file.with_name("packyard.log.1")
        log_file.rename(rotated)  # what logrotate does, before it signals
        server.process.send_signal(signal.SIGHUP)
        output_with(lambda: log_file.read_text() if log_file.exists() else "", "SIGHUP: log files reopened")
        assert httpx.get(f"{server.url}/healthz?second=1", timeout=5).status_code == 200
        output_with(log_file.read_text, '"GET /healthz?second=1" 200')
        assert server.process.poll() is None  # SIGHUP reloads; it does not end the server
    finally:
        assert stop(server) == 0
    assert "second=1" not in rotated.read_text()
    assert "first=1" not in log_file.read_text()


def test_log_config_sends_everything_through_one_handler() -> None:
    config = log_config("json", "info", None)
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": False}
    assert config["loggers"]["packyard"]["level"] == "INFO"
    assert config["formatters"]["packyard"]["()"].endswith("JsonFormatter")
