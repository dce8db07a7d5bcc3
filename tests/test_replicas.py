"""Several `packyard serve` processes on one database behave as one server.

On the PostgreSQL lane this is the multi-replica setup; on the SQLite lane it is two processes on one
file, which is what `--workers` does too. Writers across processes race for real here (in-process tests
are serialized by the event loop): 64 concurrent publishers, 32 identical CreateBuild calls and 16
concurrent channel moves, with no 5xx anywhere.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from packyard.bootstrap import default_tenant
from packyard.storage import migrate
from packyard.storage import schema as t
from packyard.storage.db import Database
from tests.conftest import START, Backend
from tests.support.server import serving

pytestmark = pytest.mark.slow
WRITERS = 64  # issue 8: 64 concurrent publishers, one iteration each, in one bucket


class Fleet:
    """One client per server; requests go round-robin so every flow crosses processes."""

    def __init__(self, urls: list[str], org: str, project: str, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.clients = [httpx.AsyncClient(base_url=u, timeout=30.0) for u in urls]
        self.prefix = f"/packer/2021-04-30/organizations/{org}/projects/{project}"
        self.token = ""
        self.statuses: list[int] = []
        self.turn = 0

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        client = self.clients[self.turn % len(self.clients)]
        self.turn += 1
        response = await client.request(
            method,
            self.prefix + path,
            json=body if body is not None else ({} if method in ("POST", "PUT", "PATCH") else None),
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self.statuses.append(response.status_code)
        return response

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


async def publish(fleet: Fleet, bucket: str, fingerprint: str) -> dict[str, Any]:
    r = await fleet.call("GET", f"/images/{bucket}/iteration", fingerprint=fingerprint)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == 10
    r = await fleet.call("POST", f"/images/{bucket}/iterations", {"fingerprint": fingerprint})
    assert r.status_code == 200, r.text
    iteration = r.json()["iteration"]
    builds = []
    for component in ("amazon-ebs.a", "googlecompute.b"):
        r = await fleet.call(
            "POST", f"/images/{bucket}/iterations/{iteration['id']}", {"build": {"component_type": component}}
        )
        assert r.status_code == 200, r.text
        builds.append(r.json()["build"]["id"])
    for build_id in builds:
        r = await fleet.call("PATCH", f"/builds/{build_id}", {"updates": {"status": "RUNNING"}})
        assert r.status_code == 200, r.text
    for build_id in builds:
        done = {"status": "DONE", "cloud_provider": "aws", "images": [{"image_id": f"ami-{build_id}", "region": "r"}]}
        r = await fleet.call("PATCH", f"/builds/{build_id}", {"updates": done})
        assert r.status_code == 200, r.text
    r = await fleet.call("GET", f"/images/{bucket}/iteration", iteration_id=iteration["id"])
    return dict(r.json()["iteration"])


async def scenario(fleet: Fleet, db: Database, issuer: str) -> None:
    # A token issued by one process is accepted by the others.
    async with httpx.AsyncClient(base_url=issuer) as c:
        r = await c.post(
            "/oauth2/token",
            content=f"grant_type=client_credentials&client_id={fleet.client_id}&client_secret={fleet.client_secret}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    fleet.token = r.json()["access_token"]
    for client in fleet.clients:
        r = await client.get(fleet.prefix + "/registry", headers={"Authorization": f"Bearer {fleet.token}"})
        assert r.status_code == 200, r.text

    # Duplicates: one winner, code 6 for everyone else, whichever process they hit.
    creates = await asyncio.gather(*[fleet.call("PUT", "/images", {"bucket_slug": "shared"}) for _ in range(16)])
    assert sorted(r.status_code for r in creates) == [200] + [409] * 15
    assert all(r.json()["code"] == 6 for r in creates if r.status_code == 409)

    # 64 concurrent publishers into one bucket: versions 1..64, no gaps, no twins.
    iterations = await asyncio.gather(*[publish(fleet, "shared", f"fp-{n}") for n in range(WRITERS)])
    assert all(it["complete"] for it in iterations)
    assert sorted(it["incremental_version"] for it in iterations) == list(range(1, WRITERS + 1))
    bucket = (await fleet.call("GET", "/images/shared")).json()["bucket"]
    assert bucket["latest_version"] == WRITERS
    assert bucket["iteration_count"] == str(WRITERS)

    spare = (await fleet.call("POST", "/images/shared/iterations", {"fingerprint": "spare"})).json()["iteration"]
    dups = await asyncio.gather(
        *[
            fleet.call("POST", f"/images/shared/iterations/{spare['id']}", {"build": {"component_type": "same"}})
            for _ in range(32)
        ]
    )
    assert sorted(r.status_code for r in dups) == [200] + [409] * 31
    assert all(r.json()["code"] == 6 for r in dups if r.status_code == 409)
    builds = (await fleet.call("GET", f"/images/shared/iterations/{spare['id']}/builds")).json()["builds"]
    assert [b["component_type"] for b in builds] == ["same"]

    # Channel moves from both processes: one history entry per successful call, none lost.
    by_version = {it["incremental_version"]: it for it in iterations}
    r = await fleet.call("POST", "/images/shared/channels", {"slug": "prod", "incremental_version": 1})
    assert r.status_code == 200, r.text
    moves = await asyncio.gather(
        *[fleet.call("PATCH", "/images/shared/channels/prod", {"incremental_version": 2 + n % 5}) for n in range(16)]
    )
    assert all(r.status_code == 200 for r in moves)
    history = (await fleet.call("GET", "/images/shared/channels/prod/history", **{"pagination.page_size": 100})).json()
    assert history["count"] == 17
    channel = (await fleet.call("GET", "/images/shared/channels/prod")).json()["channel"]
    assert channel["iteration"]["id"] == history["history"][0]["iteration"]["id"]

    # A scheduled revocation falls due while both processes run their job loops: its rollback happens once.
    current = channel["iteration"]
    r = await fleet.call(
        "PATCH",
        f"/iterations/{current['id']}",
        {"bucket_slug": "shared", "revoke_in": "1s", "rollback_channels": True, "skip_descendants_revocation": True},
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            states = [row.state for row in conn.execute(sa.select(t.job.c.state))]
        if states == ["done"]:
            break
        await asyncio.sleep(0.2)  # waiting for real server processes, bounded by the deadline
    assert states == ["done"]
    history = (await fleet.call("GET", "/images/shared/channels/prod/history", **{"pagination.page_size": 100})).json()
    assert history["count"] == 18, "exactly one rollback entry"
    assert history["history"][0]["iteration"]["id"] != current["id"]
    latest = (await fleet.call("GET", "/images/shared/channels/latest")).json()["channel"]["iteration"]
    assert latest["id"] != current["id"] or current["incremental_version"] != WRITERS
    assert by_version[WRITERS]["id"] in {latest["id"], current["id"]}

    assert not [s for s in fleet.statuses if s >= 500], "no server errors anywhere"


def test_two_processes_on_one_database_behave_as_one(tmp_path: Path, backend: Backend) -> None:
    url = backend.new_url(tmp_path)
    db = Database(url)
    try:
        with serving(tmp_path, url, count=2) as servers:
            init = backend.init
            urls = [s.url for s in servers]
            fleet = Fleet(urls, init.organization_id, init.project_id, init.client_id, init.client_secret)

            async def run() -> None:
                try:
                    await asyncio.wait_for(scenario(fleet, db, servers[0].url), timeout=120)
                finally:
                    await fleet.close()

            asyncio.run(run())
            logs = "".join(s.output() for s in servers)
            assert "database is locked" not in logs
            assert "Traceback" not in logs, logs[-3000:]
    finally:
        db.dispose()
        backend.release(url)


def test_replicas_starting_together_on_an_empty_database_make_one_default_tenant(
    backend: Backend, tmp_path: Path
) -> None:
    """serve's first start on several replicas at once: each finds no organization, and only one may make
    the default one (Tenants.hold_setup), so all of them serve the same organization and project."""
    url = backend.empty_url(tmp_path)
    databases = [Database(url) for _ in range(4)]
    migrate.upgrade(databases[0])
    together = threading.Barrier(len(databases), timeout=30)
    found: list[tuple[str, str, bool]] = []

    def start(db: Database) -> None:
        together.wait()
        found.append(default_tenant(db, START))

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert len(found) == len(databases)
        assert len({(org, project) for org, project, _ in found}) == 1
        assert sum(created for _, _, created in found) == 1
        organizations = databases[0].run(lambda conn: conn.execute(sa.select(t.organization.c.id)).all(), write=False)
        assert len(organizations) == 1
    finally:
        for db in databases:
            db.dispose()
        backend.release(url)
