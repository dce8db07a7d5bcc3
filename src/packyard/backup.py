"""`packyard backup` and `packyard restore` for a SQLite installation, and the copy kept before a migration.

A backup is a directory, readable by its owner only, that holds what a restore needs for the registry to
work as it did:

- ``packyard.db``: the database, copied with SQLite's online backup API from one read snapshot, so a
  running server goes on writing meanwhile and every write committed before the snapshot is in it (a
  copy of the file itself would miss what is still in the -wal file). It holds the principals (with
  their secrets' salted hashes), the token-signing keys' ids and salts and the sealed run-task HMAC keys.
- ``secret.key``: the server secret, unless it comes from PACKYARD_SECRET_KEY (then keep that value with
  the backup). The signing keys are derived from it and the HMAC keys are sealed with it: without it a
  restored registry refuses every token issued before and can't answer run tasks.
- ``tls/``: the local CA and the server certificate with their keys, so clients that trust the CA keep
  trusting the restored server.
- ``manifest.json``: the schema revision and each table's row count and checksum, which restore checks.

The backup is written beside its final name and renamed into place at the end: a backup directory that
exists is complete. PostgreSQL is backed up with its own tools (pg_dump), see docs/upgrade.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from packyard import __version__
from packyard.config import Settings
from packyard.files import FILE_MODE, SECRET_FILE, TLS_DIR, private_dir, private_sqlite_file
from packyard.storage import migrate
from packyard.storage.copy import TableSum, in_use, shown, table_sums
from packyard.storage.db import SQLITE_BUSY_TIMEOUT_MS, Database
from packyard.storage.urls import is_sqlite, normalize_url, sqlite_file

DATABASE = "packyard.db"
MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(Exception):
    """Why a backup or a restore can't be made, in one line that says what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    revision: str | None
    tables: dict[str, TableSum]
    key_from: str  # "file": secret.key is in the backup; "environment": PACKYARD_SECRET_KEY; "none"
    files: list[str]


# ---- SQLite primitives


def _connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    where = Path(path).resolve().as_uri() + "?mode=ro" if readonly else str(path)
    conn = sqlite3.connect(where, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, uri=readonly)
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return conn


def _snapshot_copy(source: sqlite3.Connection, target: Path) -> None:
    """source's database, in the snapshot of its open read transaction, into a new file at target (0600,
    rollback-journal mode so that the file stands alone)."""
    private_sqlite_file(str(target))
    dest = _connect(target)
    try:
        source.backup(dest)  # all pages in one step: one snapshot, writers on the source go on meanwhile
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()


def _check(conn: sqlite3.Connection, what: Path | str) -> None:
    result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise BackupError(f"packyard: {what} is damaged (integrity check: {result[0][0]}): use another backup")


def _sums_of(path: Path) -> tuple[str | None, dict[str, TableSum]]:
    """The schema revision and every table's count and checksum of the SQLite file at path, read only."""
    engine = sa.create_engine("sqlite://", creator=lambda: _connect(path, readonly=True), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            revision = None
            if sa.inspect(conn).has_table("alembic_version"):
                revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            return revision, table_sums(conn)
    finally:
        engine.dispose()


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    from packyard.storage.copy import tables  # noqa: PLC0415

    return {
        t.name: int(conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0])  # noqa: S608 - own names
        for t in tables()
        if t.name in names
    }


# ---- backup


def pg_dump_line(url: str, path: Path) -> str:
    return (
        f"packyard: the database is PostgreSQL, which packyard leaves to its own tools: run "
        f"`pg_dump --format=custom --file={path}.pgdump '{shown(url, password=False)}'` "
        f"(password from PGPASSWORD or ~/.pgpass) and keep the data directory's secret.key and tls/ with it "
        f"(docs/upgrade.md)"
    )


def _sqlite_database(settings: Settings) -> Path:
    url = settings.effective_database_url
    file = sqlite_file(url)
    if file is None:
        raise BackupError(f"packyard: {shown(url)} names no database file to back up")
    return Path(file)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_secrets(data_dir: Path, into: Path) -> list[str]:
    files = []
    secret = data_dir / SECRET_FILE
    if secret.is_file():
        _write_private(into / SECRET_FILE, secret.read_bytes())
        files.append(SECRET_FILE)
    tls = data_dir / TLS_DIR
    if tls.is_dir():
        for item in sorted(tls.iterdir()):
            if item.is_file() and not item.is_symlink() and not item.name.startswith("."):
                private_dir(into / TLS_DIR)
                _write_private(into / TLS_DIR / item.name, item.read_bytes())
                files.append(f"{TLS_DIR}/{item.name}")
    return files


def backup(settings: Settings, path: Path, now: datetime) -> BackupResult:
    """A consistent copy of the SQLite registry and the files it needs, into the new directory path."""
    url = settings.effective_database_url
    if not is_sqlite(normalize_url(url)):
        raise BackupError(pg_dump_line(url, path))
    database = _sqlite_database(settings)
    if not database.is_file():
        raise BackupError(f"packyard: there is no database at {database}: check --data-dir or PACKYARD_DATA_DIR")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"packyard: {path} already exists: give a new directory for the backup")
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted backup left
    try:
        private_dir(partial)
    except OSError as exc:
        raise BackupError(f"packyard: can't create {partial}: {exc.strerror}") from None
    try:
        source = _connect(database)
        try:
            source.execute("BEGIN")
            expected = _counts(source)  # the snapshot starts here; the copy below is of the same one
            _snapshot_copy(source, partial / DATABASE)
            source.execute("COMMIT")
        finally:
            source.close()
        check = _connect(partial / DATABASE)
        try:
            _check(check, partial / DATABASE)
            copied = _counts(check)
        finally:
            check.close()
        if copied != expected:
            raise BackupError(f"packyard: the copy's rows differ from the database's ({copied} != {expected})")
        revision, sums = _sums_of(partial / DATABASE)
        files = [DATABASE, *_copy_secrets(settings.data_dir, partial)]
        secret = "environment" if settings.secret_key else ("file" if SECRET_FILE in files else "none")
        manifest = {
            "format": FORMAT,
            "packyard": __version__,
            "created_at": now.astimezone(UTC).isoformat(),
            "source": str(database),
            "revision": revision,
            "secret": secret,
            "files": files,
            "tables": {name: asdict(s) for name, s in sums.items()},
        }
        _write_private(partial / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        if path.is_dir():
            path.rmdir()  # empty, checked above
        partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupResult(path, revision, sums, secret, files)


# ---- restore


@dataclass(frozen=True)
class RestoreResult:
    database: Path
    revision: str | None
    rows: int
    files: list[str]


def _manifest(source: Path) -> dict[str, object] | None:
    try:
        value = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise BackupError(f"packyard: {source / MANIFEST} is not a packyard manifest: use another backup") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise BackupError(f"packyard: {source / MANIFEST} is of a format this packyard can't read")
    return value


def _live(database: Path) -> int:
    """How many rows the database at path holds (0 when it is missing or has no packyard tables)."""
    if not database.is_file() or database.stat().st_size == 0:
        return 0
    conn = _connect(database)
    try:
        return sum(_counts(conn).values())
    finally:
        conn.close()


def restore(settings: Settings, source: Path, *, force: bool) -> RestoreResult:
    """Put a backup (a directory made by backup(), or a bare SQLite file such as the copy kept before a
    migration) in place of the configured SQLite database, with its server secret and TLS files."""
    url = settings.effective_database_url
    if not is_sqlite(normalize_url(url)):
        raise BackupError(
            "packyard: the database is PostgreSQL: restore a pg_dump with `pg_restore --clean --if-exists "
            f"--dbname '{shown(url, password=False)}' FILE`, or load a packyard backup with `packyard db copy --from "
            "sqlite:///BACKUP/packyard.db --to URL --force` (docs/upgrade.md)"
        )
    if source.is_dir():
        backup_db, manifest = source / DATABASE, _manifest(source)
    elif source.is_file():
        backup_db, manifest = source, None
    else:
        raise BackupError(f"packyard: there is no backup at {source}: give the directory `packyard backup` made")
    if not backup_db.is_file():
        raise BackupError(f"packyard: {source} holds no {DATABASE}: give the directory `packyard backup` made")
    target = _sqlite_database(settings)
    # Before this process opens the target itself (see in_use).
    if in_use(target):
        raise BackupError(
            f"packyard: the database {target} is open in another process (a running `packyard serve`?): "
            "stop it first; --force does not restore under a running server"
        )
    checker = _connect(backup_db, readonly=True)
    try:
        _check(checker, backup_db)
    finally:
        checker.close()
    revision, sums = _sums_of(backup_db)
    if manifest is not None:
        recorded = manifest.get("tables")
        if recorded != {name: asdict(s) for name, s in sums.items()}:
            raise BackupError(f"packyard: {backup_db} does not match its manifest's checksums: use another backup")
    rows = _live(target)
    secret_changes = _secret_changes(settings.data_dir, source if manifest is not None else None)
    if (rows or secret_changes) and not force:
        what = f"a registry ({rows:,} rows)" if rows else "a different server secret"
        raise BackupError(f"packyard: {settings.data_dir} already holds {what}: pass --force to replace it")
    private_dir(settings.data_dir)
    private_sqlite_file(str(target))
    source_conn = _connect(backup_db, readonly=True)
    dest = _connect(target)
    try:
        source_conn.backup(dest)
        dest.execute("PRAGMA journal_mode=WAL")
        _check(dest, target)
        restored = _counts(dest)
    finally:
        dest.close()
        source_conn.close()
    files = [DATABASE]
    if manifest is not None:
        files += _restore_files(source, settings.data_dir)
    return RestoreResult(target, revision, sum(restored.values()), files)


def _secret_changes(data_dir: Path, source: Path | None) -> bool:
    if source is None or not (source / SECRET_FILE).is_file():
        return False
    mine = data_dir / SECRET_FILE
    return mine.is_file() and mine.read_bytes() != (source / SECRET_FILE).read_bytes()


def _restore_files(source: Path, data_dir: Path) -> list[str]:
    files = []
    for item in [source / SECRET_FILE, *sorted((source / TLS_DIR).glob("*"))]:
        if not item.is_file():
            continue
        relative = item.relative_to(source)
        target = data_dir / relative
        private_dir(target.parent)
        tmp = target.with_name(f".{target.name}.restore")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _write_private(tmp, item.read_bytes())
        tmp.replace(target)
        files.append(str(relative))
    return files


# ---- before a migration


def upgrade(db: Database, revision: str = "head", say: Callable[[str], None] = print) -> Path | None:
    """migrate.upgrade, after copying a SQLite database that has migrations pending and rows to lose to
    ``<its directory>/backups/`` (said in one line); returns the copy's path, None when none was made."""
    kept = None
    file = sqlite_file(db.url) if db.is_sqlite else None
    if file is not None and Path(file).is_file() and Path(file).stat().st_size > 0:
        current = migrate.current_revision(db)
        target = revision if revision != "head" else migrate.head_revision(db)
        if current is not None and current != target and _live(Path(file)) > 0:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            folder = Path(file).parent / "backups"
            private_dir(folder)
            kept = folder / f"packyard-{current}-{stamp}.db"
            source = _connect(file)
            try:
                source.execute("BEGIN")
                _snapshot_copy(source, kept)
                source.execute("COMMIT")
            finally:
                source.close()
            say(f"packyard: copied the database to {kept} before migrating it from {current} to {target}")
    migrate.upgrade(db, revision)
    return kept
