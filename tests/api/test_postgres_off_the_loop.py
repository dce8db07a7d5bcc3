"""On PostgreSQL a request's unit of work runs in a greenlet over asyncpg (storage/green.py), so a request
stuck on the database doesn't stall the process's other requests (before issue 16, every unit ran on the
event loop in line and one blocked statement held every request of that worker behind it). Units run
through `Database.run` (the CLI, jobs) do so on threads, over psycopg."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from packyard.storage.raw import Conn, Raw
from tests.conftest import Backend, Env
from tests.support.client import ok
from tests.support.packer import upsert_bucket


def test_a_write_waiting_on_a_lock_does_not_stall_reads(env: Env, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite's units run on the event loop by design: it answers in microseconds")
    c = env.client
    upsert_bucket(c, "app")
    project_id = env.init.project_id
    # Another session holds the project row: a write's last statement (marking the project changed)
    # waits for it.
    other = sa.create_engine(env.settings.effective_database_url, poolclass=sa.pool.NullPool)
    blocker = other.connect()
    blocker.begin()
    blocker.exec_driver_sql("SELECT id FROM project WHERE id = %s FOR UPDATE", (project_id,))
    # Bounded even where the write blocks the event loop itself (as it did before): a timer thread lets the
    # lock go after a few seconds, and the assertions below then fail instead of the test hanging.
    safety = threading.Timer(5.0, blocker.rollback)
    safety.start()

    async def scenario() -> tuple[int, list[int]]:
        write = asyncio.ensure_future(c.arequest("PATCH", c.p("/images/app"), json={"description": "waited"}))
        await asyncio.sleep(0.3)  # the write reaches its lock wait (bounded below either way)
        assert not write.done(), "the write should be waiting for the other session's lock"
        # Meanwhile reads are answered: they run in greenlets of their own, not behind the stuck one.
        reads = await asyncio.wait_for(
            asyncio.gather(*[c.arequest("GET", c.p("/images/app"), params={"n": str(n)}) for n in range(5)]),
            timeout=10,
        )
        assert not write.done(), "the write was still waiting while the reads were answered"
        safety.cancel()
        blocker.rollback()  # let the write go
        written = await asyncio.wait_for(write, timeout=10)
        return written.status_code, [r.status_code for r in reads]

    try:
        status, reads = c.loop.run_until_complete(scenario())
    finally:
        safety.cancel()
        safety.join()
        blocker.close()
        other.dispose()
    assert status == 200
    assert reads == [200] * 5
    assert ok(c.get(c.p("/images/app")))["bucket"]["description"] == "waited"


def test_a_deadlock_between_two_units_is_retried(env: Env, backend: Backend) -> None:
    """Two units of one process lock two rows in opposite orders, on the driver itself as storage/raw.py
    does: PostgreSQL kills one of them (deadlock detected, raised by psycopg unwrapped), and run() runs it
    again instead of answering 500."""
    if backend.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its writers never deadlock")
    env.db.run(lambda conn: conn.exec_driver_sql("CREATE TABLE deadlock_probe (id int PRIMARY KEY, n int)"), write=True)
    env.db.run(lambda conn: conn.exec_driver_sql("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"), write=True)
    holding = {1: threading.Event(), 2: threading.Event()}
    runs: list[int] = []

    def unit(first: int, second: int) -> Callable[[Connection], None]:
        def work(conn: Connection) -> None:
            retry = first in runs
            runs.append(first)
            driver: Any = conn.connection.driver_connection
            driver.execute("UPDATE deadlock_probe SET n = n + 1 WHERE id = %s", (first,))
            if not retry:  # the first time, both hold their first row before either asks for its second
                holding[first].set()
                holding[second].wait(timeout=10)
            driver.execute("UPDATE deadlock_probe SET n = n + 1 WHERE id = %s", (second,))

        return work

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(env.db.run, unit(1, 2), write=True), pool.submit(env.db.run, unit(2, 1), write=True)]
        for future in futures:
            future.result(timeout=60)
    rows = env.db.run(
        lambda conn: conn.exec_driver_sql("SELECT id, n FROM deadlock_probe ORDER BY id").all(), write=False
    )
    assert [tuple(r) for r in rows] == [(1, 2), (2, 2)]
    assert len(runs) == 3, runs  # one of the two was killed by the deadlock and ran again


def test_two_request_path_units_that_deadlock_are_retried(env: Env, backend: Backend) -> None:
    """The same on the request path (storage/green.py): two units in greenlets on one event loop, over
    asyncpg, lock two rows in opposite orders; PostgreSQL kills one, which runs again."""
    if backend.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its writers never deadlock")
    env.db.run(lambda conn: conn.exec_driver_sql("CREATE TABLE deadlock_green (id int PRIMARY KEY, n int)"), write=True)
    env.db.run(lambda conn: conn.exec_driver_sql("INSERT INTO deadlock_green VALUES (1, 0), (2, 0)"), write=True)
    runs: list[int] = []

    async def scenario() -> None:
        holding = {1: asyncio.Event(), 2: asyncio.Event()}

        def unit(first: int, second: int) -> Callable[[Conn], None]:
            def work(conn: Conn) -> None:
                retry = first in runs
                runs.append(first)
                raw = Raw(conn)
                raw.execute("UPDATE deadlock_green SET n = n + 1 WHERE id = ?", (first,))
                if not retry:  # both hold their first row before either asks for its second
                    holding[first].set()
                    await_only(asyncio.wait_for(holding[second].wait(), timeout=10))
                raw.execute("UPDATE deadlock_green SET n = n + 1 WHERE id = ?", (second,))

            return work

        await asyncio.wait_for(
            asyncio.gather(env.db.write_alone(unit(1, 2)), env.db.write_alone(unit(2, 1))), timeout=60
        )

    env.client.loop.run_until_complete(scenario())
    rows = env.db.run(
        lambda conn: conn.exec_driver_sql("SELECT id, n FROM deadlock_green ORDER BY id").all(), write=False
    )
    assert [tuple(r) for r in rows] == [(1, 2), (2, 2)]
    assert len(runs) == 3, runs


def test_a_request_after_the_server_dropped_its_connection_is_answered(env: Env, backend: Backend) -> None:
    """PostgreSQL ends the request path's connections (a restart, an administrator's
    pg_terminate_backend): the next requests are answered on fresh ones, not with 500."""
    if backend.name != "postgresql":
        pytest.skip("SQLite opens a file: there is no connection to lose")
    c = env.client
    upsert_bucket(c, "kept")
    assert ok(c.get(c.p("/images/kept")))["bucket"]["slug"] == "kept"
    own = env.db.run(lambda conn: conn.exec_driver_sql("SELECT current_database()").scalar_one(), write=False)
    ended = env.db.run(
        lambda conn: conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (own,),
        ).scalar_one(),
        write=False,
    )
    assert ended >= 1
    assert ok(c.get(c.p("/images/kept")))["bucket"]["slug"] == "kept"
    upsert_bucket(c, "after")
    assert ok(c.get(c.p("/images/after")))["bucket"]["slug"] == "after"
