"""Fixtures: a real SQLite file per test (copied from one migrated template), the real ASGI app with
an injected clock, real tokens from the real token endpoint, and a client that validates every
response against HashiCorp's document."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from packyard.bootstrap import InitResult, initialize
from packyard.clock import ManualClock
from packyard.config import Settings
from packyard.http.app import App
from packyard.http.factory import create_app
from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.urls import normalize_url
from tests.contract.validator import SwaggerContract, spec_dir
from tests.support.client import VALIDATED, ApiClient

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def contracts() -> list[SwaggerContract]:
    return [
        SwaggerContract.load(spec_dir() / "packer-service-2021-04-30.swagger.json"),
        SwaggerContract.load(spec_dir() / "packer-service-2023-01-01.swagger.json"),
        SwaggerContract.load(spec_dir() / "resource-manager-2019-12-10.swagger.json"),
    ]


class Backend:
    """Where each test's database comes from: a copy of a migrated SQLite file, or a PostgreSQL database
    cloned from a migrated template database. Either way a real, empty-but-initialised database."""

    name = "sqlite"
    init: InitResult

    def new_url(self, tmp_path: Path) -> str:
        raise NotImplementedError

    def empty_url(self, tmp_path: Path) -> str:
        """A database with no tables at all (for migration tests)."""
        raise NotImplementedError

    def release(self, url: str) -> None:
        pass

    def close(self) -> None:
        pass


class SqliteBackend(Backend):
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        db = Database(f"sqlite:///{self.path}")
        migrate.upgrade(db)
        self.init = initialize(db, START)
        db.dispose()  # closing the last connection checkpoints the WAL into the main file
        assert not self.path.with_name(self.path.name + "-wal").exists()

    def new_url(self, tmp_path: Path) -> str:
        target = tmp_path / "packyard.db"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"

    def empty_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'empty.db'}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = normalize_url(admin_url)
        self.admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.prefix = f"pky_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self.counter = itertools.count()
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.template}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
        db = Database(self._url(self.template))
        migrate.upgrade(db)
        self.init = initialize(db, START)
        db.dispose()

    def _url(self, name: str) -> str:
        return str(sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False))

    def new_url(self, tmp_path: Path) -> str:
        name = f"{self.prefix}_{next(self.counter)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self._url(name)

    def empty_url(self, tmp_path: Path) -> str:
        name = f"{self.prefix}_{next(self.counter)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self._url(name)

    def release(self, url: str) -> None:
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.template}"')
        self.admin.dispose()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    url = os.environ.get("PACKYARD_TEST_POSTGRES_URL")
    chosen: Backend = PostgresBackend(url) if url else SqliteBackend(tmp_path_factory.mktemp("template"))
    yield chosen
    chosen.close()


@dataclass
class Env:
    app: App
    db: Database
    clock: ManualClock
    settings: Settings
    init: InitResult
    client: ApiClient

    def advance(self, **delta: float) -> None:
        """Move the clock (timedelta keywords) and get a fresh token, as a long-running client would."""
        self.clock.advance(**delta)
        self.client.token = self.token_for(self.init.client_id, self.init.client_secret)

    def token_for(self, client_id: str, client_secret: str) -> str:
        response = self.client.post(
            "/oauth2/token",
            content=f"grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def make_env(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract], **settings: object) -> Env:
    url = backend.new_url(tmp_path)
    config = Settings(data_dir=tmp_path, database_url=url, **settings)  # type: ignore[arg-type]
    db = Database(config.effective_database_url)
    clock = ManualClock(START)
    app = create_app(config, db=db, clock=clock)
    loop = asyncio.new_event_loop()
    client = ApiClient(app, contracts, loop, backend.init.organization_id, backend.init.project_id)
    env = Env(app, db, clock, config, backend.init, client)
    client.token = env.token_for(backend.init.client_id, backend.init.client_secret)
    return env


def close_env(environment: Env, backend: Backend) -> None:
    environment.client.loop.run_until_complete(environment.app.aclose())
    environment.client.close()
    environment.client.loop.close()
    environment.db.dispose()
    backend.release(environment.settings.effective_database_url)


@pytest.fixture
def env(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> Iterator[Env]:
    environment = make_env(tmp_path, backend, contracts)
    yield environment
    close_env(environment, backend)


@pytest.fixture
def client(env: Env) -> ApiClient:
    return env.client


def pytest_report_header() -> str:
    lane = "postgresql" if os.environ.get("PACKYARD_TEST_POSTGRES_URL") else "sqlite"
    return f"packyard database lane: {lane}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lane = "postgresql" if os.environ.get("PACKYARD_TEST_POSTGRES_URL") else "sqlite"
    terminalreporter.write_line(f"packyard database lane: {lane}")
    if VALIDATED:
        for version in sorted({k.split(" ", 1)[0] for k in VALIDATED}):
            mine = {k.split("_", 1)[-1]: v for k, v in VALIDATED.items() if k.startswith(version + " ")}
            ops = ", ".join(f"{k}{sorted(v)}" for k, v in sorted(mine.items()))
            terminalreporter.write_line(f"contract {version}: {len(mine)} operations validated against its document")
            terminalreporter.write_line(f"  {ops}")
