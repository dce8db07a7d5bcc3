"""PostgreSQL's request path: units of work on the event loop, in greenlets, over asyncpg.

A unit of work is synchronous code (the domain's steps over the repositories). On PostgreSQL each of
its statements is a round trip to the server, during which the process must serve other requests. Run
on worker threads (psycopg, one connection each), a publish cost the process five times the CPU it
costs on SQLite: every statement handed the GIL between threads, and a third of the time went to the
kernel's context switches. Here each unit runs in a greenlet of its own on the event loop; a statement
(storage/raw.py) hands its coroutine, asyncpg's, to the loop through `await_only` and the greenlet
sleeps until the answer is back, while the loop serves every other request. One thread, no GIL
hand-overs, and asyncpg's protocol in C with its statements prepared once per connection
(docs/performance.md has the figures).

A slow statement stalls only its own unit, as with threads. The CLI, the background jobs and the tests'
own transactions keep `Database.run` on psycopg (storage/db.py); both see the same rows, tables and
transactions at READ COMMITTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.util import await_only, greenlet_spawn

from packyard.ids import is_uuid
from packyard.storage.groups import DATABASE_ERRORS, Outcome, UnitChangedRows, is_transient, run_group, then
from packyard.storage.raw import GreenConnection

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 5


def connect_arguments(url: str, connect_timeout: float) -> tuple[str, dict[str, Any]]:
    """asyncpg's DSN and keywords for a SQLAlchemy PostgreSQL URL: libpq's form, which asyncpg parses
    itself (hosts, ports, sslmode, passfile, PG* variables), except connect_timeout, which asyncpg
    would take for a server setting."""
    parsed = sa.make_url(url)
    query = dict(parsed.query)
    timeout = float(str(query.pop("connect_timeout", connect_timeout)))
    dsn = parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    # READ COMMITTED whatever the server's default, as the psycopg engine (storage/db.py create_engine).
    settings = {"default_transaction_isolation": "read committed"}
    return dsn, {"timeout": timeout, "command_timeout": None, "server_settings": settings}


class _Pool:
    """Up to size asyncpg connections of one event loop. A connection comes back out of any transaction
    (the unit's ends with COMMIT or ROLLBACK), so handing it on costs no reset round trip."""

    def __init__(self, dsn: str, options: dict[str, Any], size: int) -> None:
        self._dsn = dsn
        self._options = options
        self._free: list[GreenConnection] = []
        self._slots = asyncio.Semaphore(size)
        self.all: set[GreenConnection] = set()

    async def acquire(self) -> GreenConnection:
        await self._slots.acquire()
        while self._free:
            conn = self._free.pop()
            if not conn.driver.is_closed():
                return conn
            self.all.discard(conn)  # the server ended it while it was idle
        try:
            conn = GreenConnection(await asyncpg.connect(self._dsn, **self._options))
        except BaseException:
            self._slots.release()
            raise
        self.all.add(conn)
        return conn

    def release(self, conn: GreenConnection) -> None:
        driver = conn.driver
        if driver.is_closed() or driver.is_in_transaction():  # broken, or left mid-transaction: dropped
            self.all.discard(conn)
            if not driver.is_closed():
                driver.terminate()
        else:
            self._free.append(conn)
        self._slots.release()

    async def close(self) -> None:
        self._free.clear()
        for conn in list(self.all):
            try:
                await asyncio.wait_for(conn.driver.close(), timeout=2)
            except Exception:  # already gone, or the server is not answering: drop it
                conn.driver.terminate()
        self.all.clear()

    def terminate(self) -> None:
        for conn in self.all:
            try:
                conn.driver.terminate()
            except RuntimeError:  # its event loop is closed already: nothing can be sent on it
                log.debug("a PostgreSQL connection outlived its event loop")
        self.all.clear()
        self._free.clear()


def _transaction(conn: GreenConnection, work: Callable[[GreenConnection], T], write: bool) -> T:
    """work in one transaction on conn (in its greenlet); a read in none: at READ COMMITTED each statement
    sees the data as of its own start, in a transaction or not, and BEGIN and COMMIT are round trips."""
    if not write:
        return work(conn)
    conn.statement("BEGIN")
    try:
        value = work(conn)
    except BaseException:
        if not conn.driver.is_closed() and conn.in_transaction():
            conn.statement("ROLLBACK")
        raise
    if conn.in_transaction():  # bump_and_commit may have committed already
        conn.statement("COMMIT")
    return value


def bump_and_commit(conn: GreenConnection, project_ids: Sequence[str]) -> None:
    """storage/db.py bump_stamps for asyncpg: the stamps' UPDATE and the COMMIT in one round trip. Project
    ids are UUIDs (the unit checked the project exists), written into the text; any other id goes as a
    parameter, with the COMMIT after it."""
    if all(is_uuid(p) for p in project_ids):
        ids = ", ".join(f"'{p}'" for p in project_ids)
        conn.statement(f"UPDATE project SET change_stamp = change_stamp + 1 WHERE id IN ({ids}); COMMIT")  # noqa: S608 - UUIDs
        return
    for project_id in project_ids:
        await_only(conn.driver.execute("UPDATE project SET change_stamp = change_stamp + 1 WHERE id = $1", project_id))
    conn.statement("COMMIT")


class GreenPostgres:
    """The request path's transactions on PostgreSQL: a pool per event loop (a server has one loop per
    process; tests drive apps from several), each transaction in a greenlet."""

    def __init__(self, url: str, *, size: int, connect_timeout: float) -> None:
        self._dsn, self._options = connect_arguments(url, connect_timeout)
        self._size = size
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        self.timed: Callable[[str, int], None] | None = None

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for gone in [other for other in self._pools if other.is_closed()]:
                self._pools.pop(gone).terminate()
            pool = self._pools[loop] = _Pool(self._dsn, self._options, self._size)
        return pool

    async def run(self, work: Callable[[GreenConnection], T], *, write: bool) -> T:
        """work in one transaction, committed at the end; run again on a transient conflict, or on a
        fresh connection when its connection died."""
        pool = self._pool()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            conn = await pool.acquire()
            start = time.perf_counter_ns()
            try:
                return await greenlet_spawn(_transaction, conn, work, write)
            except DATABASE_ERRORS as exc:
                # A connection the server ended (a restart, pg_terminate_backend): again on a fresh one.
                if attempt == MAX_ATTEMPTS or not (is_transient(exc) or conn.driver.is_closed()):
                    raise
                log.warning("transient database conflict, retrying (attempt %d): %s", attempt, exc)
            finally:
                pool.release(conn)
                if self.timed is not None:
                    self.timed("write" if write else "read", time.perf_counter_ns() - start)
            await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_many(
        self, works: Sequence[Callable[[GreenConnection], Any]], finish: Callable[[GreenConnection], None] | None
    ) -> list[Outcome]:
        """storage/db.py Database.run_many on this path: the units in one transaction and one commit;
        should the database fail the group, each unit alone."""
        if len(works) > 1:
            try:
                try:
                    return await self.run(lambda conn: run_group(conn, works, finish, savepoints=False), write=True)
                except UnitChangedRows:
                    log.debug("a refused write may have changed rows; running its group again with savepoints")
                return await self.run(lambda conn: run_group(conn, works, finish, savepoints=True), write=True)
            except DATABASE_ERRORS as exc:
                log.warning("a group of %d writes failed as a whole, running each alone: %s", len(works), exc)
        return [await self._alone(work, finish) for work in works]

    async def _alone(
        self, work: Callable[[GreenConnection], Any], finish: Callable[[GreenConnection], None] | None
    ) -> Outcome:
        try:
            return Outcome(await self.run(then(work, finish), write=True), None)
        except Exception as exc:  # the unit's own answer (a refusal, or a failure run() gave up on)
            return Outcome(None, exc)

    async def aclose(self) -> None:
        """Close the running loop's connections (the server's lifespan shutdown)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def terminate(self) -> None:
        """Drop every connection left, without a goodbye (Database.dispose, after the loops are done)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.terminate()
