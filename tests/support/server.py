"""Real `packyard serve` processes on 127.0.0.1 for multi-process tests, always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_healthy(server: ServerProcess, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a process that is starting up, bounded by the deadline
    raise AssertionError(f"server did not become healthy in {timeout}s:\n{server.output()}")


def stop(server: ServerProcess, timeout: float = 15.0) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)
    return int(server.process.returncode)


@contextlib.contextmanager
def serving(
    tmp_path: Path,
    database_url: str,
    count: int = 1,
    *,
    secret: str = "replica-test-secret",
    extra: tuple[str, ...] = (),
) -> Iterator[list[ServerProcess]]:
    """`count` server processes sharing one database (and one server secret), each with its own data dir."""
    servers: list[ServerProcess] = []
    try:
        for n in range(count):
            port = free_port()
            data_dir = tmp_path / f"server-{n}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
            env.update(
                PACKYARD_DATABASE_URL=database_url,
                PACKYARD_SECRET_KEY=secret,
                PACKYARD_JOB_INTERVAL_SECONDS="0.2",
            )
            log = tmp_path / f"server-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "packyard",
                        "serve",
                        "--no-tls",
                        "--port",
                        str(port),
                        "--data-dir",
                        str(data_dir),
                        "--log-level",
                        "warning",
                        *extra,
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            servers.append(ServerProcess(process, f"http://127.0.0.1:{port}", log))
        for server in servers:
            wait_healthy(server)
        yield servers
    finally:
        for server in servers:
            stop(server)
