"""The commands `packyard backup`, `packyard restore` and `packyard db copy` (see packyard/backup.py and
packyard/storage/copy.py); cli.py adds their parsers with add_parsers."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packyard.backup import BackupError, backup, restore
from packyard.clock import SystemClock
from packyard.config import Settings
from packyard.storage.copy import CopyError, one_line, run_copy, shown


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings.from_env(data_dir=Path(data_dir) if data_dir else None)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        result = backup(settings, Path(args.path), SystemClock().now())
    except (BackupError, CopyError) as exc:
        raise SystemExit(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise SystemExit(f"packyard: the backup into {args.path} failed: {_reason(exc)}") from None
    rows = sum(s.rows for s in result.tables.values())
    print(f"backed up {rows:,} rows (schema {result.revision}) and {len(result.files) - 1} files to {result.path}")
    if result.key_from == "environment":
        print("the server secret comes from PACKYARD_SECRET_KEY: keep that value with this backup")
    elif result.key_from == "none":
        print(f"warning: {settings.data_dir} holds no secret.key: tokens and run-task keys won't survive a restore")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        result = restore(settings, Path(args.path), force=args.force)
    except (BackupError, CopyError) as exc:
        raise SystemExit(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise SystemExit(f"packyard: the restore from {args.path} failed: {_reason(exc)}") from None
    others = [f for f in result.files if f != "packyard.db"]
    print(
        f"restored {result.rows:,} rows (schema {result.revision}) into {result.database}"
        + (f" and {len(others)} files into {settings.data_dir}" if others else "")
    )
    return 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return one_line(exc)


def cmd_db_copy(args: argparse.Namespace) -> int:
    settings = _settings(args)
    source = args.source or settings.effective_database_url
    target = args.to
    try:
        agreed = run_copy(source, target, force=args.force, say=print)
    except CopyError as exc:
        raise SystemExit(str(exc)) from None
    except Exception as exc:  # the database's own error, in one line
        raise SystemExit(f"packyard: copying {shown(source)} to {shown(target)} failed: {one_line(exc)}") from None
    return 0 if agreed else 1


def add_parsers(
    sub: argparse._SubParsersAction[Any],
    db_sub: argparse._SubParsersAction[Any],
    data_dir_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    p_backup = sub.add_parser(
        "backup", help="copy the SQLite registry, its server secret and TLS files into a new directory, while it runs"
    )
    p_backup.add_argument("path", help="the directory to create (must not exist, or be empty)")
    data_dir_arg(p_backup)
    p_backup.set_defaults(func=cmd_backup)

    p_restore = sub.add_parser("restore", help="put a backup in place of the SQLite registry (server stopped)")
    p_restore.add_argument("path", help="a directory made by `packyard backup`, or a SQLite file")
    p_restore.add_argument("--force", action="store_true", help="replace a registry that holds data")
    data_dir_arg(p_restore)
    p_restore.set_defaults(func=cmd_restore)

    p_copy = db_sub.add_parser(
        "copy", help="copy every row into another database (SQLite to PostgreSQL and back), verified per table"
    )
    p_copy.add_argument(
        "--to", required=True, metavar="URL", help="the target database URL (migrated to the current schema first)"
    )
    p_copy.add_argument(
        "--from", dest="source", metavar="URL", help="the source database URL (default: the configured database)"
    )
    p_copy.add_argument("--force", action="store_true", help="replace everything in a target that holds rows")
    p_copy.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p_copy.set_defaults(func=cmd_db_copy)


def say_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
