"""SQL text on the driver connection itself, inside the same transaction as the rest of the request: the
one idiom every repository writes its statements in (storage/repositories/__init__.py says why).

SQLAlchemy Core builds and compiles a statement for every call, which costs more than SQLite takes to
answer it; here a statement is a string with `?` placeholders (made `%s` for psycopg, `$1`... for
asyncpg), run on the driver's connection, its rows namedtuples with attribute access.

Three drivers run a unit's statements: sqlite3, psycopg (PostgreSQL outside the request path: the CLI,
jobs, tests) and asyncpg (PostgreSQL's request path, storage/green.py), whose coroutines a unit's
synchronous code awaits through the greenlet it runs in. UPDATE and INSERT texts are made from a table's
column names (packyard's own, never input), UPDATEs once per shape.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

_ROW_TYPES: dict[str, Any] = {}
_UPDATES: dict[tuple[object, ...], str] = {}  # an UPDATE's text by its table, columns and key (a few dozen)


def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("RawRow", names)  # field names come from the cursor at run time


# Columns stored as JSON: text on SQLite, json on PostgreSQL (which wants an explicit cast from text).
JSON_COLUMNS = frozenset({"labels", "platforms", "metadata"})


class GreenConnection:
    """What a unit of work is handed on PostgreSQL's request path in place of SQLAlchemy's Connection: an
    asyncpg connection, driven from the greenlet the unit runs in (storage/green.py). Raw is the only
    thing a unit does with it."""

    __slots__ = ("driver",)

    def __init__(self, driver: asyncpg.Connection) -> None:
        self.driver = driver

    def statement(self, sql: str) -> None:
        """One statement without parameters (BEGIN, SAVEPOINT ...), or several separated by `;`."""
        await_only(self.driver.execute(sql))

    def in_transaction(self) -> bool:
        return bool(self.driver.is_in_transaction())


# What a unit of work runs on: SQLAlchemy's connection (sqlite3 or psycopg underneath), or asyncpg's.
Conn: TypeAlias = Connection | GreenConnection

_DOLLARS: dict[str, str] = {}  # a statement's text with asyncpg's placeholders, by its `?` text


def _dollars(sql: str) -> str:
    found = _DOLLARS.get(sql)
    if found is None:
        parts = sql.split("?")
        found = _DOLLARS[sql] = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
    return found


def _rowcount(status: str) -> int:
    """asyncpg's command status ("UPDATE 3", "INSERT 0 1") as a row count."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


def in_list(count: int) -> str:
    return ", ".join("?" * count) if count else "NULL"


class Raw:
    __slots__ = ("_driver", "green", "pg")

    def __init__(self, conn: Conn) -> None:
        if isinstance(conn, GreenConnection):
            self.pg = self.green = True
            self._driver: Any = conn.driver
            return
        self.pg = conn.dialect.name == "postgresql"
        self.green = False
        self._driver = conn.connection.driver_connection

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        if self.green:
            return self._green_rows(_dollars(sql), params)
        if self.pg:
            sql = sql.replace("?", "%s")
        cursor = self._driver.execute(sql, tuple(params))
        # One statement's text always names the same columns (the schema is migrated before serving).
        row_type: Any = _ROW_TYPES.get(sql)
        if row_type is None:
            row_type = _ROW_TYPES[sql] = _row_type(tuple(d[0] for d in cursor.description))
        make = row_type._make
        return [make(r) for r in cursor.fetchall()]

    def _green_rows(self, sql: str, params: Sequence[object]) -> list[Any]:
        records = await_only(self._driver.fetch(sql, *params))
        if not records:
            return []
        row_type: Any = _ROW_TYPES.get(sql)
        if row_type is None:
            row_type = _ROW_TYPES[sql] = _row_type(tuple(records[0].keys()))
        make = row_type._make
        return [make(r) for r in records]  # a Record iterates over its values

    def first(self, sql: str, params: Sequence[object] = ()) -> Any | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def for_update(self, alias: str) -> str:
        """Row lock on PostgreSQL; SQLite writers already hold the database's write lock (BEGIN IMMEDIATE)."""
        return f" FOR UPDATE OF {alias}" if self.pg else ""

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        if self.green:
            return _rowcount(await_only(self._driver.execute(_dollars(sql), *params)))
        if self.pg:
            sql = sql.replace("?", "%s")
        return int(self._driver.execute(sql, tuple(params)).rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        if self.green:
            await_only(self._driver.executemany(_dollars(sql), rows))
        elif self.pg:
            with self._driver.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)
        else:
            self._driver.executemany(sql, rows)

    def _placeholder(self, column: str) -> str:
        return "CAST(? AS json)" if self.pg and column in JSON_COLUMNS else "?"

    @staticmethod
    def _value(column: str, value: object) -> object:
        return _json_text(value) if column in JSON_COLUMNS else value

    def update(self, table: str, values: Mapping[str, object], key: str, key_value: object) -> int:
        shape = (table, tuple(values), key, self.pg)
        sql = _UPDATES.get(shape)
        if sql is None:
            assignments = ", ".join(f"{c} = {self._placeholder(c)}" for c in values)
            sql = _UPDATES[shape] = f"UPDATE {table} SET {assignments} WHERE {key} = ?"
        params = [self._value(c, v) for c, v in values.items()]
        return self.execute(sql, [*params, key_value])

    def _insert_sql(self, table: str, values: Mapping[str, object]) -> tuple[str, list[object]]:
        columns = ", ".join(values)
        marks = ", ".join(self._placeholder(c) for c in values)
        return f"INSERT INTO {table} ({columns}) VALUES ({marks})", [self._value(c, v) for c, v in values.items()]

    def insert(self, table: str, values: Mapping[str, object]) -> None:
        self.execute(*self._insert_sql(table, values))

    def insert_unique(self, table: str, values: Mapping[str, object]) -> bool:
        """Insert unless it breaks a unique constraint (False then); the transaction stays usable."""
        sql, params = self._insert_sql(table, values)
        return self.execute(sql + " ON CONFLICT DO NOTHING", params) == 1


def _json_text(value: object) -> str:
    return _encode_json(value).decode()


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


def as_json(value: object) -> Any:
    """SQLite hands JSON columns back as text, PostgreSQL as parsed values."""
    return _decode_json(value) if isinstance(value, str) else value
