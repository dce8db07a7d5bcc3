"""deploy/nginx.conf run for real by Debian's nginx, as this test process's own child: the shipped file is parsed
with crossplane (nginx's configuration parser for Python), only its addresses, ports and file paths are
changed to a temporary directory and 127.0.0.1, and it is written back out and started with
`nginx -p DIR -c FILE -g 'daemon off;'`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane

from tests.support.server import START_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def parsed(path: Path = SHIPPED) -> list[dict[str, Any]]:
    """The file's directives as crossplane parses them (a list of {directive, args, block?})."""
    result = crossplane.parse(str(path), single=True, comments=False)
    assert result["status"] == "ok", result["errors"]
    return list(result["config"][0]["parsed"])


def find(block: list[dict[str, Any]], *path: str) -> list[dict[str, Any]]:
    """Every directive reached by following directive names, e.g. find(conf, "http", "server", "listen")."""
    found = [d for d in block if d["directive"] == path[0]]
    if len(path) == 1:
        return found
    return [leaf for d in found for leaf in find(d.get("block", []), *path[1:])]


def adapted(directory: Path, *, port: int, upstreams: list[str], cert: Path, key: Path, source: Path = SHIPPED) -> Path:
    """The shipped configuration with its listen address, upstream servers, certificate, logs, pid file and
    temporary directories moved to 127.0.0.1 and `directory`; everything else as shipped."""
    conf = parsed(source)
    for directive in conf:
        if directive["directive"] == "pid":
            directive["args"] = [str(directory / "nginx.pid")]
        elif directive["directive"] == "error_log":
            directive["args"] = [str(directory / "error.log"), "info"]
    if os.geteuid() == 0:  # as root, workers would switch to `nobody`, who can't reach the test's directory
        conf.insert(0, {"directive": "user", "args": ["root", "root"]})
    (http,) = find(conf, "http")
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        http["block"].insert(0, {"directive": f"{name}_temp_path", "args": [str(directory / f"{name}-temp")]})
    (access_log,) = find(http["block"], "access_log")
    access_log["args"][0] = str(directory / "access.log")
    (upstream,) = find(http["block"], "upstream")
    shipped_servers = [d for d in upstream["block"] if d["directive"] == "server"]
    assert len(shipped_servers) == len(upstreams), "one upstream server per replica"
    for directive, address in zip(shipped_servers, upstreams, strict=True):
        directive["args"][0] = address
    (server,) = find(http["block"], "server")
    (listen,) = find(server["block"], "listen")
    listen["args"][0] = f"127.0.0.1:{port}"
    find(server["block"], "ssl_certificate")[0]["args"] = [str(cert)]
    find(server["block"], "ssl_certificate_key")[0]["args"] = [str(key)]
    out = directory / "nginx.conf"
    out.write_text(crossplane.build(conf) + "\n")
    return out


def check(binary: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a configuration: exit 0 when nginx accepts it."""
    return subprocess.run(
        [binary, "-t", "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    def access_log(self) -> list[str]:
        path = self.directory / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running(binary: str, conf: Path, port: int) -> Iterator[Nginx]:
    """nginx in the foreground on `conf`, stopped (SIGQUIT, then SIGKILL) on the way out."""
    directory = conf.parent
    log = (directory / "nginx.out").open("wb")
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log"), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx = Nginx(process, directory, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited with {process.returncode}:\n{nginx.error_log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx did not listen in {START_TIMEOUT}s:\n{nginx.error_log()}")
            time.sleep(0.05)  # polling a process that is starting up, bounded by the deadline
        yield nginx
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: finish the requests under way
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()
