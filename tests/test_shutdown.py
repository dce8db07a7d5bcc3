"""Graceful shutdown: SIGTERM while a hundred writes are in flight.

Every write either gets a complete 200 (and is there after a restart on the same database) or never
reaches the server (the connection is refused or closed before any response, and the write is absent).
No request gets a 5xx, and the server exits with code 0 well within its 30 s graceful timeout.

Some writes are in flight at the SIGTERM by construction, whatever the machine's speed: HELD of them send
their head and half their body, and the rest of the body only after the signal (on a fast machine every
other write may well be answered before it arrives).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.support.server import ServerProcess, serving

pytestmark = pytest.mark.slow

ITERATIONS = 40  # CreateIteration in a bucket that already holds SEED iterations
BIG_BUILDS = 30  # CreateBuild with IMAGES images and labels each, all on one iteration
SMALL_BUILDS = 30  # CreateBuild on iterations of their own
LATE = 20  # CreateIteration sent after the SIGTERM
HELD = 10  # CreateIteration whose body is finished only after the SIGTERM
SEED = 300
IMAGES = 150
GRACEFUL_TIMEOUT = 30.0  # what `packyard serve` gives uvicorn
NOT_REACHED = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


@dataclass
class Write:
    kind: str  # "iteration" or "build"
    bucket: str
    key: str  # the fingerprint or the component type
    iteration_id: str = ""
    body: Any = None
    late: bool = False
    held: bool = False
    status: int | None = None
    text: str = ""
    error: BaseException | None = None
    answered_at: float = 0.0


class Api:
    def __init__(self, url: str, org: str, project: str) -> None:
        # No keep-alive: every request has a connection of its own, as a hundred Packer processes would.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        self.http = httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits)
        self.prefix = f"/packer/2021-04-30/organizations/{org}/projects/{project}"
        self.token = ""

    async def login(self, client_id: str, client_secret: str) -> None:
        r = await self.http.post(
            "/oauth2/token",
            content=f"grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return await self.http.request(
            method,
            self.prefix + path,
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def call_held(self, path: str, body: Any, started: asyncio.Event, release: asyncio.Event) -> httpx.Response:
        """POST whose head and first half of the body go out at once, the rest once `release` is set."""
        data = json.dumps(body).encode()

        async def chunks() -> AsyncIterator[bytes]:
            yield data[: len(data) // 2]
            started.set()
            await release.wait()
            yield data[len(data) // 2 :]

        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return await self.http.post(self.prefix + path, content=chunks(), headers=headers)

    async def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = await self.call(method, path, body, **params)
        assert r.status_code == 200, r.text
        return r.json()


async def seed(api: Api) -> tuple[str, list[str]]:
    """A big bucket (SEED iterations, one of them the target of the big builds) and a small one."""
    await api.ok("PUT", "/images", {"bucket_slug": "big"})
    await api.ok("PUT", "/images", {"bucket_slug": "small"})
    for start in range(0, SEED, 50):
        await asyncio.gather(
            *[api.ok("POST", "/images/big/iterations", {"fingerprint": f"seed-{n}"}) for n in range(start, start + 50)]
        )
    target = (await api.ok("POST", "/images/big/iterations", {"fingerprint": "target"}))["iteration"]["id"]
    small = await asyncio.gather(
        *[api.ok("POST", "/images/small/iterations", {"fingerprint": f"small-{n}"}) for n in range(SMALL_BUILDS)]
    )
    return target, [s["iteration"]["id"] for s in small]


def planned_writes(target: str, small: list[str]) -> list[Write]:
    writes = [
        Write("iteration", "big", f"sd-{n}", body={"fingerprint": f"sd-{n}"}, held=n < HELD) for n in range(ITERATIONS)
    ]
    for n in range(BIG_BUILDS):
        build = {
            "component_type": f"big-{n}",
            "cloud_provider": "aws",
            "images": [{"image_id": f"ami-{n}-{i}", "region": f"region-{i % 16}"} for i in range(IMAGES)],
            "labels": {f"label-{i}": "x" * 200 for i in range(50)},
        }
        writes.append(Write("build", "big", f"big-{n}", iteration_id=target, body={"build": build}))
    writes += [
        Write(
            "build",
            "small",
            "amazon-ebs.small",
            iteration_id=it,
            body={"build": {"component_type": "amazon-ebs.small"}},
        )
        for it in small
    ]
    return writes


async def send(api: Api, write: Write, started: asyncio.Event, release: asyncio.Event) -> None:
    path = f"/images/{write.bucket}/iterations"
    if write.kind == "build":
        path += f"/{write.iteration_id}"
    try:
        if write.held:
            r = await api.call_held(path, write.body, started, release)
        else:
            r = await api.call("POST", path, write.body)
    except httpx.HTTPError as exc:
        write.error = exc
    else:
        write.status, write.text = r.status_code, r.text
    write.answered_at = time.monotonic()


async def in_flight_then_sigterm(server: ServerProcess, api: Api, writes: list[Write]) -> tuple[float, list[Write]]:
    release = asyncio.Event()
    started = {id(w): asyncio.Event() for w in writes}
    tasks = [asyncio.create_task(send(api, w, started[id(w)], release)) for w in writes]
    held = [started[id(w)] for w in writes if w.held]
    await asyncio.wait_for(asyncio.gather(*[e.wait() for e in held]), timeout=20)
    # One more round trip: the server's loop has read the held heads by the time it answers a later request.
    assert (await api.call("GET", "/images/big")).status_code == 200
    sigterm_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    release.set()  # the held writes' bodies are finished while the server shuts down
    late = [Write("iteration", "small", f"late-{n}", body={"fingerprint": f"late-{n}"}, late=True) for n in range(LATE)]
    unused = asyncio.Event()
    tasks += [asyncio.create_task(send(api, w, unused, release)) for w in late]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=GRACEFUL_TIMEOUT + 10)
    return sigterm_at, late


async def present(api: Api, write: Write) -> bool:
    if write.kind == "iteration":
        r = await api.call("GET", f"/images/{write.bucket}/iteration", fingerprint=write.key)
        assert r.status_code in (200, 409), r.text  # 409 with code 10: no such iteration
        return r.status_code == 200
    builds = (await api.ok("GET", f"/images/{write.bucket}/iterations/{write.iteration_id}/builds"))["builds"]
    matching = [b for b in builds if b["component_type"] == write.key]
    if matching and write.kind == "build" and write.body["build"].get("images"):
        assert len(matching[0]["images"]) == IMAGES
    return bool(matching)


def test_sigterm_finishes_in_flight_writes_and_exits_cleanly(tmp_path: Path, backend: Backend) -> None:
    url = backend.new_url(tmp_path)
    init = backend.init
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    try:
        with serving(tmp_path / "before", url) as [server]:

            async def before() -> tuple[list[Write], list[Write], float]:
                api = Api(server.url, init.organization_id, init.project_id)
                try:
                    await api.login(init.client_id, init.client_secret)
                    target, small = await seed(api)
                    writes = planned_writes(target, small)
                    sigterm_at, late = await in_flight_then_sigterm(server, api, writes)
                    return writes, late, sigterm_at
                finally:
                    await api.http.aclose()

            writes, late, sigterm_at = asyncio.run(before())
            try:
                code = server.process.wait(GRACEFUL_TIMEOUT + 5)
            except subprocess.TimeoutExpired:
                pytest.fail("the server did not exit within its graceful timeout")
            exited_after = time.monotonic() - sigterm_at
            log = server.output()
        assert code == 0, log[-3000:]
        assert exited_after < GRACEFUL_TIMEOUT, f"exit took {exited_after:.1f}s: in-flight work was cut off"
        assert "Traceback" not in log, log[-3000:]
        assert "timeout graceful shutdown exceeded" not in log

        everything = writes + late
        answered = [w for w in everything if w.error is None]
        not_reached = [w for w in everything if w.error is not None]
        assert all(w.status == 200 for w in answered), [
            (w.key, w.status, w.text[:300]) for w in answered if w.status != 200
        ]
        assert all(isinstance(w.error, NOT_REACHED) for w in not_reached), [repr(w.error) for w in not_reached]
        after_sigterm = [w for w in writes if w.error is None and w.answered_at > sigterm_at]
        held = [w for w in writes if w.held]
        assert all(w.status == 200 and w.answered_at > sigterm_at for w in held), [
            (w.key, w.status, repr(w.error)) for w in held
        ]

        with serving(tmp_path / "after", url) as [again]:

            async def after() -> list[bool]:
                api = Api(again.url, init.organization_id, init.project_id)
                try:
                    await api.login(init.client_id, init.client_secret)
                    return list(await asyncio.gather(*[present(api, w) for w in everything]))
                finally:
                    await api.http.aclose()

            found = asyncio.run(after())
        for write, there in zip(everything, found, strict=True):
            if write.error is None:
                assert there, f"{write.kind} {write.key} was answered 200 but is missing after the restart"
            else:
                assert not there, f"{write.kind} {write.key} got no response ({write.error!r}) but was written"
        print(
            f"graceful shutdown: {len(writes)} writes in flight, {len(answered)} answered 200 "
            f"({len(after_sigterm)} of them after SIGTERM), {len(not_reached)} never reached the server "
            f"({sum(w.late for w in not_reached)} of the {LATE} sent after SIGTERM); "
            f"exit code {code} {exited_after:.2f}s after SIGTERM; every 200 present after restart, "
            f"every unanswered write absent"
        )
    finally:
        backend.release(url)
