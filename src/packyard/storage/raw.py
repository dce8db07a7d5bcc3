"""SQL text on the driver connection itself, inside the same transaction as the rest of the request: the
one idiom every repository writes its statements in (storage/repositories/__init__.py says why).

SQLAlchemy Core builds and compiles a statement for every call, which costs more than SQLite takes to
answer it; here a statement is a string with `?` placeholders (made `%s` for psycopg), run on the DBAPI
connection, its rows namedtuples with attribute access. UPDATE and INSERT texts are made from a table's
column names (packyard's own, never input), UPDATEs once per shape.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

_ROW_TYPES: dict[str, Any] = {}
_UPDATES: dict[tuple[object, ...], str] = {}  # an UPDATE's text by its table, columns and key (a few dozen)


def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("RawRow", names)  # field names come from the cursor at run time


# Columns stored as JSON: text on SQLite, json on PostgreSQL (which wants an explicit cast from text).
JSON_COLUMNS = frozenset({"labels", "platforms", "metadata"})


def in_list(count: int) -> str:
    return ", ".join("?" * count) if count else "NULL"


class Raw:
    __slots__ = ("_driver", "pg")

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self._driver: Any = conn.connection.driver_connection

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        if self.pg:
            sql = sql.replace("?", "%s")
        cursor = self._driver.execute(sql, tuple(params))
        # One statement's text always names the same columns (the schema is migrated before serving).
        row_type: Any = _ROW_TYPES.get(sql)
        if row_type is None:
            row_type = _ROW_TYPES[sql] = _row_type(tuple(d[0] for d in cursor.description))
        make = row_type._make
        return [make(r) for r in cursor.fetchall()]

    def first(self, sql: str, params: Sequence[object] = ()) -> Any | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def for_update(self, alias: str) -> str:
        """Row lock on PostgreSQL; SQLite writers already hold the database's write lock (BEGIN IMMEDIATE)."""
        return f" FOR UPDATE OF {alias}" if self.pg else ""

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        if self.pg:
            sql = sql.replace("?", "%s")
        return int(self._driver.execute(sql, tuple(params)).rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        if self.pg:
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
