"""Channels: named pointers (`production`, `latest`) at one complete, unrevoked iteration of a bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packyard.domain import lookup, revocation
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.commands import IDENTIFIERS, ChannelField, IterationRef
from packyard.domain.context import Ctx
from packyard.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Term
from packyard.domain.latest import LATEST, record_assignment
from packyard.domain.models import (
    Bucket,
    Channel,
    ChannelAssignment,
    Iteration,
)
from packyard.domain.pagination import Kind, Page, SortField, attribute_key, make_page, page_request
from packyard.domain.status import effective_status, fill_status, is_revoked, iteration_status, refresh_statuses
from packyard.ids import new_ulid

HISTORY_ORDER = (SortField("created_at", descending=True),)


@dataclass(slots=True)
class HistoryPage:
    entries: list[ChannelAssignment]
    count: int
    next_token: str
    previous_token: str
    bucket_slug: str  # the bucket of the channel, as the query named it


def _lookup(ctx: Ctx, bucket: Bucket, ref: IterationRef, name: str = "") -> Iteration:
    """The iteration named by one of the reference's identifiers (code 5 when there is none)."""
    one = ref.only(name) if name else ref
    iteration = lookup.iteration(ctx, bucket, one)
    if iteration is None:
        raise lookup.missing(bucket.slug, one)
    return iteration


def _assignable(ctx: Ctx, iteration: Iteration) -> Iteration:
    if not iteration.complete:
        raise FailedPrecondition(
            "{iteration} {id} is not complete (every build must be DONE) and can't be assigned to a channel",
            subject=Term.ITERATION,
            id=iteration.id,
        )
    if is_revoked(ctx, iteration):
        raise FailedPrecondition(
            "{iteration} {id} is revoked and can't be assigned to a channel", subject=Term.ITERATION, id=iteration.id
        )
    return iteration


def _with_iteration(ctx: Ctx, channels: Sequence[Channel]) -> list[Channel]:
    ids = [c.iteration_id for c in channels if c.iteration_id]
    if not ids:
        return list(channels)
    iterations = ctx.uow.iterations.get_many(ctx.project_id, ids)
    builds = ctx.uow.builds.for_iterations(list(iterations))
    for it in iterations.values():
        it.builds = refresh_statuses(ctx, builds.get(it.id, []))
    revocation.decorate(ctx, list(iterations.values()))
    fill_status(ctx, list(iterations.values()))
    for channel in channels:
        channel.iteration = iterations.get(channel.iteration_id or "")
    return list(channels)


def create(ctx: Ctx, bucket_slug: str, *, slug: str, ref: IterationRef, restricted: bool | None) -> Channel:
    check.slug(slug, "channel slug")
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    if slug == LATEST:
        raise AlreadyExists(f"channel {LATEST!r} is managed by packyard and exists in every bucket")
    iteration = None
    if ref.any():
        iteration = _assignable(ctx, _lookup(ctx, bucket, ref.first()))
    channel = Channel(
        id=new_ulid(),
        bucket_id=bucket.id,
        bucket_slug=bucket.slug,
        project_id=ctx.project_id,
        slug=slug,
        restricted=bool(restricted),
        author_id=ctx.author_id,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.uow.channels.add(channel)
    if iteration is not None:
        record_assignment(ctx, channel, iteration)
    return _with_iteration(ctx, [channel])[0]


def get(ctx: Ctx, bucket_slug: str, slug: str) -> Channel:
    registries.get(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    return _with_iteration(ctx, [lookup.channel(ctx, bucket, slug)])[0]


def list_(ctx: Ctx, bucket_slug: str) -> list[Channel]:
    registries.get(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    return _with_iteration(ctx, [c for c in ctx.uow.channels.for_bucket(bucket.id) if lookup.visible(ctx, c)])


def update(
    ctx: Ctx,
    bucket_slug: str,
    slug: str,
    *,
    ref: IterationRef,
    restricted: bool | None,
    fields: frozenset[ChannelField] | None,
) -> Channel:
    """Change what `fields` lists (see commands.ChannelChange); without a list, what is given."""
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    channel = lookup.channel(ctx, bucket, slug, for_update=True)
    target: Iteration | None = None
    if fields is not None:
        if ChannelField.RESTRICTION in fields and restricted is None:
            raise InvalidArgument("the restriction is to change, but no restriction is given")
        assign = ChannelField.ITERATION in fields
        restrict = ChannelField.RESTRICTION in fields
        if assign and ref.any():
            found = [_lookup(ctx, bucket, ref, n) for n in IDENTIFIERS if ref.given(n)]
            if len({i.id for i in found}) > 1:
                raise InvalidArgument(
                    "the identifiers listed in the mask name different {iterations}", subject=Term.ITERATION
                )
            target = _assignable(ctx, found[0])
    else:
        # Without a list the first identifier given wins; none at all clears the channel.
        assign = not channel.managed or ref.any()
        restrict = restricted is not None
        if ref.any():
            target = _assignable(ctx, _lookup(ctx, bucket, ref.first()))
        elif channel.managed and not restrict:
            raise FailedPrecondition(f"channel {LATEST!r} is managed by packyard and can't be cleared")

    if assign and channel.managed:
        raise FailedPrecondition(
            "channel {slug!r} is managed by packyard: it follows the newest complete {iteration} "
            "and only its restriction can change",
            subject=Term.ITERATION,
            slug=channel.slug,
        )
    if restrict and restricted is not None:
        channel.restricted = restricted
        channel.author_id = ctx.author_id
        channel.updated_at = ctx.now
        ctx.uow.channels.save(channel)
    if assign:
        record_assignment(ctx, channel, target)
    return _with_iteration(ctx, [channel])[0]


@dataclass(slots=True)
class Copied:
    source: Channel
    target: Channel


def copy(ctx: Ctx, bucket_slug: str, *, source: str, target: str) -> Copied:
    """Point the target channel at what the source channel points to (nothing, when it points to
    nothing). The managed channel can't be a target; a revoked or incomplete version can't be copied."""
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    if not source or not target:
        raise InvalidArgument("both a source and a target channel are required")
    origin = lookup.channel(ctx, bucket, source)
    channel = lookup.channel(ctx, bucket, target, for_update=True)
    if channel.managed:
        raise FailedPrecondition(
            "channel {slug!r} is managed by packyard: it follows the newest complete {iteration}",
            subject=Term.ITERATION,
            slug=channel.slug,
        )
    iteration = None
    if origin.iteration_id:
        iteration = _assignable(ctx, _lookup(ctx, bucket, IterationRef(iteration_id=origin.iteration_id)))
    record_assignment(ctx, channel, iteration)
    both = _with_iteration(ctx, [origin, channel])
    return Copied(both[0], both[1])


def delete(ctx: Ctx, bucket_slug: str, slug: str) -> None:
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    channel = lookup.channel(ctx, bucket, slug, for_update=True)
    if channel.managed:
        raise FailedPrecondition(f"channel {channel.slug!r} is managed by packyard and can't be deleted")
    ctx.uow.channels.delete(channel.id)


def history(
    ctx: Ctx,
    bucket_slug: str,
    slug: str,
    *,
    page_size: int,
    next_token: str,
    previous_token: str,
    count_limit: int | None = None,
) -> HistoryPage:
    """A page of the channel's moves, newest first, and how many there are (counted up to count_limit,
    when given: the console's page, which need not count a million moves to say there are many)."""
    registries.get(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    channel = lookup.channel(ctx, bucket, slug)
    limits = ctx.rules.limits
    request = page_request(
        size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        order_by=[],
        sortable={"created_at": Kind.TIME},
        default_order=HISTORY_ORDER,
        default_size=limits.default_page_size,
        max_size=limits.max_page_size,
    )
    page: Page[ChannelAssignment] = make_page(ctx.uow.channels.history(channel.id, request), request, attribute_key)
    ids = sorted({e.iteration_id for e in page.items if e.iteration_id})
    iterations = ctx.uow.iterations.get_many(ctx.project_id, ids) if ids else {}
    states = ctx.uow.iterations.build_states(list(iterations)) if iterations else {}
    for entry in page.items:
        it = iterations.get(entry.iteration_id or "")
        if it is not None:
            statuses = [effective_status(ctx, s, beat) for _, s, beat in states.get(it.id, [])]
            entry.status = iteration_status(ctx, it, statuses)
    count = ctx.uow.channels.history_count(channel.id, count_limit)
    return HistoryPage(page.items, count, page.next_token, page.previous_token, bucket_slug)


def unassign_deleted(ctx: Ctx, iteration: Iteration) -> list[Channel]:
    """Channels pointing at an iteration that is being deleted become unassigned (with history)."""
    moved = []
    for channel in ctx.uow.channels.pointing_at(iteration.id, for_update=True):
        if not channel.managed:
            record_assignment(ctx, channel, None)
            moved.append(channel)
    return moved
