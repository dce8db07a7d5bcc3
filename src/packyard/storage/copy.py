"""`packyard db copy`: every row of one packyard database into another (SQLite to PostgreSQL and back),
ids and times as they are, verified table by table with a count and a checksum.

The source is read in one snapshot (a read transaction on SQLite, REPEATABLE READ on PostgreSQL), so a
running server may go on writing to it: the copy is the registry as it was when the copy began. The target
is migrated to the current schema first and filled in one transaction, tables in foreign-key order, in
batches (executemany on SQLite, COPY on PostgreSQL); a failure leaves it as it was. No table has a
sequence or an identity column (every key is a string id), so nothing needs fixing up afterwards.

A table's checksum is SHA-256 over its rows in primary-key order (byte order on both databases), each
row's values normalised so that what SQLite and PostgreSQL return for the same value compares equal:
booleans (SQLite's 0/1), bytes (PostgreSQL's memoryview), JSON (parsed and written back with sorted keys,
so spacing and key order don't count, while SQL NULL and JSON null stay apart) and datetimes (UTC ISO).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.schema import metadata
from packyard.storage.urls import is_sqlite, normalize_url, sqlite_file

BATCH_ROWS = 5000
# Rows with a blob (an SBOM is up to 16 MiB decompressed, stored compressed) go a few at a time.
BLOB_BATCH_ROWS = 8


class CopyError(Exception):
    """Why a copy can't be made, in one line that says what to do."""


@dataclass(frozen=True)
class TableSum:
    """A table's row count and checksum (hex SHA-256 of its normalised rows in primary-key order)."""

    rows: int
    checksum: str


@dataclass(frozen=True)
class TableReport:
    table: str
    source: TableSum
    target: TableSum

    @property
    def same(self) -> bool:
        return self.source == self.target


def shown(url: str, *, password: bool = True) -> str:
    """A database URL as it may be printed: the password hidden (or left out), no driver name."""
    parsed = sa.make_url(url)
    parsed = parsed.set(drivername=parsed.get_backend_name())
    if not password:
        parsed = parsed._replace(password=None)  # set() takes None as "unchanged"
    return parsed.render_as_string(hide_password=True)


def tables() -> list[sa.Table]:
    """packyard's tables, parents before children."""
    return list(metadata.sorted_tables)


# ---- reading and checksums


def _column(col: sa.Column[Any]) -> sa.ColumnElement[Any]:
    # JSON as its text, exactly as stored: copied verbatim, and SQL NULL stays apart from JSON null.
    return sa.cast(col, sa.Text).label(col.name) if isinstance(col.type, sa.JSON) else col


def _select(table: sa.Table, dialect: str) -> sa.Select[Any]:
    postgres = dialect == "postgresql"
    keys = [c.collate("C") if postgres and isinstance(c.type, sa.String) else c for c in table.primary_key]
    return sa.select(*[_column(c) for c in table.columns]).order_by(*keys)


@functools.lru_cache(maxsize=4096)
def _canonical_json(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind == "json":
        return _canonical_json(v)
    if kind == "bool":
        return bool(v)
    if kind == "bytes":
        return bytes(v)
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return v


def _normaliser(table: sa.Table) -> Callable[[list[tuple[Any, ...]]], str]:
    """A batch of the table's rows as one text: each row's normalised values' repr and a newline (so the
    text of a table doesn't depend on how it was cut in batches). Strings and integers are what both
    databases return; only the other kinds of column are touched."""
    special = []
    for i, col in enumerate(table.columns):
        if isinstance(col.type, sa.JSON):
            special.append((i, "json"))
        elif isinstance(col.type, sa.Boolean):
            special.append((i, "bool"))
        elif isinstance(col.type, sa.LargeBinary):
            special.append((i, "bytes"))
        elif not isinstance(col.type, sa.String | sa.Integer):
            special.append((i, ""))

    def text(rows: list[tuple[Any, ...]]) -> str:
        if not special:
            return "".join(f"{r!r}\n" for r in rows)
        out = []
        for r in rows:
            values = list(r)
            for i, kind in special:
                values[i] = _normal(kind, values[i])
            out.append(f"{tuple(values)!r}\n")
        return "".join(out)

    return text


class _Summer:
    def __init__(self, table: sa.Table) -> None:
        self.text = _normaliser(table)
        self.hash = hashlib.sha256()
        self.rows = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        self.hash.update(self.text(rows).encode())
        self.rows += len(rows)

    def result(self) -> TableSum:
        return TableSum(self.rows, self.hash.hexdigest())


def _batches(conn: Connection, table: sa.Table) -> Iterable[list[tuple[Any, ...]]]:
    """The table's rows in primary-key order, in batches, as the driver returns them (SQLAlchemy's rows
    would cost more than the rest of the copy), in conn's transaction: a server-side cursor on PostgreSQL."""
    sql = str(_select(table, conn.dialect.name).compile(dialect=conn.dialect))
    driver: Any = conn.connection.driver_connection
    cursor = driver.execute(sql) if conn.dialect.name == "sqlite" else driver.cursor(name=f"packyard_copy_{table.name}")
    try:
        if conn.dialect.name != "sqlite":
            cursor.execute(sql)
        size = BLOB_BATCH_ROWS if any(isinstance(c.type, sa.LargeBinary) for c in table.columns) else BATCH_ROWS
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def _as_present(conn: Connection, table: sa.Table) -> sa.Table:
    """The table with only the columns the database has (a backup made before a migration that adds
    one has fewer): what a checksum of it made then covered, and can cover now."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    if all(c.name in present for c in table.columns):
        return table
    kept = [sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns if c.name in present]
    return sa.Table(table.name, sa.MetaData(), *kept)


def table_sums(conn: Connection) -> dict[str, TableSum]:
    """Every packyard table's count and checksum, read on conn (in its transaction, so in one snapshot).
    A table the database doesn't have yet (a backup made before the migration that adds it) has none,
    and a column it doesn't have yet is left out of its table's."""
    present = set(sa.inspect(conn).get_table_names())
    sums = {}
    for found in tables():
        if found.name not in present:
            continue
        table = _as_present(conn, found)
        summer = _Summer(table)
        for rows in _batches(conn, table):
            summer.add(rows)
        sums[table.name] = summer.result()
    return sums


def database_sums(db: Database) -> dict[str, TableSum]:
    """table_sums in one snapshot: a read transaction on SQLite; on PostgreSQL a REPEATABLE READ
    transaction of its own (db.run's reads there run without one, and server-side cursors need one)."""
    if db.is_sqlite:
        return db.run(table_sums, write=False)
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return table_sums(conn)


# ---- writing


def _writer(conn: Connection, table: sa.Table) -> Callable[[list[tuple[Any, ...]]], None]:
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c.name) for c in table.columns)
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join('?' * len(table.columns))})"  # noqa: S608 - packyard's own names

        def insert(rows: list[tuple[Any, ...]]) -> None:
            driver.executemany(sql, rows)

        return insert
    statement = f"COPY {quote(table.name)} ({names}) FROM STDIN"

    def copy(rows: list[tuple[Any, ...]]) -> None:
        with driver.cursor() as cursor, cursor.copy(statement) as out:
            for r in rows:
                out.write_row(r)

    return copy


def has_rows(conn: Connection) -> bool:
    """Whether any of packyard's tables that exist on conn's database holds a row."""
    present = set(sa.inspect(conn).get_table_names())
    return any(
        conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first() for t in tables() if t.name in present
    )


def _clear(conn: Connection) -> None:
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("TRUNCATE " + ", ".join(quote(t.name) for t in tables()))
    else:
        for table in reversed(tables()):
            conn.exec_driver_sql(f"DELETE FROM {quote(table.name)}")  # noqa: S608 - packyard's own names


# ---- the copy


def in_use(database: str | Path) -> bool:
    """Whether another process has the SQLite database open (a running server, an admin command).

    Every connection that has a WAL database's wal-index open holds a shared lock on its "DMS" byte
    (offset 128 of the -shm file, see https://www.sqlite.org/walformat.html): an exclusive lock on it is
    refused while any other process has it open. POSIX locks don't conflict within one process, so this
    must be asked before this process opens the database itself."""
    try:
        fd = os.open(f"{database}-shm", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 128)
        return False
    finally:
        os.close(fd)


def open_source(url: str) -> Database:
    """The database to copy from, which must exist and be at the current schema (never created here)."""
    file = sqlite_file(url)
    if is_sqlite(normalize_url(url)) and (file is None or not Path(file).is_file()):
        raise CopyError(f"packyard: there is no SQLite database at {file or url}: check the --from URL or --data-dir")
    db = Database(url)
    try:
        current, head = migrate.current_revision(db), migrate.head_revision(db)
    except Exception as exc:
        db.dispose()
        raise CopyError(f"packyard: can't read the source database {shown(url)}: {one_line(exc)}") from None
    if current != head:
        db.dispose()
        if current is None:
            raise CopyError(f"packyard: {shown(url)} holds no packyard registry: check the --from URL")
        raise CopyError(
            f"packyard: the source database is at schema revision {current}, not {head}: "
            f"run `packyard db upgrade` against it first"
        )
    return db


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def copy_database(source_url: str, target_url: str, *, force: bool = False) -> list[TableReport]:
    """Copy every row of source_url's registry into target_url (migrated first; refused when it holds
    rows, unless force, which replaces them), then compare each table's count and checksum."""
    if normalize_url(source_url) == normalize_url(target_url):
        raise CopyError("packyard: the source and the target are the same database")
    file = sqlite_file(target_url)
    if file is not None and in_use(file):  # before this process opens it (see in_use)
        raise CopyError(
            f"packyard: the target database {file} is open in another process (a running `packyard serve`?): "
            "stop it first"
        )
    source = open_source(source_url)
    try:
        target = Database(target_url)
        try:
            return _copy(source, target, force=force)
        finally:
            target.dispose()
    finally:
        source.dispose()


def _copy(source: Database, target: Database, *, force: bool) -> list[TableReport]:
    try:
        with target.engine.connect() as conn:
            holds_rows = has_rows(conn)
        if holds_rows and not force:  # asked before migrating it: a refused target is left as it was
            raise CopyError(
                f"packyard: the target database {shown(target.url)} already holds a registry: "
                f"pass --force to replace everything in it"
            )
        migrate.upgrade(target)
    except CopyError:
        raise
    except Exception as exc:
        raise CopyError(f"packyard: can't prepare the target database {shown(target.url)}: {one_line(exc)}") from None
    sums: dict[str, TableSum] = {}
    with source.engine.connect() as read, target.engine.connect() as write:
        # In place (a Connection's options are its own): a read-only snapshot of the source.
        if source.is_sqlite:
            read.execution_options(packyard_write=False)
        else:
            read.execution_options(isolation_level="REPEATABLE READ")
        with read.begin(), write.begin():
            if has_rows(write):  # with --force (or written since the check above: a copy never merges)
                if not force:
                    raise CopyError(
                        f"packyard: the target database {shown(target.url)} already holds a registry: "
                        f"pass --force to replace everything in it"
                    )
                _clear(write)
            for table in tables():
                summer = _Summer(table)
                insert = _writer(write, table)
                for rows in _batches(read, table):
                    insert(rows)
                    summer.add(rows)
                sums[table.name] = summer.result()
    copied = database_sums(target)
    return [TableReport(name, sums[name], copied[name]) for name in sums]


def report_table(reports: Sequence[TableReport]) -> str:
    """The per-table comparison as a plain text table."""
    from tabulate import tabulate  # noqa: PLC0415 - only db copy prints it

    rows = [
        (
            r.table,
            r.source.rows,
            r.target.rows,
            r.source.checksum[:16],
            r.target.checksum[:16],
            "yes" if r.same else "NO",
        )
        for r in reports
    ]
    headers = ("table", "source rows", "target rows", "source sha256", "target sha256", "same")
    return tabulate(rows, headers=headers, intfmt=",", disable_numparse=False)


def run_copy(source_url: str, target_url: str, *, force: bool, say: Callable[[str], None]) -> bool:
    """The command: copy, print the table and one line of outcome; True when every table agrees."""
    started = time.monotonic()
    reports = copy_database(source_url, target_url, force=force)
    say(report_table(reports))
    total = sum(r.target.rows for r in reports)
    elapsed = time.monotonic() - started
    if all(r.same for r in reports):
        say(f"copied {total:,} rows from {shown(source_url)} to {shown(target_url)} in {elapsed:.1f} s; tables equal")
        return True
    differ = ", ".join(r.table for r in reports if not r.same)
    say(f"packyard: the copy differs from the source in {differ}: do not use it; run the copy again with --force")
    return False
