"""GET /readyz: whether this process should be sent requests, and if not, what is wrong.

Four checks, each "ok" or a sentence naming the cause:

- database: a statement answers within CHECK_TIMEOUT_SECONDS (on SQLite, also: the database file is
  still at its path; a server whose file was removed or renamed keeps writing to a file nobody sees);
- migrations: the database's schema revision is the one this code was written for;
- jobs: the background job loop (scheduled revocations) is running, and no pass of it has been going
  on for longer than STUCK_SECONDS;
- shutdown: the process has not been told to stop (SIGTERM, SIGINT): a load balancer should stop
  sending it requests while it finishes those it has.

Ready: 200 and every check "ok". Not ready: 503 in the API's error shape, whose message names each
failing check (`not ready: database: ...; jobs: ...`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from packyard.domain.errors import DomainError
from packyard.storage.urls import sqlite_file

if TYPE_CHECKING:
    from packyard.http.request import Request
    from packyard.pipeline.services import Services
    from packyard.storage.db import Database

CHECK_TIMEOUT_SECONDS = 3.0
STUCK_SECONDS = 300.0
NOT_CHECKED = "not checked (no database)"


class NotReady(DomainError):
    code = 14  # UNAVAILABLE: 503


class Health:
    """What the readiness checks read besides the database: the job loop's state and the shutdown."""

    def __init__(self) -> None:
        self.shutting_down = False
        self.jobs: asyncio.Task[None] | None = None  # the job loop, once the app's lifespan started it
        self.pass_started: float | None = None  # time.monotonic() of the running pass; None between passes
        self._head: str | None = None

    def jobs_problem(self, now: float | None = None) -> str | None:
        task = self.jobs
        if task is None:
            return None  # no lifespan (an app embedded without one): no job loop to watch
        if task.done():
            error = None if task.cancelled() else task.exception()
            return f"the background job loop has stopped ({error or 'cancelled'}); restart the server"
        started = self.pass_started
        if started is not None:
            running = (time.monotonic() if now is None else now) - started
            if running > STUCK_SECONDS:
                return f"a pass of the background jobs has been running for {running:.0f} s (stuck on the database?)"
        return None

    def head(self, db: Database) -> str | None:
        if self._head is None:
            from packyard.storage import migrate  # noqa: PLC0415 - alembic's scripts load on first use

            self._head = migrate.head_revision(db)
        return self._head


def _reason(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]


def _database(db: Database, health: Health) -> tuple[str | None, str | None]:
    """(database problem, migrations problem), blocking: run on a thread."""
    path = sqlite_file(db.url)
    if path is not None and not os.path.exists(path):
        return f"the SQLite file {path} is gone (moved or deleted while the server runs): put it back, or restart", None

    def revision(conn: Connection) -> str | None:
        row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return None if row is None else str(row[0])

    try:
        current = db.run(revision, write=False)
    except Exception as exc:
        return f"unreachable: {_reason(exc)}", None
    head = health.head(db)
    if current != head:
        return None, f"the database is at revision {current}, this code needs {head}: run `packyard db upgrade`"
    return None, None


async def check(svc: Services) -> dict[str, str]:
    health = svc.health
    loop = asyncio.get_running_loop()
    try:
        # On a thread even on SQLite: a locked database file would otherwise hold the event loop.
        database, migrations = await asyncio.wait_for(
            loop.run_in_executor(None, _database, svc.db, health), CHECK_TIMEOUT_SECONDS
        )
    except TimeoutError:
        database, migrations = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s (locked or overloaded?)", None
    problems = {
        "database": database,
        "migrations": migrations if database is None else NOT_CHECKED,
        "jobs": health.jobs_problem(),
        "shutdown": "the server is shutting down" if health.shutting_down else None,
    }
    return {name: problem or "ok" for name, problem in problems.items()}


_encoder = msgspec.json.Encoder()


async def readyz(svc: Services, request: Request) -> bytes:
    checks = await check(svc)
    failing = [f"{name}: {state}" for name, state in checks.items() if state not in ("ok", NOT_CHECKED)]
    if failing:
        raise NotReady("not ready: " + "; ".join(failing))
    return _encoder.encode({"status": "ready", "checks": checks})
