"""Server processes on 127.0.0.1: packyard (`packyard serve --no-tls`) and the raw ASGI ceiling.

Every process started here is stopped by its own pid (SIGTERM, then SIGKILL after a grace period) when
its context exits, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Both servers log at this level: an access-log line per request would measure the terminal, not the app.
LOG_LEVEL = "warning"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(RuntimeError):
    pass


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_bytes(self) -> int:
        """VmHWM: the resident set's high-water mark since the process started."""
        return _status_kib(self.pid, "VmHWM") * 1024

    def worker_peak_rss_bytes(self) -> int:
        """The largest VmHWM among the process and its children (uvicorn's workers, with --workers)."""
        peaks = [self.peak_rss_bytes()]
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError, ServerFailed):
                peaks.append(_status_kib(int(child), "VmHWM") * 1024)
        return max(peaks)

    def rss_bytes(self) -> int:
        return _status_kib(self.pid, "VmRSS") * 1024

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerFailed(f"{self.name} exited with {self.process.returncode}; log:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ServerFailed(f"/proc/{pid}/status has no {field}")


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, Any]:
    """One plain-HTTP request to 127.0.0.1:port; returns (status, parsed JSON body, or the text of a body
    that is not JSON (a console page), or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        raw = response.read()
        if not raw:
            return response.status, None
        if "json" not in response.getheader("content-type", ""):
            return response.status, raw.decode(errors="replace")
        return response.status, json.loads(raw)
    finally:
        conn.close()


def get_raw(port: int, path: str, token: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120.0)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise ServerFailed(f"GET {path}: {response.status} {raw[:300]!r}")
        return raw
    finally:
        conn.close()


def token(port: int, client_id: str, client_secret: str) -> str:
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()
    status, body = request(
        port, "POST", "/oauth2/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise ServerFailed(f"POST /oauth2/token: {status} {body}")
    return str(body["access_token"])


def _wait_ready(server: Server, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2.0)
            try:
                conn.request("GET", path)
                if conn.getresponse().status < 500:
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise ServerFailed(f"{server.name} did not answer on port {server.port} within {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def _running(name: str, argv: list[str], env: Mapping[str, str], log: Path, ready_path: str) -> Iterator[Server]:
    port = int(argv[argv.index("--port") + 1])
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(name, process, port, log)
    try:
        _wait_ready(server, ready_path)
        yield server
    finally:
        stop(server)


def stop(server: Server) -> None:
    process = server.process
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


class _Source:
    """Where the servers import packyard from: the checkout, or a snapshot of it taken when the run
    started (snapshot_source), so that edits made to the checkout meanwhile can't change the code mid-run."""

    path = ROOT / "src"


def snapshot_source(work_dir: Path) -> Path:
    """Copy src/packyard into work_dir and serve from the copy for the rest of the run."""
    target = work_dir / "src"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "src" / "packyard", target / "packyard", ignore=shutil.ignore_patterns("__pycache__"))
    _Source.path = target
    return target


def source_version() -> str:
    """The commit the run measured, and whether src/ had uncommitted changes (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "packyard from src/ (not a git checkout)"
    return f"packyard at commit {head}" + (" with uncommitted changes in src/" if dirty else "")


def base_env(database_url: str | None) -> dict[str, str]:
    """The environment for packyard commands: no stray PACKYARD_* settings, long-lived tokens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["PACKYARD_TOKEN_TTL_SECONDS"] = str(7 * 24 * 3600)
    if database_url:
        env["PACKYARD_DATABASE_URL"] = database_url
    # PYTHONPATH comes before site-packages, so the snapshot wins over the editable install.
    env["PYTHONPATH"] = os.pathsep.join([str(_Source.path), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def packyard_init(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """`packyard init --data-dir D --json`: migrate, default org/project/registry and an admin principal."""
    out = subprocess.run(
        [sys.executable, "-m", "packyard", "init", "--data-dir", str(data_dir), "--json"],
        env=base_env(database_url),
        capture_output=True,
        check=False,
        timeout=300,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise ServerFailed(f"packyard init failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
    values: dict[str, str] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return values


# Settings for the measured server only (python -m bench --no-read-cache sets PACKYARD_READ_CACHE_MB=0).
SERVER_SETTINGS: dict[str, str] = {}


# What the observed server's /metrics takes (bench/observability.py): new for every run.
METRICS_TOKEN = secrets.token_urlsafe(24)


@contextlib.contextmanager
def packyard(
    data_dir: Path, database_url: str | None, log: Path, workers: int = 1, *, observed: bool = False
) -> Iterator[Server]:
    """`packyard serve --no-tls`, one process (uvicorn without workers) unless workers > 1, SQLite
    unless database_url. observed: with metrics on (/metrics behind METRICS_TOKEN) and a JSON line per
    request into log, as a team runs it; otherwise neither (warnings only)."""
    argv = [sys.executable, "-m", "packyard", "serve", "--no-tls", "--data-dir", str(data_dir)]
    argv += ["--port", str(free_port()), "--workers", str(workers)]
    env = {**base_env(database_url), **SERVER_SETTINGS}
    if observed:
        argv += ["--log-level", "info", "--log-format", "json"]
        env["PACKYARD_METRICS_TOKEN"] = METRICS_TOKEN
    else:
        argv += ["--log-level", LOG_LEVEL]
    with _running("packyard (observed)" if observed else "packyard", argv, env, log, "/healthz") as server:
        yield server


@contextlib.contextmanager
def raw_asgi(body_file: Path | None, log: Path) -> Iterator[Server]:
    env = base_env(None)
    if body_file is not None:
        env["BENCH_RAW_BODY"] = str(body_file)
    argv = [sys.executable, "-m", "bench.raw_asgi", "--port", str(free_port()), "--log-level", LOG_LEVEL]
    with _running("raw ASGI", argv, env, log, "/") as server:
        yield server
