"""The repositories: one module per port of domain/ports.py, one implementation for SQLite and PostgreSQL.

One idiom of SQL: every statement a repository runs is SQL text run on the driver connection through
`storage/raw.py` (`?` placeholders, rows with attribute access), in the request's transaction.
SQLAlchemy Core builds and compiles a statement on every call, which on SQLite costs several times what
the database takes to answer it (measured: a registry read by key is 4 us as text and 61 us as a Core
select; 60 and 221 us on a local PostgreSQL). Core keeps what it is good at and costs nothing per
request: the tables (`storage/schema.py`), the migrations and the engines (`storage/db.py`).

A paged list is text too: `codecs.keyset` appends the cursor's comparison, the order and the limit to
a statement, with the column names taken from the repository's own mapping of sortable fields. Times
are integer microseconds (`codecs.to_us`, `from_us`), booleans come back as 0/1 from SQLite (wrap them
in bool()), JSON columns as text from SQLite (`raw.as_json`).
"""

from __future__ import annotations

from packyard.storage.raw import Conn, Raw


class Repository:
    """A repository on a connection in a transaction; a unit of work hands all of its repositories the
    same Raw."""

    __slots__ = ("conn", "raw")

    def __init__(self, conn: Conn, raw: Raw | None = None) -> None:
        self.conn = conn
        self.raw = raw if raw is not None else Raw(conn)
