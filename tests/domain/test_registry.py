"""The registry an operation sees (Ctx.registry, read with the actor by the runner) is the one storage
holds, also after the operation itself changed it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from packyard.auth.vault import Vault
from packyard.domain import registry
from packyard.domain.context import Ctx
from packyard.domain.errors import FailedPrecondition, NotFound
from packyard.domain.models import Registry, Tier
from packyard.domain.rules import Rules
from packyard.http.hcp_2021.words import WORDS
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import START, Backend


@pytest.fixture
def db(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    url = backend.new_url(tmp_path)
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
        backend.release(url)


def _ctx(conn: Connection, backend: Backend, *, known: bool) -> Ctx:
    """A Ctx as the runner makes it (known: with the registry read beside the actor) or as jobs do."""
    uow = SqlUnitOfWork(conn)
    project_id = backend.init.project_id
    ctx = Ctx(uow, Rules(), START, backend.init.organization_id, project_id)
    if known:
        ctx.registry = uow.registries.get(project_id)
        assert ctx.registry is not None
    return ctx


def _stored(conn: Connection, backend: Backend) -> Registry | None:
    return SqlUnitOfWork(conn).registries.get(backend.init.project_id)


@pytest.mark.parametrize("known", [True, False])
def test_what_an_operation_changed_is_what_it_then_reads(db: Database, backend: Backend, known: bool) -> None:
    def work(conn: Connection) -> None:
        ctx = _ctx(conn, backend, known=known)
        registry.delete(ctx, hard=False)
        assert registry.get(ctx) == _stored(conn, backend)
        assert not registry.get(ctx).activated
        registry.update(ctx, tier=Tier.STANDARD, activate=True)
        assert registry.get(ctx) == _stored(conn, backend)
        assert registry.get(ctx).activated
        registry.delete(ctx, hard=True)
        assert _stored(conn, backend) is None
        with pytest.raises(NotFound):
            registry.get(ctx)
        created = registry.create(ctx, Tier.UNSET)
        assert registry.get(ctx) == created == _stored(conn, backend)

    db.run(work, write=True)


def test_create_reactivates_a_deactivated_registry_and_reads_it_so(db: Database, backend: Backend) -> None:
    def work(conn: Connection) -> None:
        ctx = _ctx(conn, backend, known=True)
        registry.delete(ctx, hard=False)
        ctx = _ctx(conn, backend, known=True)  # the next request reads it deactivated
        assert ctx.registry is not None
        assert not ctx.registry.activated
        registry.create(ctx, Tier.UNSET)
        assert registry.require_active(ctx) == _stored(conn, backend)

    db.run(work, write=True)


def test_a_key_sealed_under_another_secret_is_refused_in_each_trees_words(db: Database, backend: Backend) -> None:
    """Storage keeps the key sealed by the vault it is given (a domain/ports.py Sealer); one that this
    server's secret can't open is the domain's refusal, which each API tree words."""

    def key_with(secret: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            ctx = Ctx(SqlUnitOfWork(conn, Vault(secret)), Rules(), START, backend.init.organization_id, project_id)
            return registry.run_task_key(ctx, "validation")[1]

        return work

    project_id = backend.init.project_id
    made = db.run(key_with("the old secret"), write=True)  # made on first use, sealed
    assert db.run(key_with("the old secret"), write=False) == made
    with pytest.raises(FailedPrecondition) as refused:
        db.run(key_with("a new secret"), write=False)
    assert refused.value.render(WORDS).endswith("regenerate it with PATCH .../runtasks/hmac")
    assert refused.value.message.endswith("regenerate it with RegenerateTFCRunTaskHmacKey")
