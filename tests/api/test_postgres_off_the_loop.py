"""On PostgreSQL a unit of work runs on a worker thread, so a request stuck on the database doesn't stall
the process's other requests (before, every unit ran on the event loop and one blocked statement held
every request of that worker behind it)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa

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
        # Meanwhile reads are answered: they run on other threads, not behind the stuck one.
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
