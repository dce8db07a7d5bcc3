"""Crash safety: a mixed write load against `packyard serve` while the server is killed with SIGKILL.

    python -m bench.crash [--seconds 30] [--database-url URL] [--clients 8] [--seed N]

Starts packyard (`--no-tls`, on 127.0.0.1) on SQLite in a temporary data directory, or on a fresh
database created in the PostgreSQL cluster that --database-url points at (dropped at the end). Several
async clients publish iterations (create iteration, builds, RUNNING, DONE with images), move channels,
revoke iterations with rollback_channels and restore them, while the server is killed with SIGKILL every
1-4 s and restarted on the same database and port. Afterwards the server is killed once more, restarted,
and every write that was answered 200 is looked up through the API; then the server is stopped with
SIGTERM and the database is checked (PRAGMA integrity_check on SQLite; foreign keys, unique keys and
the bucket counters by query on both databases).

A request that fails with a connection error (refused, reset, closed mid-response) was never
acknowledged: it may or may not have been committed, and the checks accept either. Exit status is
non-zero when an acknowledged write is missing, any 5xx was seen, anything else looked wrong, or the
integrity check failed. docs/reliability.md records runs on both databases.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

START_TIMEOUT = 30.0  # seconds for one server start (migrations run on SQLite)
STOP_TIMEOUT = 35.0  # the server's graceful timeout is 30 s
REQUEST_TIMEOUT = 15.0
BUCKETS = ("crash-a", "crash-b")
CHANNELS = ("prod", "stage")
COMPONENTS = ("amazon-ebs.base", "googlecompute.base")
SECRET = "crash-test-secret"  # noqa: S105 - the throwaway server's PACKYARD_SECRET_KEY
UNSET, RUNNING, DONE = 0, 1, 2
STATUS_NAMES = ("UNSET", "RUNNING", "DONE")


@dataclass(frozen=True)
class Credentials:
    organization_id: str
    project_id: str
    client_id: str
    client_secret: str


# ---- the server process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `packyard serve` at a time on a fixed port and database; killed and started again."""

    def __init__(self, database_url: str, workdir: Path, port: int) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.logs: list[Path] = []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
        env.update(PACKYARD_DATABASE_URL=self.database_url, PACKYARD_SECRET_KEY=SECRET)
        log = self.workdir / f"server-{self.starts}.log"
        self.logs.append(log)
        self.starts += 1
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "packyard",
                    "serve",
                    "--no-tls",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.workdir / "data"),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode} on start:\n{self.output()[-4000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a starting process, bounded by the deadline
        self.kill()
        raise RuntimeError(f"server not healthy after {START_TIMEOUT}s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int | None:
        """SIGTERM and wait for the graceful exit; returns the exit code (None if it had to be killed)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


# ---- what the clients did ----------------------------------------------------------------------


@dataclass
class BuildRec:
    id: str
    iteration_id: str
    component: str
    acked: int = UNSET  # the furthest state a 200 confirmed
    attempted: int = UNSET  # the furthest state sent (answered or not)
    images: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RevOp:
    kind: str  # "revoke" | "restore"
    message: str
    acked: bool  # False: the connection failed, the outcome is unknown


@dataclass
class IterRec:
    id: str
    bucket: str
    fingerprint: str
    builds: list[BuildRec] = field(default_factory=list)
    all_done_acked: bool = False
    version: int = 0  # read back after completion; 0 when that read failed
    revocations: list[RevOp] = field(default_factory=list)
    revoked: bool = False  # what the owner believes after its last acknowledged revoke/restore
    in_doubt: bool = False  # a revoke/restore went unanswered: the owner stops touching its revocation


@dataclass
class Move:
    bucket: str
    channel: str
    iteration_id: str
    promoted_at: str


@dataclass
class Ledger:
    iterations: dict[str, IterRec] = field(default_factory=dict)
    complete: dict[str, list[IterRec]] = field(default_factory=lambda: {b: [] for b in BUCKETS})
    acked: collections.Counter[str] = field(default_factory=collections.Counter)
    unknown: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    moves: list[Move] = field(default_factory=list)
    refused_connections: int = 0
    server_errors: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


class Unanswered(Exception):
    """The request got no HTTP response. `sent` is False when the connection was refused (the server was
    down), True when it was reset, closed or timed out after the request went out (outcome unknown)."""

    def __init__(self, what: str, *, sent: bool) -> None:
        super().__init__(what)
        self.sent = sent


class Client:
    def __init__(self, url: str, creds: Credentials, ledger: Ledger) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT)
        self.prefix = f"/packer/2021-04-30/organizations/{creds.organization_id}/projects/{creds.project_id}"
        self.creds = creds
        self.ledger = ledger
        self.token = ""

    async def login(self) -> None:
        r = await self.http.post(
            "/oauth2/token",
            content=f"grant_type=client_credentials&client_id={self.creds.client_id}"
            f"&client_secret={self.creds.client_secret}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        r.raise_for_status()
        self.token = str(r.json()["access_token"])

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        try:
            r = await self.http.request(
                method,
                self.prefix + path,
                json=body,
                params=params or None,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.ledger.refused_connections += 1
            raise Unanswered(type(exc).__name__, sent=False) from exc
        except httpx.TransportError as exc:
            raise Unanswered(type(exc).__name__, sent=True) from exc
        if r.status_code >= 500:
            self.ledger.server_errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return r

    async def close(self) -> None:
        await self.http.aclose()


# ---- the load --------------------------------------------------------------------------------


class Worker:
    def __init__(self, n: int, client: Client, ledger: Ledger, rng: random.Random) -> None:
        self.n = n
        self.client = client
        self.ledger = ledger
        self.rng = rng
        self.count = 0
        self.mine: list[IterRec] = []

    def _lost(self, kind: str, exc: Unanswered) -> None:
        if exc.sent:
            self.ledger.unknown[kind] += 1

    def _unexpected(self, kind: str, r: httpx.Response) -> None:
        self.ledger.refused[f"{kind} {r.status_code}"] += 1
        if r.status_code < 500:
            self.ledger.anomalies.append(f"{kind}: unexpected {r.status_code} {r.text[:200]}")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step(stop)
            except Unanswered:
                await asyncio.sleep(0.05)  # the server is down or restarting; try again shortly

    async def step(self, stop: asyncio.Event) -> None:
        revocable = [i for i in self.mine if not i.in_doubt and not i.revoked]
        restorable = [i for i in self.mine if not i.in_doubt and i.revoked]
        roll = self.rng.random()
        if roll < 0.25 and any(self.ledger.complete.values()):
            await self.move()
        elif roll < 0.35 and revocable:
            await self.revoke(self.rng.choice(revocable))
        elif roll < 0.45 and restorable:
            await self.restore(self.rng.choice(restorable))
        else:
            await self.publish(stop)

    async def publish(self, stop: asyncio.Event) -> None:
        led = self.ledger
        bucket = self.rng.choice(BUCKETS)
        self.count += 1
        fingerprint = f"w{self.n}-{self.count}-{uuid.uuid4().hex[:8]}"
        try:
            r = await self.client.call("POST", f"/images/{bucket}/iterations", {"fingerprint": fingerprint})
        except Unanswered as exc:
            self._lost("create iteration", exc)
            raise
        if r.status_code != 200:
            return self._unexpected("create iteration", r)
        led.acked["create iteration"] += 1
        it = IterRec(r.json()["iteration"]["id"], bucket, fingerprint)
        led.iterations[it.id] = it
        components = COMPONENTS[: self.rng.choice((1, 2))]
        for component in components:
            if stop.is_set():
                return None
            try:
                r = await self.client.call(
                    "POST", f"/images/{bucket}/iterations/{it.id}", {"build": {"component_type": component}}
                )
            except Unanswered as exc:
                self._lost("create build", exc)
                raise
            if r.status_code != 200:
                return self._unexpected("create build", r)
            led.acked["create build"] += 1
            it.builds.append(BuildRec(r.json()["build"]["id"], it.id, component))
        for level, kind in ((RUNNING, "build RUNNING"), (DONE, "build DONE")):
            for b in it.builds:
                if stop.is_set():
                    return None
                updates: dict[str, Any] = {"status": STATUS_NAMES[level]}
                if level == DONE:
                    b.images = [(f"ami-{uuid.uuid4().hex[:12]}", region) for region in ("us-east-1", "eu-west-1")]
                    updates.update(cloud_provider="aws", images=[{"image_id": i, "region": reg} for i, reg in b.images])
                b.attempted = level
                try:
                    r = await self.client.call("PATCH", f"/builds/{b.id}", {"updates": updates})
                except Unanswered as exc:
                    self._lost(kind, exc)
                    if not exc.sent:
                        b.attempted = b.acked
                    raise
                if r.status_code != 200:
                    return self._unexpected(kind, r)
                led.acked[kind] += 1
                b.acked = level
        it.all_done_acked = True
        r = await self.client.call("GET", f"/images/{bucket}/iteration", iteration_id=it.id)
        if r.status_code != 200:
            return self._unexpected("read completed iteration", r)
        body = r.json()["iteration"]
        if not body.get("complete") or not body.get("incremental_version"):
            led.anomalies.append(f"iteration {it.id}: every build DONE but read back as {body}")
            return None
        it.version = int(body["incremental_version"])
        self.mine.append(it)
        led.complete[bucket].append(it)
        return None

    async def move(self) -> None:
        led = self.ledger
        bucket = self.rng.choice([b for b in BUCKETS if led.complete[b]])
        target = self.rng.choice(led.complete[bucket])
        channel = self.rng.choice(CHANNELS)
        body: dict[str, Any] = (
            {"incremental_version": target.version} if self.rng.random() < 0.5 else {"iteration_id": target.id}
        )
        try:
            r = await self.client.call("PATCH", f"/images/{bucket}/channels/{channel}", body)
        except Unanswered as exc:
            self._lost("channel move", exc)
            raise
        if r.status_code == 400 and r.json().get("code") == 9:
            led.refused["channel move to a revoked iteration (400 code 9)"] += 1
            return None
        if r.status_code != 200:
            return self._unexpected("channel move", r)
        led.acked["channel move"] += 1
        got = r.json()["channel"]
        if got["iteration"]["id"] != target.id:
            led.anomalies.append(f"channel move to {target.id} answered with {got['iteration']['id']}")
        led.moves.append(Move(bucket, channel, got["iteration"]["id"], got["pointer"]["created_at"]))
        return None

    async def revoke(self, it: IterRec) -> None:
        self.count += 1
        message = f"crash-{self.n}-{self.count}"
        body = {"bucket_slug": it.bucket, "revoke_at": _now(), "revocation_message": message, "rollback_channels": True}
        await self._revocation(it, RevOp("revoke", message, acked=False), body)

    async def restore(self, it: IterRec) -> None:
        await self._revocation(it, RevOp("restore", "", acked=False), {"bucket_slug": it.bucket, "restore": True})

    async def _revocation(self, it: IterRec, op: RevOp, body: dict[str, Any]) -> None:
        it.revocations.append(op)
        try:
            r = await self.client.call("PATCH", f"/iterations/{it.id}", body)
        except Unanswered as exc:
            self._lost(op.kind, exc)
            if exc.sent:
                it.in_doubt = True
            else:
                it.revocations.pop()
            raise
        if r.status_code != 200:
            it.revocations.pop()
            it.in_doubt = True
            return self._unexpected(op.kind, r)
        op.acked = True
        it.revoked = op.kind == "revoke"
        self.ledger.acked[op.kind] += 1
        got = r.json()["iteration"]
        if bool(got.get("revoke_at")) != it.revoked:
            self.ledger.anomalies.append(f"{op.kind} of {it.id} answered with {got}")
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ---- after the load: is every acknowledged write there? -------------------------------------


@dataclass
class Verdict:
    found: int = 0
    missing: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if ok:
            self.found += 1
        else:
            self.missing.append(what)


def _status_allowed(b: BuildRec) -> set[str]:
    return {STATUS_NAMES[level] for level in range(b.acked, max(b.acked, b.attempted) + 1)}


def _revocation_states(it: IterRec) -> list[tuple[bool, str]]:
    """The (revoked, message) states the iteration may be in: the last acknowledged operation's, or that of
    an unanswered one after it (which may or may not have been committed)."""
    states: list[tuple[bool, str]] = [(False, "")]
    for op in it.revocations:
        state = (op.kind == "revoke", op.message)
        states = [state] if op.acked else [*states, state]
    return states


async def verify(client: Client, ledger: Ledger) -> Verdict:
    verdict = Verdict()
    limit = asyncio.Semaphore(16)

    async def get(path: str, **params: Any) -> httpx.Response:
        async with limit:
            return await client.call("GET", path, **params)

    iterations = list(ledger.iterations.values())
    its = await asyncio.gather(*[get(f"/images/{i.bucket}/iteration", iteration_id=i.id) for i in iterations])
    builds = [b for i in iterations for b in i.builds]
    got_builds = await asyncio.gather(*[get(f"/builds/{b.id}") for b in builds])
    by_build = {b.id: r for b, r in zip(builds, got_builds, strict=True)}

    for it, r in zip(iterations, its, strict=True):
        body = r.json().get("iteration", {}) if r.status_code == 200 else {}
        verdict.check(body.get("fingerprint") == it.fingerprint, f"iteration {it.id}: {r.status_code} {r.text[:200]}")
        if not body:
            continue
        if it.all_done_acked:
            ok = bool(body.get("complete")) and (it.version == 0 or body.get("incremental_version") == it.version)
            if not ok:
                verdict.missing.append(f"iteration {it.id}: completed as v{it.version}, now {body}")
        elif not any(b.attempted == DONE for b in it.builds) and body.get("complete"):
            ledger.anomalies.append(f"iteration {it.id}: complete although no build was sent DONE: {body}")
        acked_revocations = [op for op in it.revocations if op.acked]
        if acked_revocations:
            state = (bool(body.get("revoke_at")), body.get("revocation_message", ""))
            allowed = _revocation_states(it)
            # Each acknowledged revoke/restore is present, or superseded by a later acknowledged one.
            for _ in acked_revocations:
                verdict.check(state in allowed, f"iteration {it.id}: revocation {state} not in {allowed}")
        for b in it.builds:
            rb = by_build[b.id]
            got = rb.json().get("build", {}) if rb.status_code == 200 else {}
            verdict.check(
                got.get("component_type") == b.component and got.get("iteration_id") == it.id,
                f"build {b.id}: {rb.status_code} {rb.text[:200]}",
            )
            status = got.get("status")
            if b.acked >= RUNNING:
                verdict.check(status in _status_allowed(b), f"build {b.id}: RUNNING acknowledged, now {status}")
            elif got and status not in _status_allowed(b):
                ledger.anomalies.append(f"build {b.id}: status {status}, but only {_status_allowed(b)} were sent")
            if b.acked == DONE or status == "DONE":
                images = [(i.get("image_id"), i.get("region")) for i in got.get("images", [])]
                ok = status == "DONE" and images == b.images and got.get("cloud_provider") == "aws"
                if b.acked == DONE:
                    verdict.check(ok, f"build {b.id}: DONE acknowledged with {b.images}, now {status} {images}")
                elif not ok:
                    ledger.anomalies.append(f"build {b.id}: DONE with other images than sent: {got}")

    for bucket in BUCKETS:
        for channel in CHANNELS:
            seen: collections.Counter[tuple[str, str]] = collections.Counter()
            token = ""
            for _ in range(10_000):
                params: dict[str, Any] = {"pagination.page_size": 1000}
                if token:
                    params["pagination.next_page_token"] = token
                r = await get(f"/images/{bucket}/channels/{channel}/history", **params)
                if r.status_code != 200:
                    ledger.anomalies.append(f"history of {bucket}/{channel}: {r.status_code} {r.text[:200]}")
                    break
                page = r.json()
                for entry in page["history"]:
                    seen[(entry.get("iteration", {}).get("id", ""), entry.get("promoted_at", ""))] += 1
                token = page.get("pagination", {}).get("next_page_token", "")
                if not token:
                    break
            for move in ledger.moves:
                if (move.bucket, move.channel) != (bucket, channel):
                    continue
                key = (move.iteration_id, move.promoted_at)
                verdict.check(seen[key] > 0, f"channel {bucket}/{channel}: assignment {key} not in its history")
                seen[key] -= 1
    return verdict


async def versions(client: Client, ledger: Ledger) -> str:
    """Every bucket's incremental versions, as ListIterations shows them: unique and 1..n without gaps."""
    parts = []
    for bucket in BUCKETS:
        found: list[int] = []
        token = ""
        for _ in range(10_000):
            params: dict[str, Any] = {"pagination.page_size": 1000}
            if token:
                params["pagination.next_page_token"] = token
            r = await client.call("GET", f"/images/{bucket}/iterations", **params)
            if r.status_code != 200:
                ledger.anomalies.append(f"list iterations of {bucket}: {r.status_code} {r.text[:200]}")
                break
            page = r.json()
            found += [int(i["incremental_version"]) for i in page["iterations"] if i.get("incremental_version")]
            token = page.get("pagination", {}).get("next_page_token", "")
            if not token:
                break
        dupes = sorted(v for v, n in collections.Counter(found).items() if n > 1)
        if dupes:
            ledger.anomalies.append(f"bucket {bucket}: incremental versions used twice: {dupes[:20]}")
        if sorted(found) != list(range(1, len(found) + 1)):
            ledger.anomalies.append(f"bucket {bucket}: versions are not 1..{len(found)}: gaps or twins")
        parts.append(f"{bucket} {len(found)}")
    return ", ".join(parts)


async def check(url: str, creds: Credentials, ledger: Ledger) -> tuple[Verdict, str]:
    """Look up every acknowledged write through the server at url; returns the verdict and a summary of
    the incremental versions (problems with them go to ledger.anomalies)."""
    client = Client(url, creds, ledger)
    try:
        await client.login()
        return await verify(client, ledger), await versions(client, ledger)
    finally:
        await client.close()


# ---- the database's own view ----------------------------------------------------------------


def integrity_check(database_url: str) -> tuple[bool, str]:
    """SQLite's integrity_check and foreign_key_check; on both databases, every declared foreign key
    resolves, every primary and unique key holds, and the bucket counters agree with the iterations."""
    from packyard.storage import schema
    from packyard.storage.urls import normalize_url

    problems: list[str] = []
    notes: list[str] = []
    url = normalize_url(database_url)
    if url.startswith("sqlite"):
        path = sa.make_url(url).database or ""
        con = sqlite3.connect(path)
        try:
            result = [row[0] for row in con.execute("PRAGMA integrity_check")]
            fk = con.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            con.close()
        notes.append(f"PRAGMA integrity_check: {', '.join(result)}")
        notes.append(f"PRAGMA foreign_key_check: {len(fk)} rows")
        if result != ["ok"]:
            problems.append(f"integrity_check: {result[:10]}")
        if fk:
            problems.append(f"foreign_key_check: {fk[:10]}")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    fks = keys = 0
    try:
        with engine.connect() as conn:
            for table in schema.metadata.sorted_tables:
                for fkc in table.foreign_key_constraints:
                    fks += 1
                    child = [c.name for c in fkc.columns]
                    parent = fkc.referred_table
                    cond = " AND ".join(
                        f"p.{e.column.name} = c.{e.parent.name}" for e in fkc.elements
                    )  # names come from schema.py
                    notnull = " AND ".join(f"c.{n} IS NOT NULL" for n in child)
                    sql = (
                        f"SELECT count(*) FROM {table.name} c WHERE {notnull} "
                        f"AND NOT EXISTS (SELECT 1 FROM {parent.name} p WHERE {cond})"
                    )
                    orphans = conn.exec_driver_sql(sql).scalar_one()
                    if orphans:
                        problems.append(f"{orphans} rows of {table.name}.{child} name a missing {parent.name}")
                uniques: list[tuple[list[str], str]] = [([c.name for c in table.primary_key.columns], "")]
                for con_ in table.constraints:
                    if isinstance(con_, sa.UniqueConstraint):
                        uniques.append(([c.name for c in con_.columns], ""))
                for column in table.columns:
                    if column.unique:
                        uniques.append(([column.name], ""))
                for index in table.indexes:
                    if index.unique:
                        where = index.dialect_options["sqlite"].get("where")
                        uniques.append(([c.name for c in index.columns], f" AND {where}" if where is not None else ""))
                for columns, where in uniques:
                    keys += 1
                    cols = ", ".join(columns)
                    notnull = " AND ".join(f"{c} IS NOT NULL" for c in columns)
                    sql = (
                        f"SELECT count(*) FROM (SELECT {cols} FROM {table.name} WHERE {notnull}{where} "
                        f"GROUP BY {cols} HAVING count(*) > 1) d"
                    )
                    dupes = conn.exec_driver_sql(sql).scalar_one()
                    if dupes:
                        problems.append(f"{dupes} duplicated values of {table.name}({cols})")
            counters = conn.exec_driver_sql(
                "SELECT b.slug, b.iteration_count, b.version_counter, b.latest_iteration_id,"
                " (SELECT count(*) FROM iteration i WHERE i.bucket_id = b.id),"
                " (SELECT coalesce(max(i.incremental_version), 0) FROM iteration i WHERE i.bucket_id = b.id),"
                " (SELECT count(*) FROM iteration i WHERE i.id = b.latest_iteration_id) FROM bucket b"
            ).all()
            for slug, count, counter, latest, real_count, max_version, latest_found in counters:
                if count != real_count:
                    problems.append(f"bucket {slug}: iteration_count {count}, {real_count} iterations")
                if counter != max_version:
                    problems.append(f"bucket {slug}: version_counter {counter}, highest version {max_version}")
                if latest is not None and not latest_found:
                    problems.append(f"bucket {slug}: latest_iteration_id {latest} does not exist")
    finally:
        engine.dispose()
    notes.append(f"{fks} foreign keys resolve, {keys} primary/unique keys hold, bucket counters agree")
    if problems:
        return False, "FAILED: " + "; ".join(problems[:20])
    return True, "ok (" + "; ".join(notes) + ")"


# ---- the run --------------------------------------------------------------------------------


@dataclass
class Report:
    backend: str
    seconds: float
    clients: int
    ledger: Ledger
    verdict: Verdict
    kills: int
    restarts: int
    versions: str
    integrity_ok: bool
    integrity: str
    exit_code: int | None
    tracebacks: int

    @property
    def acknowledged(self) -> int:
        return sum(self.ledger.acked.values())

    @property
    def missing(self) -> int:
        return len(self.verdict.missing)

    @property
    def server_errors(self) -> int:
        return len(self.ledger.server_errors)

    @property
    def ok(self) -> bool:
        return (
            not self.missing
            and not self.server_errors
            and not self.ledger.anomalies
            and self.integrity_ok
            and self.exit_code == 0
        )

    def render(self) -> str:
        def breakdown(counter: collections.Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

        lines = [
            f"packyard crash test: {self.backend}, {self.seconds:.0f} s of load, {self.clients} clients",
            f"writes acknowledged: {self.acknowledged} ({breakdown(self.ledger.acked)})",
            f"writes found:        {self.verdict.found}",
            f"writes missing:      {self.missing}",
            f"unacknowledged (connection lost, outcome unknown): {sum(self.ledger.unknown.values())}"
            f" ({breakdown(self.ledger.unknown)})",
            f"connections refused while the server was down: {self.ledger.refused_connections}",
            f"refused as expected: {breakdown(self.ledger.refused)}",
            f"kills (SIGKILL):     {self.kills}",
            f"restarts:            {self.restarts}",
            f"5xx seen:            {self.server_errors}",
            f"other anomalies:     {len(self.ledger.anomalies)}",
            f"incremental versions unique and gapless per bucket: {self.versions}",
            f"integrity:           {self.integrity}",
            f"final SIGTERM exit:  {self.exit_code}",
            f"tracebacks in server logs: {self.tracebacks}",
        ]
        for title, items in (
            ("missing", self.verdict.missing),
            ("5xx", self.ledger.server_errors),
            ("anomaly", self.ledger.anomalies),
        ):
            lines += [f"  {title}: {item}" for item in items[:20]]
        lines.append(f"result: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


async def _setup(client: Client) -> None:
    await client.login()
    for bucket in BUCKETS:
        r = await client.call("PUT", "/images", {"bucket_slug": bucket})
        r.raise_for_status()
        for channel in CHANNELS:
            r = await client.call("POST", f"/images/{bucket}/channels", {"slug": channel})
            r.raise_for_status()


async def _load(
    server: Server,
    creds: Credentials,
    ledger: Ledger,
    *,
    seconds: float,
    clients: int,
    kill_interval: tuple[float, float],
    min_kills: int,
    rng: random.Random,
) -> tuple[int, int]:
    setup = Client(server.url, creds, ledger)
    try:
        await _setup(setup)
        token = setup.token
    finally:
        await setup.close()
    workers = []
    for n in range(clients):
        c = Client(server.url, creds, ledger)
        c.token = token
        workers.append(Worker(n, c, ledger, random.Random(rng.random())))
    stop = asyncio.Event()
    kills = restarts = 0

    async def killer() -> None:
        nonlocal kills, restarts
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(*kill_interval))
            if stop.is_set():
                return
            server.kill()
            kills += 1
            await asyncio.to_thread(server.start)
            restarts += 1

    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    kill_task = asyncio.create_task(killer())
    try:
        await asyncio.sleep(seconds)
        hard = time.monotonic() + max(30.0, 4 * kill_interval[1] * max(min_kills, 1))
        while kills < min_kills and time.monotonic() < hard and not kill_task.done():
            await asyncio.sleep(0.1)  # waiting for the required number of kills, bounded by `hard`
    finally:
        stop.set()
        done, pending = await asyncio.wait([*tasks, kill_task], timeout=REQUEST_TIMEOUT + START_TIMEOUT + 5)
        for task in pending:
            task.cancel()
        for w in workers:
            await w.client.close()
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    return kills, restarts


def run(
    database_url: str,
    creds: Credentials,
    workdir: Path,
    *,
    seconds: float = 30.0,
    clients: int = 8,
    kill_interval: tuple[float, float] = (1.0, 4.0),
    min_kills: int = 1,
    seed: int | None = None,
) -> Report:
    """Run the load against a migrated and initialised database; always stops the server it starts."""
    rng = random.Random(seed)
    ledger = Ledger()
    server = Server(database_url, workdir, free_port())
    exit_code: int | None = None
    try:
        server.start()
        kills, restarts = asyncio.run(
            _load(
                server,
                creds,
                ledger,
                seconds=seconds,
                clients=clients,
                kill_interval=kill_interval,
                min_kills=min_kills,
                rng=rng,
            )
        )
        # One last kill, so that what is checked is what a crash left behind.
        server.kill()
        kills += 1
        server.start()
        restarts += 1

        verdict, version_summary = asyncio.run(check(server.url, creds, ledger))
        exit_code = server.terminate()
    finally:
        server.kill()
    integrity_ok, integrity = integrity_check(database_url)
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    return Report(
        backend,
        seconds,
        clients,
        ledger,
        verdict,
        kills,
        restarts,
        version_summary,
        integrity_ok,
        integrity,
        exit_code,
        server.output().count("Traceback"),
    )


@contextlib.contextmanager
def fresh_database(database_url: str | None, workdir: Path) -> Iterator[tuple[str, Credentials]]:
    """A migrated, initialised database: a SQLite file in workdir, or a new PostgreSQL database that is
    dropped afterwards."""
    from packyard.bootstrap import initialize
    from packyard.storage import migrate
    from packyard.storage.db import Database
    from packyard.storage.urls import normalize_url

    admin = None
    name = ""
    if database_url and not database_url.startswith("sqlite"):
        admin = sa.create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        name = f"packyard_crash_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(normalize_url(database_url)).set(database=name).render_as_string(hide_password=False)
    else:
        url = database_url or f"sqlite:///{workdir / 'packyard.db'}"
    try:
        db = Database(url)
        try:
            migrate.upgrade(db)
            init = initialize(db, datetime.now(UTC))
        finally:
            db.dispose()
        yield url, Credentials(init.organization_id, init.project_id, init.client_id, init.client_secret)
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL whose cluster gets a fresh database for the run (default: SQLite in a temp dir)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent async clients (default 8)")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable schedule of choices")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="packyard-crash-") as tmp:
        workdir = Path(tmp)
        with fresh_database(args.database_url, workdir) as (url, creds):
            report = run(url, creds, workdir, seconds=args.seconds, clients=args.clients, seed=args.seed)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
