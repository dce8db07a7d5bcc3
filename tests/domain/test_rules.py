"""The domain's rules through a real unit of work on the test's database (SQLite or PostgreSQL), without
HTTP: revocation reaching descendants, completion, ancestry status, paging, lookups, and the states
the clock decides."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.engine import Connection

from packyard.domain import ancestry, buckets, builds, channels, iterations, lookup, status
from packyard.domain.ancestry import AncestryStatus
from packyard.domain.commands import BuildChanges, ImageInput, IterationChanges, IterationRef
from packyard.domain.context import Ctx
from packyard.domain.errors import NotFound
from packyard.domain.models import BuildStatus, Iteration, IterationStatus, RevocationType, TemplateType
from packyard.domain.rules import Rules
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import START, Backend

T = TypeVar("T")


@dataclass
class World:
    db: Database
    organization_id: str
    project_id: str
    now: datetime = START

    def run(self, work: Callable[[Ctx], T], *, at: datetime | None = None) -> T:
        """work(ctx) in one write transaction at `at` (default: the world's clock)."""

        def unit(conn: Connection) -> T:
            ctx = Ctx(SqlUnitOfWork(conn), Rules(), at or self.now, self.organization_id, self.project_id)
            return work(ctx)

        return self.db.run(unit, write=True)

    def ctx_result(self, work: Callable[[Ctx], T], *, at: datetime) -> tuple[T, Ctx]:
        """work's result and the Ctx it ran with (to read valid_until)."""
        seen: list[Ctx] = []

        def keep(ctx: Ctx) -> T:
            seen.append(ctx)
            return work(ctx)

        return self.run(keep, at=at), seen[0]


@pytest.fixture
def world(tmp_path: Path, backend: Backend) -> Iterator[World]:
    url = backend.new_url(tmp_path)
    db = Database(url)
    try:
        yield World(db, backend.init.organization_id, backend.init.project_id)
    finally:
        db.dispose()
        backend.release(url)


def done(component: str, *, source: Iteration | None = None, channel_id: str = "") -> BuildChanges:
    return BuildChanges(
        component_type=component,
        status=BuildStatus.DONE,
        cloud_provider="aws",
        images=[ImageInput("ami-" + component, "us-east-1")],
        source_iteration_id=source.id if source else "",
        source_channel_id=channel_id,
    )


def publish(w: World, bucket: str, fingerprint: str, *changes: BuildChanges) -> Iteration:
    """A bucket (made when missing) and a complete iteration with one DONE build per change."""

    def work(ctx: Ctx) -> Iteration:
        if ctx.uow.buckets.get(ctx.project_id, bucket) is None:
            buckets.create(ctx, slug=bucket, description="", labels={})
        it = iterations.create(ctx, bucket, fingerprint=fingerprint, template_type=TemplateType.HCL2)
        for change in changes or (done("amazon-ebs.base"),):
            builds.create(ctx, bucket, it.id, change)
        return iterations.get(ctx, bucket, iteration_id=it.id, fingerprint="", version=0)

    return w.run(work)


def test_an_iteration_completes_when_its_last_build_is_done(world: World) -> None:
    def start(ctx: Ctx) -> Iteration:
        buckets.create(ctx, slug="app", description="", labels={})
        it = iterations.create(ctx, "app", fingerprint="f1", template_type=TemplateType.HCL2)
        builds.create(ctx, "app", it.id, BuildChanges(component_type="two", status=BuildStatus.RUNNING))
        builds.create(ctx, "app", it.id, done("one"))
        return iterations.get(ctx, "app", iteration_id=it.id, fingerprint="", version=0)

    it = world.run(start)
    assert not it.complete
    assert it.incremental_version == 0
    running = next(b for b in it.builds if b.component_type == "two")
    world.run(lambda ctx: builds.update(ctx, running.id, done("two")))

    it = world.run(lambda ctx: iterations.get(ctx, "app", iteration_id=it.id, fingerprint="", version=0))
    assert it.complete
    assert it.incremental_version == 1
    assert world.run(lambda ctx: buckets.get(ctx, "app")).bucket.latest_iteration_id == it.id
    latest = world.run(lambda ctx: channels.get(ctx, "app", "latest"))
    assert latest.iteration_id == it.id


def test_a_revocation_reaches_descendants_and_a_restore_brings_them_back(world: World) -> None:
    base = publish(world, "base", "b1")
    child = publish(world, "app", "a1", done("app", source=base))
    grandchild = publish(world, "edge", "e1", done("edge", source=child))
    later = world.now + timedelta(minutes=1)

    revoke = IterationChanges(revoke_after=timedelta(0), revocation_message="compromised")
    result = world.run(lambda ctx: iterations.update(ctx, base.id, revoke), at=later)
    assert result.cascaded
    assert not result.scheduled
    for it, bucket in ((child, "app"), (grandchild, "edge")):

        def read(ctx: Ctx, bucket: str = bucket, it: Iteration = it) -> Iteration:
            return iterations.get(ctx, bucket, iteration_id=it.id, fingerprint="", version=0)

        seen = world.run(read, at=later)
        assert seen.revocation_type is RevocationType.INHERITED
        assert seen.revocation_inherited_from == base.id
        assert seen.revocation_message == "compromised"
        assert seen.revoke_at == later
    # Nothing complete and valid is left in the descendants' buckets.
    assert world.run(lambda ctx: buckets.get(ctx, "app"), at=later).bucket.latest_iteration_id is None

    world.run(lambda ctx: iterations.update(ctx, base.id, IterationChanges(restore=True)), at=later)
    seen = world.run(lambda ctx: iterations.get(ctx, "edge", iteration_id=grandchild.id, fingerprint="", version=0))
    assert seen.revoke_at is None
    assert seen.revocation_type is RevocationType.UNSET


def test_ancestry_follows_the_parents_channel(world: World) -> None:
    b1 = publish(world, "base", "b1")
    prod = world.run(
        lambda ctx: channels.create(ctx, "base", slug="prod", ref=IterationRef(iteration_id=b1.id), restricted=None)
    )
    publish(world, "app", "a1", done("app", source=b1, channel_id=prod.id))

    def parents(ctx: Ctx) -> AncestryStatus | None:
        bucket = lookup.bucket(ctx, "app")
        latest = iterations.get(ctx, "app", iteration_id=bucket.latest_iteration_id or "", fingerprint="", version=0)
        return ancestry.summarize(ancestry.parents(ctx, bucket, latest))

    assert world.run(parents) is AncestryStatus.UP_TO_DATE
    b2 = publish(world, "base", "b2")
    assert world.run(parents) is AncestryStatus.UP_TO_DATE  # the channel still points at b1
    world.run(
        lambda ctx: channels.update(
            ctx, "base", "prod", ref=IterationRef(iteration_id=b2.id), restricted=None, fields=None
        )
    )
    assert world.run(parents) is AncestryStatus.OUT_OF_DATE
    assert world.run(lambda ctx: buckets.get(ctx, "base")).children_status is AncestryStatus.OUT_OF_DATE


def test_the_last_page_has_no_next_token_and_leads_back(world: World) -> None:
    for n in range(5):

        def create(ctx: Ctx, slug: str = f"b{n}") -> object:
            return buckets.create(ctx, slug=slug, description="", labels={})

        world.run(create)
        world.now += timedelta(seconds=1)

    def page(next_token: str = "", previous_token: str = "") -> tuple[list[str], str, str]:
        found = world.run(
            lambda ctx: buckets.list_(
                ctx, page_size=2, next_token=next_token, previous_token=previous_token, order_by=["slug"]
            )
        )
        return [v.bucket.slug for v in found.items], found.next_token, found.previous_token

    first, next1, prev1 = page()
    assert first == ["b0", "b1"]
    assert next1
    assert not prev1
    second, next2, prev2 = page(next1)
    assert second == ["b2", "b3"]
    assert next2
    assert prev2
    last, next3, prev3 = page(next2)
    assert last == ["b4"]
    assert not next3
    assert prev3
    assert page(previous_token=prev3)[0] == ["b2", "b3"]
    assert page(previous_token=prev2)[0] == ["b0", "b1"]


def test_an_iteration_is_found_by_each_identifier(world: World) -> None:
    one = publish(world, "app", "f1")
    two = publish(world, "app", "f2")
    publish(world, "other", "f1")

    def find(ref: IterationRef, bucket: str = "app") -> str | None:
        def work(ctx: Ctx) -> str | None:
            by_bucket = lookup.iteration(ctx, lookup.bucket(ctx, bucket), ref)
            by_slug = lookup.iteration_in_bucket(ctx, bucket, ref)
            assert (by_bucket and by_bucket.id) == (by_slug and by_slug.id)
            return by_bucket.id if by_bucket else None

        return world.run(work)

    assert find(IterationRef(iteration_id=two.id)) == two.id
    assert find(IterationRef(iteration_id=two.id.lower())) == two.id  # ULIDs are case-insensitive
    assert find(IterationRef(fingerprint="f1")) == one.id
    assert find(IterationRef(incremental_version=2)) == two.id
    assert find(IterationRef(fingerprint="f1", incremental_version=2)) == one.id  # the first identifier wins
    assert find(IterationRef(fingerprint="f3")) is None
    assert find(IterationRef(iteration_id=two.id), "other") is None  # another bucket's iteration
    assert world.run(lambda ctx: lookup.iteration_by_id(ctx, one.id)).fingerprint == "f1"
    with pytest.raises(NotFound):
        world.run(lambda ctx: lookup.iteration_by_id(ctx, one.id, bucket_slug="other"))
    with pytest.raises(NotFound):
        world.run(lambda ctx: lookup.iteration_in_bucket(ctx, "nope", IterationRef(fingerprint="f1")))


def test_clock_derived_states_turn_when_the_clock_passes_them(world: World) -> None:
    it = publish(world, "app", "f1")
    due = world.now + timedelta(hours=1)
    world.run(lambda ctx: iterations.update(ctx, it.id, IterationChanges(revoke_at=due, revocation_message="eol")))
    it = world.run(lambda ctx: lookup.iteration_by_id(ctx, it.id))

    state, ctx = world.ctx_result(lambda ctx: status.iteration_status(ctx, it, []), at=due - timedelta(seconds=1))
    assert state is IterationStatus.REVOCATION_SCHEDULED
    assert ctx.valid_until == due
    assert world.run(lambda ctx: status.is_revoked(ctx, it), at=due)
    assert world.run(lambda ctx: status.iteration_status(ctx, it, []), at=due) is IterationStatus.REVOKED

    grace = timedelta(seconds=Rules().heartbeat_grace_seconds)
    beat = world.now
    running, ctx = world.ctx_result(
        lambda ctx: status.effective_status(ctx, BuildStatus.RUNNING, beat), at=beat + grace
    )
    assert running is BuildStatus.RUNNING
    assert ctx.valid_until == beat + grace + timedelta(microseconds=1)
    assert (
        world.run(
            lambda ctx: status.effective_status(ctx, BuildStatus.RUNNING, beat),
            at=beat + grace + timedelta(microseconds=1),
        )
        is BuildStatus.FAILED
    )

    def unfinished(ctx: Ctx) -> IterationStatus:
        fresh = Iteration(
            id="x",
            bucket_id="b",
            bucket_slug="app",
            project_id=ctx.project_id,
            fingerprint="f",
            created_at=beat,
            updated_at=beat,
        )
        return status.iteration_status(ctx, fresh, [status.effective_status(ctx, BuildStatus.RUNNING, beat)])

    assert world.run(unfinished, at=beat) is IterationStatus.RUNNING
    assert world.run(unfinished, at=beat + 2 * grace) is IterationStatus.FAILED
