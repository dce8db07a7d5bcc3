"""Database URLs: the two kinds packyard speaks (SQLite, PostgreSQL) and the file a SQLite one names."""

from __future__ import annotations

import os

import sqlalchemy as sa


def normalize_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite database's file; None for an in-memory SQLite database, for a
    SQLite URI (``file:...``) and for any other database, whose URL names no file."""
    if not is_sqlite(normalize_url(url)):
        return None
    database = sa.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)
