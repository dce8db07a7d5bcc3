"""Engines and transactions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from packyard.files import private_sqlite_file
from packyard.storage.green import GreenPostgres, bump_and_commit
from packyard.storage.groups import DATABASE_ERRORS, Outcome, UnitChangedRows, is_transient, run_group, then
from packyard.storage.raw import Conn, GreenConnection
from packyard.storage.urls import is_sqlite, normalize_url, sqlite_file
from packyard.storage.writer_lock import WriterLock

if TYPE_CHECKING:
    from packyard.storage.writes import WriteQueue

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
# PostgreSQL: the request path's units of work share this many asyncpg connections per process and event
# loop (storage/green.py); what runs on threads (off_loop: background jobs) has this many.
POSTGRES_CONNECTIONS = 10
POSTGRES_THREADS = 4

# How long one SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a new PostgreSQL connection may take (libpq's connect_timeout, in seconds).
CONNECT_TIMEOUT_S = 10
# Transient conflicts (SQLite busy, PostgreSQL deadlock or serialization failure) are retried this often.
MAX_ATTEMPTS = 5


class DatabaseUnavailable(Exception):
    """peek() could not get an answer from the database."""


def create_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=8,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # packyard issues BEGIN itself (see _sqlite_begin)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # A writer takes the write lock up front, so it waits (busy_timeout) instead of failing
            # half-way with "database is locked" when it upgrades from a read.
            driver: Any = conn.connection.driver_connection
            if driver.in_transaction:
                return  # begun on the driver already (Database._driver_transaction)
            write = conn.get_execution_options().get("packyard_write", True)
            # Straight to the driver: SQLAlchemy's execution path costs more than the statement here.
            driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # No pre-ping (a round trip on every request): a connection found dead is invalidated by SQLAlchemy
    # and the transaction is re-run on a fresh one (is_transient).
    # READ COMMITTED whatever the server's default: reads run without a transaction (_autocommit_read),
    # which gives the same answers only at this level.
    # A server that drops packets fails a connection after this long, not after the kernel's TCP timeout
    # (minutes); a connect_timeout in the URL's query wins.
    connect_args = {} if "connect_timeout" in sa.make_url(url).query else {"connect_timeout": CONNECT_TIMEOUT_S}
    return sa.create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )


def bump_stamps(conn: Conn, project_ids: Sequence[str]) -> None:
    """Mark the projects' data changed: the read cache's freshness check (pipeline/cache.py) compares
    these stamps. Storage does it once per write transaction, last; units of work and their callers
    never do. On PostgreSQL this also commits: the UPDATEs and the COMMIT go to the server together, one
    round trip (psycopg's pipeline mode; on the request path one asyncpg message, storage/green.py), so
    the project rows stay locked only while committing."""
    if isinstance(conn, GreenConnection):
        bump_and_commit(conn, project_ids)
        return
    sql = "UPDATE project SET change_stamp = change_stamp + 1 WHERE id = ?"
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        for project_id in project_ids:
            driver.execute(sql, (project_id,))
        return
    sql = sql.replace("?", "%s")
    with driver.pipeline():
        for project_id in project_ids:
            driver.execute(sql, (project_id,))
        driver.commit()  # the transaction object around (Database._transaction) then finds nothing to end


class Database:
    """The database as packyard sees it. The request pipeline uses the async face, `await read(unit)` and
    `await write(unit, project_id)`, which decides where a unit runs: in line on SQLite (it answers in
    microseconds, and a thread hop costs more than the query), its writes grouped to share a commit
    (storage/writes.py); on PostgreSQL in a greenlet over asyncpg (storage/green.py), so that one slow
    statement doesn't stall the other requests of the process. `run()` is the synchronous core (SQLite's
    requests, and the CLI, jobs and tests on both databases: psycopg on PostgreSQL)."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = engine or create_engine(self.url)
        self.is_sqlite = is_sqlite(self.url)
        self._peek: Any = None  # the connection peek() uses, taken out of the pool for good
        self._kept: Connection | None = None  # see _kept_connection
        self._kept_thread: int | None = None
        self._local = threading.local()  # PostgreSQL: each thread's kept connection
        self._all_kept: list[Connection] = []
        self._all_kept_lock = threading.Lock()
        self._writer = WriterLock.for_url(self.url) if self.is_sqlite else None
        self._queue: WriteQueue | None = None
        self._threads: ThreadPoolExecutor | None = None
        self.green = None
        if not self.is_sqlite:  # the request path's PostgreSQL (storage/green.py)
            self.green = GreenPostgres(self.url, size=POSTGRES_CONNECTIONS, connect_timeout=CONNECT_TIMEOUT_S)
        self._timed: Callable[[str, int], None] | None = None
        database_file = sqlite_file(self.url)
        if database_file is not None:
            # Before SQLite first opens it: SQLite would create the file with the umask's mode (0644 as a
            # rule), and it gives its -wal and -shm files the mode of the database file.
            private_sqlite_file(database_file)

    @property
    def timed(self) -> Callable[[str, int], None] | None:
        """Told each transaction's kind ("read", "write"; "statement" for peek) and its nanoseconds, writer
        lock wait included, when set (the metrics, packyard/ops/metrics.py); called from any thread."""
        return self._timed

    @timed.setter
    def timed(self, timed: Callable[[str, int], None] | None) -> None:
        self._timed = timed
        if self.green is not None:
            self.green.timed = timed

    # ---- the async face (the request pipeline)

    async def read(self, work: Callable[[Conn], T]) -> T:
        """work's answer, from a read-only transaction."""
        if self.green is None:
            return self.run(work, write=False)
        return await self.green.run(work, write=False)

    async def write(self, work: Callable[[Conn], T], project_id: str) -> T:
        """work's answer, committed; work changes project_id's data, whose change stamp storage bumps
        once per commit. work is a unit of the group of writes that reached the event loop in the same
        turn, which share one transaction and its commit (storage/writes.py): on SQLite in line, under
        the writer lock; on PostgreSQL in a greenlet, side by side with the other groups."""
        result: T = await self.writes.run(work, project_id)
        return result

    async def write_alone(self, work: Callable[[Conn], T]) -> T:
        """work's answer, committed in a transaction of its own, outside the groups and with no change
        stamp bumped (sign-ins, token failures: nothing the read cache holds)."""
        if self.green is None:
            return self.run(work, write=True)
        return await self.green.run(work, write=True)

    async def aclose(self) -> None:
        """Close what the running event loop holds (the server's lifespan shutdown)."""
        if self.green is not None:
            await self.green.aclose()

    @property
    def writes(self) -> WriteQueue:
        """The group commit of this database's writes."""
        if self._queue is None:
            from packyard.storage.writes import WriteQueue  # noqa: PLC0415 - it builds on this module

            self._queue = WriteQueue(self)
        return self._queue

    def run_write(self, work: Callable[[Connection], T], project_id: str) -> T:
        """Synchronously: work in a write transaction of its own, project_id's change stamp bumped last."""
        return self.run(then(work, functools.partial(bump_stamps, project_ids=[project_id])), write=True)

    async def off_loop(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """fn(*args, **kwargs) on one of the database's worker threads on PostgreSQL; in line on SQLite."""
        if self.is_sqlite:
            return fn(*args, **kwargs)
        return await asyncio.wrap_future(self.threads.submit(fn, *args, **kwargs))

    @property
    def threads(self) -> ThreadPoolExecutor:
        """PostgreSQL's worker threads."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(POSTGRES_THREADS, thread_name_prefix="packyard-db")
        return self._threads

    # ---- SQLite's writer lock

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held around every write transaction on SQLite (see WriterLock); nothing on PostgreSQL."""
        return self._writer.held() if self._writer is not None else contextlib.nullcontext()

    def start_writing(self, *, wait: bool) -> bool:
        """Take the writer lock, waiting for it or only if it is free (always True on PostgreSQL);
        end_writing() gives it back."""
        return self._writer.acquire(wait=wait) if self._writer is not None else True

    def claim_writer(self) -> None:
        """Block until the writer lock is free and take it for this process, so that the next
        start_writing(wait=False) here succeeds (for a helper thread of the event loop; nothing on
        PostgreSQL). See WriterLock.claim."""
        if self._writer is not None:
            self._writer.claim()

    def end_writing(self) -> None:
        if self._writer is not None:
            self._writer.release()

    def peek(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        """The first row of one read statement, outside any transaction, on a connection of its own.

        For checks that must cost one round trip and no transaction bookkeeping (the read cache's
        validation). Raises DatabaseUnavailable when the database can't answer; the caller then takes
        the ordinary path, which retries and reports errors as usual."""
        timed = self.timed
        if timed is None:
            return self._peek_row(sql, params)
        start = perf_counter_ns()
        try:
            return self._peek_row(sql, params)
        finally:
            timed("statement", perf_counter_ns() - start)

    def _peek_row(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        try:
            if self._peek is None:
                proxied = self.engine.raw_connection()
                driver: Any = proxied.driver_connection
                proxied.detach()  # closed for real on dispose(), never handed back to the pool
                if not self.is_sqlite:
                    driver.autocommit = True
                self._peek = (proxied, driver)
            driver = self._peek[1]
            if not self.is_sqlite:
                sql = sql.replace("?", "%s")
            # fetchall: a statement left unfinished would keep SQLite's read snapshot open.
            rows = driver.execute(sql, params).fetchall()
        except Exception as exc:  # a broken or busy connection: drop it, let the caller go the long way
            log.warning("a single-statement read failed, taking the ordinary path: %s", exc)
            self._close_peek()
            raise DatabaseUnavailable(str(exc)) from exc
        return tuple(rows[0]) if rows else None

    def _close_peek(self) -> None:
        proxied, self._peek = self._peek, None
        if proxied is not None:
            try:
                proxied[0].close()
            except Exception:  # already broken; nothing more to release
                log.debug("closing the peek connection failed", exc_info=True)

    def _kept_connection(self) -> Connection | None:
        """A connection kept for the calling thread, so that a transaction pays no pool checkout and
        return (on PostgreSQL the return is a ROLLBACK round trip). On SQLite only the thread that ran
        the first transaction here keeps one (the server's event loop, where every unit runs); on
        PostgreSQL each thread does (the event loop and the database's worker threads). None for a
        transaction begun inside another one."""
        if not self.is_sqlite:
            return self._thread_connection()
        ident = threading.get_ident()
        if self._kept_thread is None:
            self._kept_thread = ident
        elif ident != self._kept_thread:
            return None
        conn = self._kept
        if conn is not None and (conn.closed or conn.invalidated):
            conn.close()
            conn = None
        if conn is None:
            conn = self._kept = self.engine.connect()
        if conn.in_transaction() or (self.is_sqlite and conn.connection.driver_connection.in_transaction):  # type: ignore[union-attr]
            return None  # a transaction begun inside another one gets a connection of its own
        return conn

    def _thread_connection(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.invalidated):
            conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self.engine.connect()
            with self._all_kept_lock:
                self._all_kept.append(conn)
        return None if conn.in_transaction() else conn

    @contextmanager
    def connect(self, *, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(packyard_write=write)
            with conn.begin():
                yield conn

    def run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        """Run work in one transaction, committed at the end; retried on transient conflicts."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._transaction(work, write=write)
            except (DBAPIError, sqlite3.OperationalError, psycopg.Error) as exc:
                if attempt == MAX_ATTEMPTS or not is_transient(exc):
                    raise
                log.warning(
                    "transient database conflict, retrying (attempt %d): %s", attempt, getattr(exc, "orig", exc)
                )
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def run_many(
        self, works: Sequence[Callable[[Connection], Any]], finish: Callable[[Connection], None] | None = None
    ) -> list[Outcome]:
        """Run write units of work in order, with one commit for all of them (group commit).

        Each unit runs in a savepoint of its own inside one transaction: a unit that raises is rolled
        back to its savepoint and the others go on, exactly as if each had had its own transaction,
        one after the other. What they save is a commit each, which on SQLite is most of a small
        write. Should the database itself fail (a unit's statement, or the commit), the whole group is
        undone and every unit is run again in a transaction of its own, with run()'s retries.

        finish, when given, runs once at the end of each transaction that a unit succeeded in (what
        every unit would otherwise do last, such as marking the data changed)."""
        if len(works) > 1:
            try:
                return self._run_group(works, finish)
            except DATABASE_ERRORS as exc:
                log.warning("a group of %d writes failed as a whole, running each alone: %s", len(works), exc)
        return [self._run_alone(work, finish) for work in works]

    def _run_alone(self, work: Callable[[Connection], Any], finish: Callable[[Connection], None] | None) -> Outcome:
        try:
            return Outcome(self.run(then(work, finish), write=True), None)
        except Exception as exc:  # the unit's own answer (a refusal, or a failure run() gave up on)
            return Outcome(None, exc)

    def _run_group(
        self, works: Sequence[Callable[[Connection], Any]], finish: Callable[[Connection], None] | None
    ) -> list[Outcome]:
        # Without a savepoint per unit while no refused unit has changed a row (storage/groups.py); a
        # refusal that may have undoes the whole transaction, which then runs again with savepoints.
        # (Most refusals come from a write's precheck, before its unit joins a group.)
        try:
            return self._transaction(lambda conn: run_group(conn, works, finish, savepoints=False), write=True)
        except UnitChangedRows:
            log.debug("a refused write may have changed rows; running its group again with savepoints")
        return self._transaction(lambda conn: run_group(conn, works, finish, savepoints=True), write=True)

    def _transaction(self, work: Callable[[Connection], T], *, write: bool) -> T:
        """work in one transaction, on the kept connection when it is free, under the writer lock when
        it writes; committed at the end, rolled back if work raises."""
        timed = self.timed
        if timed is None:
            return self._transaction_untimed(work, write=write)
        start = perf_counter_ns()
        try:
            return self._transaction_untimed(work, write=write)
        finally:
            timed("write" if write else "read", perf_counter_ns() - start)

    def _transaction_untimed(self, work: Callable[[Connection], T], *, write: bool) -> T:
        with self.writing() if write else contextlib.nullcontext():
            kept = self._kept_connection()
            if kept is not None:
                if self.is_sqlite:
                    return self._driver_transaction(kept, work, write=write)
                if not write:
                    return self._autocommit_read(kept, work)
                kept.execution_options(packyard_write=write)
                with kept.begin():
                    return work(kept)
            with self.connect(write=write) as conn:
                return work(conn)

    @staticmethod
    def _autocommit_read(conn: Connection, work: Callable[[Connection], T]) -> T:
        """A PostgreSQL read without BEGIN and COMMIT, two round trips of a request's few: packyard reads
        at READ COMMITTED, where each statement sees the data as of its own start, in a transaction or
        not, so the answers are the same."""
        driver: Any = conn.connection.driver_connection
        driver.autocommit = True
        try:
            return work(conn)
        finally:
            if conn.in_transaction():  # a Core statement inside work began SQLAlchemy's (empty) transaction
                conn.rollback()
            driver.autocommit = False

    @staticmethod
    def _driver_transaction(conn: Connection, work: Callable[[Connection], T], *, write: bool) -> T:
        """A transaction begun and ended on SQLite's driver itself: SQLAlchemy's transaction objects and
        events cost more than a small request's statements. A Core statement inside work still runs:
        SQLAlchemy then opens its own transaction object over the one already open (the begin listener
        sees it open and issues nothing), and that object ends it here."""
        driver: Any = conn.connection.driver_connection
        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            value = work(conn)
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            if driver.in_transaction:
                driver.rollback()
            raise
        if conn.in_transaction():
            conn.commit()
        else:
            driver.commit()
        return value

    def dispose(self) -> None:
        if self.green is not None:
            self.green.terminate()
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True)
        self._close_peek()
        kept, self._kept, self._kept_thread = self._kept, None, None
        if kept is not None:
            kept.close()
        with self._all_kept_lock:
            others, self._all_kept = self._all_kept, []
        for conn in others:
            conn.close()
        self._local = threading.local()
        self.engine.dispose()
