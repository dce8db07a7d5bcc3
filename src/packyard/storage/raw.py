"""Hot reads on the driver connection itself, inside the same transaction as the rest of the request.

SQLAlchemy Core builds and compiles a statement for every call, which costs more than SQLite takes to
answer it. The few queries that every `packer build` and `terraform plan` makes (the principal, the
project's registry, the bucket, the channel, the iteration and its builds) are written here once as SQL
text and run on the DBAPI connection. Rows keep attribute access, so the repositories map them the same
way as Core rows.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

_ROW_TYPES: dict[str, Any] = {}


def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("RawRow", names)  # field names come from the cursor at run time


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
        names = tuple(d[0] for d in cursor.description)
        row_type: Any = _ROW_TYPES.get(sql)
        if row_type is None or row_type._fields != names:
            row_type = _ROW_TYPES[sql] = _row_type(names)
        return [row_type._make(r) for r in cursor.fetchall()]

    def first(self, sql: str, params: Sequence[object] = ()) -> Any | None:
        found = self.rows(sql, params)
        return found[0] if found else None


def as_json(value: object) -> Any:
    """SQLite hands JSON columns back as text, PostgreSQL as parsed values."""
    return json.loads(value) if isinstance(value, str) else value
