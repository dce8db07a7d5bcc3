"""Engines and transactions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long one SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Transient conflicts (SQLite busy, PostgreSQL deadlock or serialization failure) are retried this often.
MAX_ATTEMPTS = 5


class DatabaseUnavailable(Exception):
    """peek() could not get an answer from the database."""


class Outcome(NamedTuple):
    """What one unit of work of run_many came to: its value, or the exception it raised."""

    value: Any
    error: Exception | None


# Errors of the database itself (as opposed to a request's own refusal): a group meeting one is undone
# as a whole and its units are run again one by one.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, sqlite3.Error, psycopg.Error)


def normalize_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


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
            write = conn.get_execution_options().get("packyard_write", True)
            # Straight to the driver: SQLAlchemy's execution path costs more than the statement here.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]

        return engine
    # No pre-ping (a round trip on every request): a connection found dead is invalidated by SQLAlchemy
    # and the transaction is re-run on a fresh one (is_transient).
    return sa.create_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_recycle=1800)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # e.g. PostgreSQL restarted; the pool has already dropped the connection
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text:
            return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None)
        if code in ("40001", "40P01"):  # serialization failure, deadlock detected
            return True
    return False


class Database:
    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = engine or create_engine(self.url)
        self.is_sqlite = is_sqlite(self.url)
        self._peek: Any = None  # the connection peek() uses, taken out of the pool for good
        self._kept: Connection | None = None  # see _kept_connection
        self._kept_thread: int | None = None

    def peek(self, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
        """The first row of one read statement, outside any transaction, on a connection of its own.

        For checks that must cost one round trip and no transaction bookkeeping (the read cache's
        validation). Raises DatabaseUnavailable when the database can't answer; the caller then takes
        the ordinary path, which retries and reports errors as usual."""
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
        """The connection kept for the thread that ran the first transaction here (the server's event
        loop, where every request runs one after another), so that a request pays no pool checkout and
        return; None for any other thread, and for a transaction begun inside another one."""
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
                kept = self._kept_connection()
                if kept is not None:
                    kept.execution_options(packyard_write=write)
                    with kept.begin():
                        return work(kept)
                with self.connect(write=write) as conn:
                    return work(conn)
            except DBAPIError as exc:
                if attempt == MAX_ATTEMPTS or not is_transient(exc):
                    raise
                log.warning("transient database conflict, retrying (attempt %d): %s", attempt, exc.orig)
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def run_many(self, works: Sequence[Callable[[Connection], Any]]) -> list[Outcome]:
        """Run write units of work in order, with one commit for all of them (group commit).

        Each unit runs in a savepoint of its own inside one transaction: a unit that raises is rolled
        back to its savepoint and the others go on, exactly as if each had had its own transaction,
        one after the other. What they save is a commit each, which on SQLite is most of a small
        write. Should the database itself fail (a unit's statement, or the commit), the whole group is
        undone and every unit is run again in a transaction of its own, with run()'s retries."""
        if len(works) > 1:
            try:
                return self._run_group(works)
            except DATABASE_ERRORS as exc:
                log.warning("a group of %d writes failed as a whole, running each alone: %s", len(works), exc)
        return [self._run_alone(work) for work in works]

    def _run_alone(self, work: Callable[[Connection], Any]) -> Outcome:
        try:
            return Outcome(self.run(work, write=True), None)
        except Exception as exc:  # the unit's own answer (a refusal, or a failure run() gave up on)
            return Outcome(None, exc)

    def _run_group(self, works: Sequence[Callable[[Connection], Any]]) -> list[Outcome]:
        def group(conn: Connection) -> list[Outcome]:
            driver: Any = conn.connection.driver_connection
            outcomes = []
            for work in works:
                driver.execute("SAVEPOINT packyard_unit")
                try:
                    value = work(conn)
                except DATABASE_ERRORS:
                    raise
                except Exception as exc:
                    driver.execute("ROLLBACK TO SAVEPOINT packyard_unit")
                    driver.execute("RELEASE SAVEPOINT packyard_unit")
                    outcomes.append(Outcome(None, exc))
                else:
                    driver.execute("RELEASE SAVEPOINT packyard_unit")
                    outcomes.append(Outcome(value, None))
            return outcomes

        kept = self._kept_connection()
        if kept is not None:
            kept.execution_options(packyard_write=True)
            with kept.begin():
                return group(kept)
        with self.connect(write=True) as conn:
            return group(conn)

    def dispose(self) -> None:
        self._close_peek()
        kept, self._kept, self._kept_thread = self._kept, None, None
        if kept is not None:
            kept.close()
        self.engine.dispose()
