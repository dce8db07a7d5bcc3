"""Concurrent `packer build` publishes (client-compatibility.md section C), counted when complete.

wrk drives one URL; a publish is fifteen dependent requests, so this driver is asyncio with a minimal
keep-alive HTTP/1.1 client (a few microseconds per request, so the driver is not what is measured).
Each publisher runs, until the deadline: bucket upsert (PUT, then PATCH on code 6), GetIteration by a
new fingerprint (code 10 expected), CreateIteration, ListBuilds, three concurrent CreateBuild, then per
build (concurrently, as Packer runs sources in parallel) RUNNING and DONE with two images, and a final
GetIteration. Only publishes whose final GetIteration says complete are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.seed import COMPONENTS

COMPONENT_TYPES = [c[0] for c in COMPONENTS]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
IDLE_REUSE_S = 4.0  # reuse a keep-alive connection only if idle for less (uvicorn's timeout is 5 s)
# Publishes still in flight this long after the deadline are abandoned (and counted as failed).
FINISH_GRACE_S = 120.0


class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; enough of the protocol for uvicorn's Content-Length replies."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host = host
        self.port = port
        self.headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_REUSE_S:
            # uvicorn closes keep-alive connections idle for 5 s; Go's client then dials again.
            await self.close()
            self.reader = self.writer = None
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        # msgspec, not the json module, and one bytes template: the driver shares the machine's CPUs with
        # the server it measures, so every microsecond it spends per request is one the server lacks.
        if body is None:
            self.writer.write(
                b"%s %s HTTP/1.1\r\n%sContent-Length: 0\r\n\r\n" % (method.encode(), path.encode(), self.headers)
            )
        else:
            payload = _encode(body)
            self.writer.write(
                b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (method.encode(), path.encode(), self.headers, len(payload), payload)
            )
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise HttpError(f"{method} {path}: reply without Content-Length")
        raw = await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        return status, (_decode(raw) if raw else None)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


@dataclass
class PublishResult:
    complete: int = 0
    incomplete: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0

    @property
    def per_second(self) -> float:
        return self.complete / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _expect(status: int, body: Any, what: str, code: int | None = None) -> Any:
    if code is None and status == 200:
        return body
    if code is not None and isinstance(body, dict) and body.get("code") == code:
        return body
    raise HttpError(f"{what}: HTTP {status} {json.dumps(body)[:300]}")


class Publisher:
    def __init__(self, prefix: str, slug: str, conns: Sequence[Connection], result: PublishResult) -> None:
        self.prefix = prefix
        self.slug = slug
        self.conns = conns
        self.result = result

    async def call(self, n: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.result.requests += 1
        return await self.conns[n].request(method, self.prefix + path, body)

    async def publish(self, rng: random.Random) -> tuple[bool, str]:
        """One `packer build`; returns whether the final GetIteration says complete, and the fingerprint."""
        slug = self.slug
        fingerprint = uuid.UUID(int=rng.getrandbits(128)).hex[:32]
        run_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        status, body = await self.call(
            0, "PUT", "/images", {"bucket_slug": slug, "description": f"{slug} images", "labels": {}}
        )
        if status != 200:
            _expect(status, body, "CreateBucket", code=6)
            status, body = await self.call(
                0, "PATCH", f"/images/{slug}", {"description": f"{slug} images", "platforms": None}
            )
            _expect(status, body, "UpdateBucket")
        status, body = await self.call(0, "GET", f"/images/{slug}/iteration?fingerprint={fingerprint}")
        _expect(status, body, "GetIteration (new fingerprint)", code=10)
        status, body = await self.call(
            0, "POST", f"/images/{slug}/iterations", {"fingerprint": fingerprint, "template_type": "HCL2"}
        )
        iteration_id = _expect(status, body, "CreateIteration")["iteration"]["id"]
        status, body = await self.call(0, "GET", f"/images/{slug}/iterations/{iteration_id}/builds")
        if _expect(status, body, "ListBuilds")["builds"]:
            raise HttpError("ListBuilds of a new iteration returned builds")

        async def create(n: int, component: str) -> str:
            build = {"component_type": component, "packer_run_uuid": run_uuid, "status": "UNSET", "images": None}
            status, body = await self.call(
                n, "POST", f"/images/{slug}/iterations/{iteration_id}", {"fingerprint": fingerprint, "build": build}
            )
            return str(_expect(status, body, "CreateBuild")["build"]["id"])

        build_ids = await asyncio.gather(*[create(n, c) for n, c in enumerate(COMPONENT_TYPES)])

        async def run(n: int, build_id: str) -> None:
            _, provider, regions = COMPONENTS[n]
            running = {"updates": {"packer_run_uuid": run_uuid, "status": "RUNNING", "images": None}}
            status, body = await self.call(n, "PATCH", f"/builds/{build_id}", running)
            _expect(status, body, "UpdateBuild RUNNING")
            done = {
                "updates": {
                    "packer_run_uuid": run_uuid,
                    "cloud_provider": provider,
                    "labels": {"os": "ubuntu", "os_version": "22.04"},
                    "status": "DONE",
                    "images": [
                        {"image_id": f"{provider}-img-{rng.getrandbits(64):016x}", "region": r} for r in regions
                    ],
                }
            }
            status, body = await self.call(n, "PATCH", f"/builds/{build_id}", done)
            _expect(status, body, "UpdateBuild DONE")

        await asyncio.gather(*[run(n, b) for n, b in enumerate(build_ids)])
        status, body = await self.call(0, "GET", f"/images/{slug}/iteration?fingerprint={fingerprint}")
        return bool(_expect(status, body, "GetIteration (final)")["iteration"].get("complete")), fingerprint


METADATA = {
    "packer": {"version": "1.15.3", "plugins": [{"name": "amazon", "version": "1.3.9"}], "os": {"type": "linux"}},
    "vcs": {"type": "git", "details": {"commit": "0123456789abcdef", "has_uncommitted_changes": False}},
}


class Publisher2023(Publisher):
    """The same `packer build` as Packer 1.15.3 sends it through 2023-01-01 (client-compatibility-2023.md
    section B): GetBucket (CreateBucket on code 5, no write when unchanged), GetVersion by a new
    fingerprint (code 10) then CreateVersion, ListBuilds, concurrent CreateBuild, GetEnforcedBlocksByBucket,
    per build RUNNING then DONE with artifacts and metadata, and a final GetVersion named v<n>."""

    async def publish(self, rng: random.Random) -> tuple[bool, str]:
        slug = self.slug
        fingerprint = uuid.UUID(int=rng.getrandbits(128)).hex[:32]
        run_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        status, body = await self.call(0, "GET", f"/buckets/{slug}")
        if status != 200:
            _expect(status, body, "GetBucket", code=5)
            status, body = await self.call(0, "PUT", "/buckets", {"name": slug, "description": f"{slug} images"})
            _expect(status, body, "CreateBucket")
        version = f"/buckets/{slug}/versions/{fingerprint}"
        status, body = await self.call(0, "GET", version)
        _expect(status, body, "GetVersion (new fingerprint)", code=10)
        status, body = await self.call(
            0, "POST", f"/buckets/{slug}/versions", {"fingerprint": fingerprint, "template_type": "HCL2"}
        )
        _expect(status, body, "CreateVersion")
        status, body = await self.call(0, "GET", f"{version}/builds")
        if _expect(status, body, "ListBuilds")["builds"]:
            raise HttpError("ListBuilds of a new version returned builds")

        async def create(n: int, component: str) -> str:
            build: dict[str, Any] = {"component_type": component, "packer_run_uuid": run_uuid}
            build |= {"status": "BUILD_UNSET", "artifacts": None}
            status, body = await self.call(n, "POST", f"{version}/builds", build)
            return str(_expect(status, body, "CreateBuild")["build"]["id"])

        build_ids = await asyncio.gather(*[create(n, c) for n, c in enumerate(COMPONENT_TYPES)])
        status, body = await self.call(0, "GET", f"/enforced_blocks/bucket/{slug}")
        _expect(status, body, "GetEnforcedBlocksByBucket")

        async def run(n: int, build_id: str) -> None:
            _, provider, regions = COMPONENTS[n]
            running = {"packer_run_uuid": run_uuid, "status": "BUILD_RUNNING", "artifacts": None}
            status, body = await self.call(n, "PATCH", f"{version}/builds/{build_id}", running)
            _expect(status, body, "UpdateBuild RUNNING")
            done = {
                "packer_run_uuid": run_uuid,
                "platform": provider,
                "labels": {"os": "ubuntu", "os_version": "22.04"},
                "metadata": METADATA,
                "status": "BUILD_DONE",
                "artifacts": [
                    {"external_identifier": f"{provider}-img-{rng.getrandbits(64):016x}", "region": r} for r in regions
                ],
            }
            status, body = await self.call(n, "PATCH", f"{version}/builds/{build_id}", done)
            _expect(status, body, "UpdateBuild DONE")

        await asyncio.gather(*[run(n, b) for n, b in enumerate(build_ids)])
        status, body = await self.call(0, "GET", version)
        return _expect(status, body, "GetVersion (final)")["version"].get("name", "v0") != "v0", fingerprint


async def _drive(
    port: int,
    token: str,
    prefix: str,
    slugs: Sequence[str],
    publishers: int,
    seconds: float,
    max_publishes: int,
    kind: type[Publisher] = Publisher,
) -> PublishResult:
    result = PublishResult()
    all_conns: list[Connection] = []
    started = time.monotonic()
    deadline = started + seconds

    async def one(k: int) -> None:
        conns = [Connection("127.0.0.1", port, token) for _ in COMPONENT_TYPES]
        all_conns.extend(conns)
        publisher = kind(prefix, slugs[k % len(slugs)], conns, result)
        rng = random.Random(f"{k}-{time.time_ns()}")
        while time.monotonic() < deadline and result.complete + result.incomplete < max_publishes:
            begun = time.monotonic()
            try:
                complete, _ = await publisher.publish(rng)
            except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                for conn in conns:  # start clean: a failed exchange may leave a reply unread
                    await conn.close()
                    conn.reader = conn.writer = None
                if len(result.errors) > 20:
                    return
                continue
            if complete:
                result.complete += 1
                result.latencies.append(time.monotonic() - begun)
            else:
                result.incomplete += 1

    try:
        await asyncio.wait_for(asyncio.gather(*[one(k) for k in range(publishers)]), seconds + FINISH_GRACE_S)
    except TimeoutError:
        result.errors.append(f"publishes still unfinished {FINISH_GRACE_S:.0f} s after the deadline were abandoned")
    finally:
        result.seconds = time.monotonic() - started
        for conn in all_conns:
            await conn.close()
    return result


def run(
    port: int,
    token: str,
    prefix: str,
    slugs: Sequence[str],
    *,
    publishers: int = 16,
    seconds: float = 10.0,
    max_publishes: int = 1_000_000,
    api: str = "2021-04-30",
) -> PublishResult:
    """Publish concurrently for `seconds` (publishes begun before then are finished and counted), as
    Packer <= 1.10.0 does through 2021-04-30 or as Packer 1.15.3 does through 2023-01-01 (`api`); `prefix`
    is that tree's project prefix."""
    kind = Publisher2023 if api == "2023-01-01" else Publisher
    driver = _drive(port, token, prefix, slugs, publishers, seconds, max_publishes, kind)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        return asyncio.run(driver)
    return uvloop.run(driver)
