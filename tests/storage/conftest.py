"""A fresh database per test (tests/conftest.py's backend: SQLite, or PostgreSQL with
PACKYARD_TEST_POSTGRES_URL), reached through the real unit of work, one transaction per call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.engine import Connection

from packyard.auth.vault import Vault
from packyard.domain.models import Bucket, Build, BuildStatus, Channel, Image, Iteration
from packyard.domain.ports import Sealer
from packyard.ids import new_ulid
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import START, Backend

T = TypeVar("T")


def at(seconds: float) -> datetime:
    """A time the test names, START + seconds (stored to the microsecond)."""
    return START + timedelta(seconds=seconds)


@dataclass
class Store:
    db: Database
    organization_id: str
    project_id: str
    principal_client_id: str
    sealer: Sealer = field(default_factory=lambda: Vault("the port suite's secret"))

    def __call__(self, work: Callable[[SqlUnitOfWork], T], *, write: bool = True) -> T:
        """work(uow) in a transaction of its own, committed."""

        def unit(conn: Connection) -> T:
            return work(SqlUnitOfWork(conn, self.sealer))

        return self.db.run(unit, write=write)

    # ---- rows the tests build on

    def bucket(self, slug: str, *, created: float = 0, updated: float | None = None, project_id: str = "") -> Bucket:
        made = Bucket(
            id=new_ulid(),
            project_id=project_id or self.project_id,
            slug=slug,
            created_at=at(created),
            updated_at=at(created if updated is None else updated),
            labels={"team": slug},
            platforms=["aws"],
        )
        self(lambda uow: uow.buckets.add(made))
        return made

    def iteration(self, bucket: Bucket, fingerprint: str, *, created: float = 0, version: int = 0) -> Iteration:
        made = Iteration(
            id=new_ulid(),
            bucket_id=bucket.id,
            bucket_slug=bucket.slug,
            project_id=bucket.project_id,
            fingerprint=fingerprint,
            created_at=at(created),
            updated_at=at(created),
            incremental_version=version,
            complete=version > 0,
        )
        self(lambda uow: uow.iterations.add(made))
        return made

    def build(
        self,
        iteration: Iteration,
        component: str,
        *,
        created: float = 0,
        source: Iteration | None = None,
        cloud: str = "",
        images: int = 0,
    ) -> Build:
        build_id = new_ulid()
        made = Build(
            id=build_id,
            iteration_id=iteration.id,
            bucket_id=iteration.bucket_id,
            project_id=iteration.project_id,
            component_type=component,
            status=BuildStatus.RUNNING,
            created_at=at(created),
            updated_at=at(created),
            heartbeat_at=at(created),
            cloud_provider=cloud,
            source_iteration_id=source.id if source else "",
            labels={"os": "linux"},
            images=[Image(new_ulid(), build_id, f"ami-{n}", f"region-{n}", at(created)) for n in range(images)],
        )
        self(lambda uow: uow.builds.add(made))
        return made

    def channel(self, bucket: Bucket, slug: str, *, created: float = 0, iteration: Iteration | None = None) -> Channel:
        made = Channel(
            id=new_ulid(),
            bucket_id=bucket.id,
            bucket_slug=bucket.slug,
            project_id=bucket.project_id,
            slug=slug,
            created_at=at(created),
            updated_at=at(created),
            iteration_id=iteration.id if iteration else None,
            assigned_at=at(created) if iteration else None,
        )
        self(lambda uow: uow.channels.add(made))
        return made


@pytest.fixture
def store(tmp_path: Path, backend: Backend) -> Iterator[Store]:
    url = backend.new_url(tmp_path)
    db = Database(url)
    try:
        yield Store(db, backend.init.organization_id, backend.init.project_id, backend.init.client_id)
    finally:
        db.dispose()
        backend.release(url)
