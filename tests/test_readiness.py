"""GET /readyz names what is not ready: the database (gone, unreachable, locked), migrations behind the
code, the background job loop stopped or stuck, a shutdown under way; 503 in the API's error shape."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from packyard.ops import readiness
from packyard.storage import migrate
from packyard.storage.urls import normalize_url, sqlite_file
from tests.conftest import Backend, Env
from tests.support.client import error, ok


def not_ready(env: Env) -> str:
    """The message of a 503 from /readyz (asserting the API's error shape)."""
    return error(env.client.get("/readyz", token=""), 14, 503)


def test_ready_lists_every_check(env: Env) -> None:
    assert ok(env.client.get("/readyz", token="")) == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "jobs": "ok", "shutdown": "ok"},
    }


def test_a_database_that_is_gone_is_named(env: Env, backend: Backend) -> None:
    url = env.settings.effective_database_url
    if backend.name == "sqlite":
        path = sqlite_file(url)
        assert path is not None
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        message = not_ready(env)
        assert message.startswith(f"not ready: database: the SQLite file {path} is gone")
    else:
        backend.release(url)  # DROP DATABASE ... WITH (FORCE): the server's connections end with it
        message = not_ready(env)
        assert message.startswith("not ready: database: unreachable: ")
        assert "does not exist" in message or "terminat" in message, message
    assert "migrations" not in message  # not checked without a database
    assert "jobs" not in message  # only what fails is named
    assert ok(env.client.get("/healthz", token="")) == {"status": "ok"}  # alive, not ready


def test_a_database_that_does_not_answer_is_named_within_the_bound(
    env: Env, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite in WAL mode never makes a reader wait for a lock; PostgreSQL's table locks do")
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_SECONDS", 0.5)
    holder = sa.create_engine(normalize_url(env.settings.effective_database_url), poolclass=sa.pool.NullPool)
    try:
        with holder.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            message = not_ready(env)
            assert time.monotonic() - started < 5
            assert message == "not ready: database: no answer within 0.5 s (locked or overloaded?)"
    finally:
        holder.dispose()
    assert ok(env.client.get("/readyz", token=""))["status"] == "ready"


def test_migrations_behind_the_code_are_named(env: Env) -> None:
    head = migrate.head_revision(env.db)
    migrate.downgrade(env.db, "-1")
    current = migrate.current_revision(env.db)
    message = not_ready(env)
    assert message == (
        f"not ready: migrations: the database is at revision {current}, this code needs {head}: "
        "run `packyard db upgrade`"
    )
    migrate.upgrade(env.db)
    assert ok(env.client.get("/readyz", token=""))["status"] == "ready"


class Lifespan:
    """The app's ASGI lifespan, driven on the test client's loop as uvicorn drives it."""

    def __init__(self, env: Env) -> None:
        self.loop = env.client.loop
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: Any) -> None:
            await self.outbox.put(dict(message))

        self.task = self.loop.create_task(env.app({"type": "lifespan"}, self.inbox.get, send))

    def say(self, kind: str) -> str:
        self.loop.run_until_complete(self.inbox.put({"type": f"lifespan.{kind}"}))
        return str(self.loop.run_until_complete(self.outbox.get())["type"])


@pytest.fixture
def started(env: Env) -> Iterator[Lifespan]:
    # uvicorn's own SIGTERM handler, as the app finds it when it starts under `packyard serve`
    told: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: told.append(signum))
    lifespan = Lifespan(env)
    try:
        assert lifespan.say("startup") == "lifespan.startup.complete"
        yield lifespan
        assert lifespan.say("shutdown") == "lifespan.shutdown.complete"
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_stopped_job_loop_is_named(env: Env, started: Lifespan) -> None:
    assert ok(env.client.get("/readyz", token=""))["checks"]["jobs"] == "ok"
    jobs = env.app.services.health.jobs
    assert jobs is not None
    jobs.cancel()
    env.client.loop.run_until_complete(asyncio.wait([jobs]))
    assert not_ready(env) == "not ready: jobs: the background job loop has stopped (cancelled); restart the server"


def test_a_stuck_pass_is_named(env: Env, started: Lifespan) -> None:
    health = env.app.services.health
    now = time.monotonic()
    health.pass_started = now - readiness.STUCK_SECONDS + 1
    assert health.jobs_problem(now) is None
    health.pass_started = now - readiness.STUCK_SECONDS - 10
    problem = health.jobs_problem(now)
    assert problem is not None
    assert problem.startswith("a pass of the background jobs has been running for 310 s")


def test_sigterm_makes_the_server_not_ready_while_it_drains(env: Env, started: Lifespan) -> None:
    assert ok(env.client.get("/readyz", token=""))["checks"]["shutdown"] == "ok"
    os.kill(os.getpid(), signal.SIGTERM)  # delivered to the handler the app wrapped, then to uvicorn's
    assert not_ready(env) == "not ready: shutdown: the server is shutting down"
