"""Driving a server with wrk and reading its `--latency` report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

INSTALL_HINT = "install it with `sudo apt-get install wrk` (Debian/Ubuntu) or from https://github.com/wg/wrk"
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


class WrkMissing(RuntimeError):
    pass


class WrkFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Load:
    threads: int = 1
    connections: int = 32
    seconds: int = 10
    warmup_seconds: int = 2
    timeout_seconds: int = 10

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{self.seconds}s"


@dataclass
class Result:
    requests_per_second: float
    p50: float  # seconds
    p99: float
    requests: int
    errors: str = ""  # non-2xx answers or socket errors, as wrk reported them


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(f"the benchmark needs wrk on PATH and it is not there: {INSTALL_HINT}")
    return path


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(output: str) -> Result:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(rf"^\s+50(?:\.000)?%\s+{_DURATION}", output, re.MULTILINE)
    p99 = re.search(rf"^\s+99(?:\.000)?%\s+{_DURATION}", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not (rps and p50 and p99 and total):
        raise WrkFailed(f"could not read wrk's report:\n{output}")
    errors = []
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors.append(f"{non_2xx.group(1)} non-2xx")
    socket_errors = re.search(r"Socket errors:(.*)", output)
    if socket_errors:
        errors.append("socket errors:" + socket_errors.group(1))
    return Result(
        float(rps.group(1)),
        _seconds(p50.group(1), p50.group(2)),
        _seconds(p99.group(1), p99.group(2)),
        int(total.group(1)),
        "; ".join(errors),
    )


def run(url: str, token: str, load: Load, *, seconds: int | None = None, cookie: str = "") -> Result:
    """One bounded wrk run with the bearer token on every request (the cookie instead, when given: the
    console's session, `packyard_session=...`)."""
    duration = load.seconds if seconds is None else seconds
    argv = [
        require_wrk(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration}s",
        "--timeout",
        f"{load.timeout_seconds}s",
        "--latency",
        "-H",
        f"Cookie: {cookie}" if cookie else f"Authorization: Bearer {token}",
        url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + load.timeout_seconds + 60, check=False
    )
    if out.returncode != 0:
        raise WrkFailed(f"wrk exited with {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return parse(out.stdout)
