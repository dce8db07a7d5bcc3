"""What a group of write units shares, whichever way its transaction runs (storage/db.py on a thread or
in line, storage/green.py in a greenlet): the units one after another, each refusal undone alone, and
which database errors are worth running a transaction again for."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import asyncpg
import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from packyard.storage.raw import Conn, GreenConnection

C = TypeVar("C", Connection, GreenConnection)
T = TypeVar("T")


class Outcome(NamedTuple):
    """What one unit of work of a group came to: its value, or the exception it raised."""

    value: Any
    error: Exception | None


class UnitChangedRows(Exception):
    """A unit of a group without savepoints was refused after it had changed rows (see run_group)."""


# Errors of the database itself (as opposed to a request's own refusal): a group meeting one is undone
# as a whole and its units are run again one by one.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    sqlite3.Error,
    psycopg.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
)

# Serialization failure, deadlock detected: two PostgreSQL transactions of one process can meet here,
# since units run side by side (worker threads, or greenlets on the event loop).
_RETRIED_SQLSTATES = ("40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Whether a transaction that met exc is worth running again from the start."""
    if isinstance(exc, sqlite3.OperationalError):  # raised by the driver itself (raw statements, BEGIN)
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # e.g. PostgreSQL restarted; the pool has already dropped the connection
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text:
            return True
    if isinstance(exc, asyncpg.PostgresError):
        return exc.sqlstate in _RETRIED_SQLSTATES
    if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, ConnectionError)):
        return True  # the connection died under the transaction (storage/green.py drops it)
    # Wrapped by SQLAlchemy, or raised by psycopg itself for a statement run on the driver (storage/raw.py).
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(orig, psycopg.Error) and orig.sqlstate in _RETRIED_SQLSTATES


def then(work: Callable[[C], T], finish: Callable[[C], None] | None) -> Callable[[C], T]:
    """work, then finish in the same transaction: a unit run alone, outside a group, does what its group
    would have done last (such as marking the data changed)."""
    if finish is None:
        return work

    def unit(conn: C) -> T:
        value = work(conn)
        finish(conn)
        return value

    return unit


def _statement(conn: Conn, sql: str) -> None:
    if isinstance(conn, GreenConnection):
        conn.statement(sql)
    else:
        conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def run_group(
    conn: C,
    works: Sequence[Callable[[C], Any]],
    finish: Callable[[C], None] | None,
    *,
    savepoints: bool,
) -> list[Outcome]:
    """The units of a group one after another in conn's transaction, then finish once if any succeeded.

    With savepoints, each unit runs in one of its own: a unit that raises is rolled back to it and the
    others go on, exactly as if each had had its own transaction. Without (two statements, on PostgreSQL
    two round trips, per unit saved), a refusal is fine only while it changed no row: SQLite's driver
    counts the rows changed; on PostgreSQL every refusal counts as one that did, and raises
    UnitChangedRows for the caller to undo the whole transaction and run it again with savepoints."""
    sqlite_driver: Any = None
    if not isinstance(conn, GreenConnection):
        driver = conn.connection.driver_connection
        sqlite_driver = driver if isinstance(driver, sqlite3.Connection) else None
    outcomes = []
    for work in works:
        if savepoints:
            _statement(conn, "SAVEPOINT packyard_unit")
        changes = sqlite_driver.total_changes if sqlite_driver is not None else None
        try:
            value = work(conn)
        except DATABASE_ERRORS:
            raise
        except Exception as exc:
            if savepoints:
                _statement(conn, "ROLLBACK TO SAVEPOINT packyard_unit")
                _statement(conn, "RELEASE SAVEPOINT packyard_unit")
            elif changes is None or sqlite_driver.total_changes != changes:
                raise UnitChangedRows from exc
            outcomes.append(Outcome(None, exc))
        else:
            if savepoints:
                _statement(conn, "RELEASE SAVEPOINT packyard_unit")
            outcomes.append(Outcome(value, None))
    if finish is not None and any(o.error is None for o in outcomes):
        finish(conn)
    return outcomes
