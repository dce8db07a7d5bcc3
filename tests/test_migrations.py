"""Migrations, upgrade and downgrade, on whichever database the lane runs; `db check` catches drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from packyard.bootstrap import initialize
from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.schema import metadata
from tests.conftest import START, Backend


@pytest.fixture
def empty_db(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    url = backend.empty_url(tmp_path)
    db = Database(url)
    yield db
    db.dispose()
    backend.release(url)


def tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def revisions(db: Database) -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(db))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_upgrade_creates_exactly_the_models_and_downgrade_removes_them(empty_db: Database) -> None:
    assert tables(empty_db) == set()
    assert migrate.pending(empty_db)
    migrate.upgrade(empty_db)
    assert not migrate.pending(empty_db)
    assert tables(empty_db) == set(metadata.tables)
    assert migrate.drift(empty_db) == []
    migrate.downgrade(empty_db, "base")
    assert tables(empty_db) == set()
    assert migrate.current_revision(empty_db) is None


def test_every_step_goes_up_and_down_with_data_in_place(empty_db: Database) -> None:
    steps = revisions(empty_db)
    assert steps[0] == "0001"
    for rev in steps:
        migrate.upgrade(empty_db, rev)
        assert migrate.current_revision(empty_db) == rev
    init = initialize(empty_db, START)  # real rows in the tables while stepping down and up again
    for previous in reversed(["base", *steps[:-1]]):
        migrate.downgrade(empty_db, previous)
        assert migrate.current_revision(empty_db) == (None if previous == "base" else previous)
        if previous != "base":
            migrate.upgrade(empty_db, "head")
            assert migrate.drift(empty_db) == []
            with empty_db.engine.connect() as conn:
                orgs = conn.exec_driver_sql("SELECT id FROM organization").scalars().all()
            assert orgs == [init.organization_id]
            migrate.downgrade(empty_db, previous)


def test_check_reports_drift_between_models_and_database(empty_db: Database) -> None:
    migrate.upgrade(empty_db)
    with empty_db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    diffs = migrate.drift(empty_db)
    assert any("stray" in str(d) for d in diffs)


@pytest.mark.slow
def test_serve_applies_migrations_on_sqlite_and_refuses_pending_ones_on_postgresql(
    tmp_path: Path, backend: Backend
) -> None:
    import os
    import subprocess
    import sys

    from tests.support.server import free_port, serving

    url = backend.empty_url(tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
        env |= {"PACKYARD_DATABASE_URL": url, "PACKYARD_SECRET_KEY": "s"}
        command = [
            sys.executable,
            "-m",
            "packyard",
            "serve",
            "--no-tls",
            "--port",
            str(free_port()),  # serve checks its port before the database: a free one, whatever else runs here
            "--data-dir",
            str(tmp_path / "d"),
        ]
        if backend.name == "postgresql":
            refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
            assert refused.returncode != 0
            assert "packyard db upgrade" in refused.stderr
            assert "--migrate" in refused.stderr
            extra: tuple[str, ...] = ("--migrate",)
        else:
            extra = ()
        with serving(tmp_path, url, extra=extra) as servers:
            assert servers[0].process.poll() is None
        db = Database(url)
        try:
            assert not migrate.pending(db)
        finally:
            db.dispose()
    finally:
        backend.release(url)


def test_0007_adds_the_token_failure_table_with_its_upsert_and_0006_drops_it(empty_db: Database) -> None:
    from datetime import timedelta

    from packyard.storage.repositories.token_failures import SqlTokenFailures

    migrate.upgrade(empty_db, "0006")
    assert "token_failure" not in tables(empty_db)
    migrate.upgrade(empty_db, "0007")
    inspector = sa.inspect(empty_db.engine)
    assert inspector.get_pk_constraint("token_failure")["constrained_columns"] == ["address", "client_id"]
    assert [i["column_names"] for i in inspector.get_indexes("token_failure")] == [["expires_at"]]
    span = {"window": timedelta(seconds=300), "lockout": timedelta(seconds=60), "keep": timedelta(seconds=300)}

    def fail_twice(conn: sa.Connection) -> None:
        store = SqlTokenFailures(conn)
        for seconds in (0, 1):
            store.add_failure("192.0.2.1", "id", START + timedelta(seconds=seconds), limit=2, **span)

    empty_db.run(fail_twice, write=True)
    counts = empty_db.run(lambda conn: SqlTokenFailures(conn).read("192.0.2.1", "id"), write=False)
    assert counts["id"].failures == 2
    assert counts["id"].first_at == START
    assert counts["id"].locked_until == START + timedelta(seconds=61)
    migrate.downgrade(empty_db, "0006")
    assert "token_failure" not in tables(empty_db)
    assert migrate.current_revision(empty_db) == "0006"
