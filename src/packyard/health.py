"""`packyard health`: ask a running server whether it is ready, for container and orchestrator healthchecks.

The server answers `/readyz` only when it can reach its database. By default the check goes to
`https://localhost:<PACKYARD_PORT or 8443>/readyz` and trusts the system's roots plus the local CA that
`serve` generated in the data directory (`<data dir>/tls/ca.pem`), so it works inside the container
image without any option and without turning certificate verification off. A server behind a proxy
(`serve --no-tls`) or with its own certificate for another name is checked with `--url`.

The exit status is what a healthcheck reads: 0 ready, 1 not ready (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packyard.config import Settings


def default_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return f"https://localhost:{env.get('PACKYARD_PORT') or '8443'}/readyz"


def add_parser(sub: argparse._SubParsersAction[Any], data_dir_arg: Callable[..., None]) -> None:
    p = sub.add_parser(
        "health",
        help="exit 0 when a running server answers /readyz (for container healthchecks), else 1",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    data_dir_arg(p)
    p.add_argument(
        "--url",
        default=os.environ.get("PACKYARD_HEALTH_URL"),
        help="what to ask (PACKYARD_HEALTH_URL; default https://localhost:$PACKYARD_PORT/readyz, port 8443)",
    )
    p.add_argument("--ca-file", help="PEM CA to trust besides the system's (default: <data dir>/tls/ca.pem if present)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    p.set_defaults(func=run)


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system's roots, hostname checked
    if args.ca_file:
        ca = Path(args.ca_file)
        if not ca.is_file():
            raise SystemExit(f"packyard: --ca-file {ca} is not a file")
    else:
        data_dir = Path(args.data_dir) if args.data_dir else None
        ca = Settings.from_env(data_dir=data_dir).data_dir / "tls" / "ca.pem"
        if not ca.is_file():
            return context
    try:
        context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"packyard: can't read the CA {ca}: {exc}") from None
    return context


def run(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415 - only this command needs an HTTP client

    url = args.url or default_url()
    verify: ssl.SSLContext | bool = _tls_context(args) if url.startswith("https:") else True
    try:
        response = httpx.get(url, verify=verify, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"packyard: {url} did not answer: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"packyard: {url} answered {response.status_code}: {response.text[:200]}", file=sys.stderr)
        return 1
    print(f"{url}: {response.text[:200]}")
    return 0
