"""What `packyard` checks before it starts, and how it says what stopped it.

Every failure an operator can fix (a data directory that can't be used, a port already taken, a database
that can't be reached or isn't packyard's, a bad setting) ends the command with ONE line on stderr that
names the cause and the fix, and exit status 1 (2 for a mistyped command line, as argparse has it). The
checks raise `Refusal`; `run` is the one place that turns a `Refusal`, and the few kinds of library error
that are an operator's to fix (`_known`), into that line. Any other exception is a bug and keeps its
traceback.

The order matters for `serve`: the port and the TLS files are checked before the database is opened, so
a server that can't start prints no banner and no first-start credentials.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, DBAPIError

from packyard.config import Settings
from packyard.files import private_data_dir
from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.urls import normalize_url, sqlite_file

DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


class Refusal(Exception):
    """A failure the operator can fix; its text is the one line that says the cause and the fix."""


def version() -> str:
    try:
        return metadata.version("packyard")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line that points at the command's --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def port_number(text: str) -> int:
    """--port and PACKYARD_PORT: 0 picks the default for the scheme (8443 with TLS, 8080 without)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535; from --port or PACKYARD_PORT)")
    return value


def worker_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers (1 or more; from --workers or PACKYARD_WORKERS)"
        )
    return value


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command; a known operational failure becomes one line on stderr and exit status 1."""
    try:
        return int(command(args))
    except Refusal as exc:
        line = str(exc)
    except Exception as exc:
        known = _known(exc)
        if known is None:
            raise
        line = known
    print(f"packyard: {line}", file=sys.stderr, flush=True)
    return 1


def _known(exc: Exception) -> str | None:
    """The one line for a library's error that is the operator's to fix; None for anything else."""
    if isinstance(exc, CommandError):  # Alembic's: a revision that doesn't exist, named on the command line
        return f"{_first_line(exc)}: name a revision that `packyard db current` or the migrations know, or `head`"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def shown_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable)"


def check_database_url(settings: Settings) -> str:
    """The database URL to use, refused unless it is one packyard runs on."""
    url = settings.effective_database_url
    fix = (
        "set PACKYARD_DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DBNAME, "
        "or leave it unset for SQLite in the data directory"
    )
    try:
        parsed = sa.make_url(normalize_url(url))
    except ArgumentError:
        raise Refusal(f"PACKYARD_DATABASE_URL is not a database URL: {fix}") from None
    if parsed.drivername not in DATABASE_SCHEMES:
        raise Refusal(f"packyard doesn't run on {parsed.get_backend_name()} databases (PACKYARD_DATABASE_URL): {fix}")
    if parsed.drivername.startswith("postgresql") and not parsed.database:
        raise Refusal(f"PACKYARD_DATABASE_URL names no database ({shown_url(url)}): {fix}")
    return url


def _init_hint(settings: Settings) -> str:
    if settings.database_url:
        return "create one with `packyard init` (with the same PACKYARD_DATABASE_URL)"
    return f"create one with `packyard init --data-dir {settings.data_dir}`, or give the --data-dir of an existing one"


def prepare_data_dir(settings: Settings) -> None:
    """Create the data directory (0700) if it is missing, refused when it can't be made or written."""
    data_dir = settings.data_dir
    fix = "choose another --data-dir (or PACKYARD_DATA_DIR)"
    try:
        private_data_dir(data_dir)
    except NotADirectoryError:
        raise Refusal(f"the data directory {data_dir} is a file, or lies under one: {fix}") from None
    except OSError as exc:
        raise Refusal(f"can't make the data directory {data_dir}: {exc.strerror}: {fix}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise Refusal(
            f"the data directory {data_dir} is not writable by this user: "
            f"give it to the user packyard runs as (chown), or {fix}"
        )


def open_database(settings: Settings, *, create: bool, schema_required: bool = True) -> Database:
    """The configured database, connected once to prove it can be, at a revision this packyard knows.

    With create=False (the admin and db commands), a SQLite data directory that doesn't exist or holds no
    database is refused rather than made: a mistyped --data-dir must not become an empty registry. A
    database without packyard's tables is refused too, unless schema_required is False (the `db`
    commands: on a database PACKYARD_DATABASE_URL names, PostgreSQL's or a SQLite file, `db upgrade` is
    how the tables are made)."""
    url = check_database_url(settings)
    path = sqlite_file(url)
    if path is not None and not create:
        named = bool(settings.database_url)  # a file PACKYARD_DATABASE_URL names, not the data directory's
        if not named and not settings.data_dir.is_dir():
            raise Refusal(f"there is no data directory {settings.data_dir}: {_init_hint(settings)}")
        missing = not os.path.isfile(path) or os.path.getsize(path) == 0
        if missing and (schema_required or not named):  # `db upgrade` may make the file a URL names
            raise Refusal(f"there is no packyard database in {Path(path).parent}: {_init_hint(settings)}")
    if create or not settings.database_url:  # on PostgreSQL the admin commands don't use the data directory
        prepare_data_dir(settings)
    db = Database(url)
    try:
        with db.engine.connect():
            pass
    except DBAPIError as exc:
        db.dispose()
        raise Refusal(_unreachable(db, url, exc)) from None
    try:
        _check_revision(db, settings, empty_ok=create or not schema_required)
    except BaseException:
        db.dispose()
        raise
    return db


def _unreachable(db: Database, url: str, exc: DBAPIError) -> str:
    reason = _first_line(exc.orig if exc.orig is not None else exc).removeprefix("connection failed: ")
    if db.is_sqlite:
        where = sqlite_file(url) or url
        if "not a database" in reason:
            return f"{where} is not a SQLite database ({reason}): point --data-dir at packyard's data directory"
        return f"can't open the SQLite database {where}: {reason}: check that it and its directory are writable"
    return (
        f"can't connect to PostgreSQL at {shown_url(url)}: {reason}: check PACKYARD_DATABASE_URL "
        "(host, port, user, password, database) and that the server is running and lets this host in"
    )


def _check_revision(db: Database, settings: Settings, *, empty_ok: bool) -> None:
    current = migrate.current_revision(db)
    if current is None:
        if not empty_ok:
            raise Refusal(f"the database {shown_url(db.url)} holds no packyard registry: {_init_hint(settings)}")
        return
    scripts = ScriptDirectory.from_config(migrate.alembic_config(db))
    try:
        known = scripts.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise Refusal(
            f"the database is at migration {current}, which this packyard ({version()}) doesn't know: a newer "
            "packyard migrated it; run that version (or newer), or restore a backup taken before the upgrade"
        )


def check_listen(host: str, port: int, *, flag: str = "--port", env: str = "PACKYARD_PORT") -> None:
    """Refuse an address `serve` can't listen on, before anything is printed (uvicorn binds the same way)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Refusal(
            f"can't listen on --host {host!r}: {exc.strerror}: give an address or name of this machine (PACKYARD_HOST)"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            where = f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise Refusal(
                    f"{where} is already in use by another process: stop it, or choose another {flag} ({env})"
                ) from None
            if exc.errno == errno.EACCES:
                raise Refusal(
                    f"not allowed to listen on {where}: ports below 1024 need privileges; choose a port above 1023"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise Refusal(
                    f"{host} is not an address of this machine: give one of its addresses to --host"
                ) from None
            reason = exc.strerror
            raise Refusal(f"can't listen on {where}: {reason}: choose another address or {flag} ({env})") from None


def check_tls_files(cert: Path, key: Path) -> None:
    """Refuse a --tls-cert/--tls-key pair that can't be read or doesn't go together: the same check the
    running server makes of a replaced pair (tls_reload.check_pair), made before anything starts."""
    from packyard.tls_reload import PairError, check_pair  # noqa: PLC0415 - only serve with --tls-cert needs it

    missing = next((p for p in (cert, key) if not p.is_file()), None)
    if missing is not None:
        raise Refusal(f"no such file: {missing}: give --tls-cert and --tls-key the paths of PEM files")
    try:
        check_pair(cert.read_bytes(), key.read_bytes())
    except OSError as exc:
        raise Refusal(
            f"can't use --tls-cert {cert} with --tls-key {key}: {exc.strerror or _first_line(exc)}: give a PEM "
            "certificate (chain) and its private key"
        ) from None
    except PairError as exc:
        raise Refusal(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its private key ({exc}): "
            "give the certificate (chain) and the key that goes with it"
        ) from None
