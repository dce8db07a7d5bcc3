"""The ceiling: a raw ASGI callable that answers every request with one fixed JSON body.

It runs on uvicorn with exactly the settings `packyard serve` uses (see packyard/cli.py cmd_serve), so
the gap between the two is packyard's own work: routing, the token check, the database and encoding.
The body is the bytes of a real GetChannel response when BENCH_RAW_BODY names a file holding them
(the benchmark writes one), otherwise a built-in channel of the same shape (3 builds x 2 images).

    python -m bench.raw_asgi --port 8099 [--log-level warning]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _sample_body() -> bytes:
    stamp = "2026-01-01T00:00:00.000Z"
    builds = [
        {
            "id": f"01JBENCHBUILD{n:013d}",
            "iteration_id": "01JBENCHITERATION000000000",
            "component_type": component,
            "packer_run_uuid": "6f1c2b8e-8f5a-4a3e-9a57-3c1d2e4f5a6b",
            "images": [
                {"id": f"01JBENCHIMAGE{n}{r:012d}", "image_id": f"{provider}-img-{n}{r:015d}", "region": region}
                | {"created_at": stamp}
                for r, region in enumerate(regions)
            ],
            "cloud_provider": provider,
            "status": "DONE",
            "created_at": stamp,
            "updated_at": stamp,
            "labels": {"os": "ubuntu", "os_version": "22.04"},
        }
        for n, (component, provider, regions) in enumerate(
            [
                ("amazon-ebs.ubuntu", "aws", ["us-east-1", "eu-west-1"]),
                ("azure-arm.ubuntu", "azure", ["eastus", "westeurope"]),
                ("googlecompute.ubuntu", "gce", ["us-central1", "europe-west1"]),
            ]
        )
    ]
    iteration = {
        "id": "01JBENCHITERATION000000000",
        "bucket_slug": "hot",
        "incremental_version": 899996,
        "complete": True,
        "author_id": "benchbenchbenchbenchbenchbench00",
        "created_at": stamp,
        "updated_at": stamp,
        "fingerprint": "0123456789abcdef0123456789abcdef01234567",
        "builds": builds,
        "template_type": "HCL2",
    }
    channel = {
        "id": "01JBENCHCHANNEL00000000000",
        "slug": "production",
        "bucket_slug": "hot",
        "author_id": "benchbenchbenchbenchbenchbench00",
        "created_at": stamp,
        "pointer": {"iteration": iteration, "author_id": "benchbenchbenchbenchbenchbench00", "created_at": stamp},
        "updated_at": stamp,
        "iteration": iteration,
    }
    return json.dumps({"channel": channel}, separators=(",", ":")).encode()


def _load_body() -> bytes:
    path = os.environ.get("BENCH_RAW_BODY")
    return Path(path).read_bytes() if path else _sample_body()


BODY = _load_body()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
RESPONSE = {"type": "http.response.body", "body": BODY}


async def app(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send(START)
    await send(RESPONSE)


def main() -> None:
    import uvicorn

    from packyard.http.protocol import JoinedWritesProtocol, raise_fd_limit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args()
    # The same call as packyard/cli.py cmd_serve (no TLS: the benchmark serves packyard with --no-tls).
    raise_fd_limit()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=30,
        http=JoinedWritesProtocol,
    )


if __name__ == "__main__":
    main()
