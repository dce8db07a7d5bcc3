"""Prometheus metrics: counts that move for the right operation, API tree and status, read with
prometheus_client's own parser; /metrics only for PACKYARD_METRICS_TOKEN on the API's port, or on a
listener of its own; every worker's counts in one scrape with --workers 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from packyard.ops.settings import OpsSettings
from tests.conftest import Backend, Env, close_env, make_env
from tests.contract.validator import SwaggerContract
from tests.support.client import error, ok
from tests.support.packer import publish
from tests.support.server import ServerProcess, free_port, stop, wait_healthy

METRICS_TOKEN = "metrics-token-0123456789abcdef"
REGISTRY = "PackerService_GetRegistry"


@pytest.fixture
def menv(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> Iterator[Env]:
    environment = make_env(tmp_path, backend, contracts, ops=OpsSettings(metrics_token=METRICS_TOKEN))
    yield environment
    close_env(environment, backend)


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    """The one sample called name whose labels include these; 0 when there is none."""
    matching = [s for s in found if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) <= 1, matching
    return matching[0].value if matching else 0.0


def scrape(env: Env) -> list[Sample]:
    response = env.client.get("/metrics", token=METRICS_TOKEN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_metrics_are_not_served_on_the_api_port_without_a_metrics_token(env: Env) -> None:
    message = error(env.client.get("/metrics"), 5)  # the default: no token configured, nothing there
    assert "PACKYARD_METRICS_TOKEN" in message
    # Not even for an admin's API token: metrics are not part of the API.
    error(env.client.get("/metrics", token=env.client.token), 5)


def test_metrics_need_the_metrics_token(menv: Env) -> None:
    c = menv.client
    assert "PACKYARD_METRICS_TOKEN" in error(c.get("/metrics", token=""), 16)
    error(c.get("/metrics", token=c.token), 16)  # an API token is not the metrics token
    error(c.get("/metrics", token=METRICS_TOKEN[:-1]), 16)
    error(c.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"}, token=""), 16)
    assert c.get("/metrics", token=METRICS_TOKEN).status_code == 200
    # The format the scraper asks for, as prometheus_client's own server chooses it.
    open_metrics = c.get("/metrics", token=METRICS_TOKEN, headers={"Accept": "application/openmetrics-text"})
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")


def test_requests_are_counted_by_operation_tree_and_status(menv: Env) -> None:
    c = menv.client
    for _ in range(3):
        ok(c.get(c.p("/images")))  # ListBuckets, 2021-04-30
    ok(c.get(c.p23("/buckets")))  # ListBuckets, 2023-01-01
    error(c.get(c.p("/images"), token=""), 16)  # 401, 2021-04-30
    error(c.get(c.p("/images/nope")), 5)  # GetBucket, 404
    error(c.get("/packer/no/such/path"), 5)  # no route
    assert c.get("/sign-in", token="").status_code == 200  # a console page
    menv.token_for(menv.init.client_id, menv.init.client_secret)  # OAuth2Token 200
    found = scrape(menv)
    list_buckets = "PackerService_ListBuckets"
    requests = "packyard_http_requests_total"
    assert value(found, requests, operation=list_buckets, api="2021-04-30", status="200") == 3
    assert value(found, requests, operation=list_buckets, api="2023-01-01", status="200") == 1
    assert value(found, requests, operation=list_buckets, api="2021-04-30", status="401") == 1
    assert value(found, requests, operation="PackerService_GetBucket", api="2021-04-30", status="404") == 1
    assert value(found, requests, operation="unmatched", api="none", status="404") == 1
    assert value(found, requests, operation="Console", api="console", status="200") == 1
    # the fixture's token and the one above (the scrape itself is counted after it answers)
    assert value(found, requests, operation="OAuth2Token", api="oauth", status="200") == 2
    assert value(found, requests, operation="Metrics", api="public", status="200") == 0
    # The latency histogram of the same series: as many observations, all under +Inf, a positive sum.
    labels = {"operation": list_buckets, "api": "2021-04-30", "status": "200"}
    latency = "packyard_http_request_duration_seconds"
    assert value(found, f"{latency}_count", **labels) == 3
    assert value(found, f"{latency}_bucket", le="+Inf", **labels) == 3
    assert 0 < value(found, f"{latency}_sum", **labels) < 60
    buckets = [s for s in found if s.name == f"{latency}_bucket" and all(s.labels[k] == v for k, v in labels.items())]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)  # cumulative
    assert len(buckets) == 16
    # The second scrape sees the first one.
    again = scrape(menv)
    assert value(again, requests, operation="Metrics", api="public", status="200") == 1


def test_database_time_cache_hits_and_registry_counts(menv: Env, backend: Backend) -> None:
    c = menv.client
    publish(c, "app", "fp-1", ["amazon-ebs.a", "googlecompute.b"])
    publish(c, "app", "fp-2", ["amazon-ebs.a"])
    publish(c, "web", "fp-1", ["docker.c"])
    before = scrape(menv)
    assert value(before, "packyard_read_cache_hits_total") == 0
    for _ in range(3):
        ok(c.get(c.p("/images/app")))  # GetBucket: cached after the first
    found = scrape(menv)
    assert value(found, "packyard_read_cache_misses_total") - value(before, "packyard_read_cache_misses_total") == 1
    assert value(found, "packyard_read_cache_hits_total") == 2
    assert value(found, "packyard_read_cache_bytes") > 0
    db = "packyard_db_transaction_duration_seconds"
    assert value(found, f"{db}_count", kind="write") >= 10  # the publishes
    assert value(found, f"{db}_count", kind="read") > value(before, f"{db}_count", kind="read")
    assert value(found, f"{db}_sum", kind="write") > 0
    if backend.name == "sqlite":  # the hit path's check is one statement on SQLite (a batched query on PostgreSQL)
        assert value(found, f"{db}_count", kind="statement") == 2
    assert value(found, "packyard_buckets") == 2
    assert value(found, "packyard_versions") == 3
    assert value(found, "packyard_builds") == 4
    assert value(found, "packyard_metrics_processes") == 1
    assert value(found, "packyard_info", version="0.1.0") == 1


# ---- real servers


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    environ["PACKYARD_JOB_INTERVAL_SECONDS"] = "0.2"
    environ.update(env or {})
    argv = [sys.executable, "-m", "packyard", "serve", "--no-tls", "--port", str(port), "--data-dir",
            str(tmp_path / "data"), "--log-level", "warning", *args]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=environ, stdout=out, stderr=subprocess.STDOUT)
    return ServerProcess(process, f"http://127.0.0.1:{port}", log)


def poll_scrape(url: str, name: str, want: float, headers: dict[str, str] | None = None) -> list[Sample]:
    """Scrape until the sample `name` (summed over its series) reaches want: each worker's counts reach
    the scrape within a second (ops/metrics.py). Bounded by a deadline."""
    deadline = time.monotonic() + 10
    while True:
        found = samples(httpx.get(url, headers=headers, timeout=5).text)
        total = sum(s.value for s in found if s.name == name)
        if total >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.1)  # polling real processes, bounded by the deadline


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_one_scrape_adds_up_every_worker(tmp_path: Path, backend: Backend, workers: int) -> None:
    metrics_port = free_port()
    env = {"PACKYARD_METRICS_TOKEN": METRICS_TOKEN, "TMPDIR": str(tmp_path)}  # the workers' directory goes there
    if backend.name == "postgresql":
        env["PACKYARD_DATABASE_URL"] = backend.new_url(tmp_path)
    server = _serve(tmp_path, "--workers", str(workers), "--metrics-port", str(metrics_port), env=env)
    try:
        wait_healthy(server)
        # On the API's port only with the token; the metrics port answers without one.
        assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 401
        for _ in range(40):  # a connection each: uvicorn's workers take them from one socket
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/packer/nope", timeout=5).status_code == 404
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        # 40 health checks and those that waited for the server to come up, the 404 and the 401
        found = poll_scrape(url, "packyard_http_requests_total", 43)
        health = value(found, "packyard_http_requests_total", operation="Health", api="public", status="200")
        assert health >= 41
        found = poll_scrape(url, "packyard_jobs_passes_total", 2 * workers)
        assert value(found, "packyard_http_requests_total", operation="unmatched", status="404") == 1
        assert value(found, "packyard_http_requests_total", operation="Metrics", status="401") == 1
        assert value(found, "packyard_metrics_processes") == workers
        assert value(found, "packyard_jobs_passes_total") >= 2 * workers
        assert value(found, "packyard_jobs_pass_failures_total") == 0
        assert value(found, "packyard_versions") == 0
        # The same sums on the API's port, from whichever worker answers.
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        again = poll_scrape(f"{server.url}/metrics", "packyard_http_requests_total", health + 2, bearer)
        assert value(again, "packyard_metrics_processes") == workers
        assert value(again, "packyard_http_requests_total", operation="Health", status="200") >= health
        directories = list(tmp_path.glob("packyard-metrics-*"))
        if workers == 1:
            assert directories == []  # one process counts in memory
        else:
            assert len(directories) == 1
            assert len(list(directories[0].glob("*.json"))) == 2  # a file per worker
    finally:
        stop(server)
        if "PACKYARD_DATABASE_URL" in env:
            backend.release(env["PACKYARD_DATABASE_URL"])
    assert server.process.returncode == 0, server.output()
    assert list(tmp_path.glob("packyard-metrics-*")) == []  # the workers' counts went with the run
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PACKYARD_METRICS_TOKEN": "short"}, "PACKYARD_METRICS_TOKEN must be at least 16 characters"),
        ({"PACKYARD_METRICS_PORT": "70000"}, "PACKYARD_METRICS_PORT must be a TCP port number (1-65535), not '70000'"),
        ({"PACKYARD_METRICS_PORT": "x"}, "PACKYARD_METRICS_PORT must be a TCP port number (1-65535), not 'x'"),
        ({"PACKYARD_LOG_FORMAT": "xml"}, "PACKYARD_LOG_FORMAT must be json or plain, not 'xml'"),
    ],
)
def test_bad_settings_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as refused:
        OpsSettings.from_env(env)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


@pytest.mark.slow
def test_a_metrics_port_in_use_is_one_line_and_a_failed_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
        out = subprocess.run(
            [sys.executable, "-m", "packyard", "serve", "--no-tls", "--port", str(free_port()),
             "--data-dir", str(tmp_path / "data"), "--metrics-port", str(port)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    # Checked before the database is opened and the banner printed, as --port is (startup.check_listen).
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"packyard: 127.0.0.1:{port} is already in use by another process: stop it, or choose another "
        "--metrics-port (PACKYARD_METRICS_PORT)"
    ]
