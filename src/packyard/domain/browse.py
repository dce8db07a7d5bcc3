"""What the web console's pages read (console/browse.py): a project's buckets with their channel
pointers, a bucket with its versions, channels, ancestry and recent activity, one version whole, and
search by bucket name, fingerprint, version id or an artifact's external id.

Composed from the services the API uses (buckets, iterations, channels, ancestry, search) so that the
same rules hold: restricted channels are hidden from viewers, statuses are derived at the request's
time. Every read is bounded: a page of versions, a few recent changes, never a bucket's whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from packyard.domain import ancestry, buckets, channels, iterations, lookup, revocation, search
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.ancestry import Relation
from packyard.domain.buckets import BucketView
from packyard.domain.builds import with_metadata
from packyard.domain.channels import HistoryPage
from packyard.domain.commands import IterationRef, PageQuery
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, NotFound
from packyard.domain.iterations import ListedIteration
from packyard.domain.models import Bucket, Channel, Iteration, Job, Sbom
from packyard.domain.pagination import Page, PageRequest, SortField
from packyard.domain.search import Found
from packyard.domain.status import fill_status, is_revoked, refresh_statuses
from packyard.ids import is_ulid

ACTIVITY = 15  # recent changes shown on a bucket's page
HISTORY_COUNTED = 10_000  # a channel's moves are counted up to one more than this
SEARCH_LIMIT = 50
MAX_QUERY = 200


@dataclass(slots=True)
class ListedBucket:
    view: BucketView
    channels: list[Channel]  # visible to the actor, each with `iteration` (what it points to) filled


def bucket_list(ctx: Ctx, *, page_size: int, next_token: str, previous_token: str) -> Page[ListedBucket]:
    """A page of the project's buckets (newest first), each with its latest version and channels."""
    page = buckets.list_(ctx, page_size=page_size, next_token=next_token, previous_token=previous_token, order_by=[])
    return Page(_with_channels(ctx, page.items), page.next_token, page.previous_token)


def _with_channels(ctx: Ctx, views: Sequence[BucketView]) -> list[ListedBucket]:
    found = {
        v.bucket.id: [c for c in ctx.uow.channels.for_bucket(v.bucket.id) if lookup.visible(ctx, c)] for v in views
    }
    ids = sorted({c.iteration_id for cs in found.values() for c in cs if c.iteration_id})
    pointed = ctx.uow.iterations.get_many(ctx.project_id, ids) if ids else {}
    for cs in found.values():
        for c in cs:
            c.iteration = pointed.get(c.iteration_id or "")
    return [ListedBucket(v, found[v.bucket.id]) for v in views]


@dataclass(slots=True)
class SearchResult:
    query: str
    buckets: list[ListedBucket] = field(default_factory=list)
    versions: list[Iteration] = field(default_factory=list)  # by fingerprint or id
    artifacts: list[Found] = field(default_factory=list)


def find(ctx: Ctx, query: str) -> SearchResult:
    """Buckets whose name contains the query, the versions of that fingerprint or id, and the
    versions holding an artifact of that external id (an AMI id, an image name)."""
    registries.get(ctx)
    text = check.text(query.strip(), "the search", MAX_QUERY)
    result = SearchResult(text)
    if not text:
        return result
    matched = ctx.uow.buckets.matching(ctx.project_id, text, SEARCH_LIMIT)
    result.buckets = _with_channels(ctx, [buckets.view(ctx, b) for b in matched])
    versions = ctx.uow.iterations.with_fingerprint(ctx.project_id, text, SEARCH_LIMIT)
    if is_ulid(text) and not versions:
        by_id = ctx.uow.iterations.get_in_project(ctx.project_id, text.upper())
        versions = [by_id] if by_id is not None else []
    _decorate(ctx, versions)
    result.versions = versions
    found = search.artifact(ctx, external_identifier=text, platform="", region="", page=PageQuery(SEARCH_LIMIT))
    result.artifacts = found.items
    return result


def _decorate(ctx: Ctx, found: list[Iteration]) -> None:
    every = ctx.uow.builds.for_iterations([i.id for i in found]) if found else {}
    for it in found:
        it.builds = refresh_statuses(ctx, every.get(it.id, []))
    revocation.decorate(ctx, found)
    fill_status(ctx, found)


@dataclass(slots=True)
class Activity:
    at: datetime
    what: str  # created, completed, revoked, revocation_scheduled, assigned, unassigned
    who: str
    version: Iteration | None = None  # the version changed (created, completed, revoked)
    channel: str = ""  # assigned, unassigned
    number: int = 0  # the version number a channel was pointed at
    iteration_id: str = ""
    message: str = ""


@dataclass(slots=True)
class BucketPage:
    view: BucketView
    versions: Page[ListedIteration]
    channels: list[Channel]
    parents: list[Relation]
    children: list[Relation]
    activity: list[Activity]


def bucket_page(ctx: Ctx, slug: str, *, page_size: int, next_token: str, previous_token: str) -> BucketPage:
    registries.get(ctx)
    bucket = _bucket(ctx, slug)
    view = buckets.view(ctx, bucket)
    versions = iterations.list_(
        ctx,
        slug,
        page_size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        order_by=[],
        with_builds=True,
    )
    shown = channels.list_(ctx, slug)
    parents = ancestry.parents(ctx, bucket, view.latest)
    children = ancestry.children(ctx, bucket)
    return BucketPage(view, versions, shown, parents, children, activity(ctx, bucket, shown))


def _bucket(ctx: Ctx, slug: str) -> Bucket:
    """The bucket a path names: a name that can't be a bucket's is not found, as a missing one."""
    try:
        return lookup.bucket(ctx, slug)
    except InvalidArgument:
        raise NotFound(f"bucket {slug[:80]!r} does not exist in project {ctx.project_id}") from None


_RECENT = PageRequest(size=ACTIVITY, order=(SortField("updated_at", True), SortField("id", True)))
_HISTORY = PageRequest(size=ACTIVITY, order=(SortField("created_at", True), SortField("id", True)))


def activity(ctx: Ctx, bucket: Bucket, shown: Sequence[Channel]) -> list[Activity]:
    """The bucket's latest changes: the versions changed most recently (as each stands now: created,
    completed, revoked or scheduled for it) and the latest moves of its visible channels, newest first.
    Bounded: ACTIVITY rows from each, through the indexes on (bucket, updated_at) and (channel, time)."""
    events: list[Activity] = []
    for it in ctx.uow.iterations.page(bucket.id, _RECENT)[:ACTIVITY]:
        if it.revoke_at is not None and is_revoked(ctx, it):
            events.append(Activity(it.revoke_at, "revoked", it.revocation_author, it, message=it.revocation_message))
        elif it.revoke_at is not None:
            events.append(
                Activity(it.updated_at, "revocation_scheduled", it.revocation_author, it, message=it.revocation_message)
            )
        elif it.complete:
            events.append(Activity(it.updated_at, "completed", it.author_id, it))
        else:
            events.append(Activity(it.created_at, "created", it.author_id, it))
    for channel in shown:
        for entry in ctx.uow.channels.history(channel.id, _HISTORY)[:ACTIVITY]:
            what = "assigned" if entry.iteration_id else "unassigned"
            events.append(
                Activity(
                    entry.created_at,
                    what,
                    entry.author_id,
                    channel=channel.slug,
                    number=entry.iteration_version,
                    iteration_id=entry.iteration_id or "",
                )
            )
    events.sort(key=lambda e: e.at, reverse=True)
    return events[:ACTIVITY]


@dataclass(slots=True)
class VersionPage:
    bucket: Bucket
    version: Iteration
    parents: list[Relation]
    channels: list[Channel]  # the bucket's visible channels that point at this version
    sboms: dict[str, list[Sbom]]  # by build id
    scheduled: list[Job]  # its scheduled revocations, newest first


def version_page(ctx: Ctx, slug: str, iteration_id: str) -> VersionPage:
    registries.get(ctx)
    bucket = _bucket(ctx, slug)
    try:
        ulid = check.ulid(iteration_id, "{iteration_id}")
    except InvalidArgument:
        ulid = ""
    found = ctx.uow.iterations.get(bucket.id, iteration_id=ulid) if ulid else None
    if found is None:
        raise lookup.missing(slug, IterationRef(iteration_id=iteration_id[:40]))
    found.builds = with_metadata(ctx, refresh_statuses(ctx, ctx.uow.builds.for_iteration(found.id)))
    revocation.decorate(ctx, [found])
    fill_status(ctx, [found])
    pointing = [c for c in channels.list_(ctx, slug) if c.iteration_id == found.id]
    sboms = {b.id: ctx.uow.sboms.for_build(b.id) for b in found.builds}
    return VersionPage(
        bucket,
        found,
        ancestry.parents(ctx, bucket, found),
        pointing,
        {k: v for k, v in sboms.items() if v},
        ctx.uow.jobs.for_iteration(found.id, ACTIVITY),
    )


@dataclass(slots=True)
class ChannelPage:
    bucket: Bucket
    channel: Channel
    history: HistoryPage


def channel_page(
    ctx: Ctx, slug: str, channel_slug: str, *, page_size: int, next_token: str, previous_token: str
) -> ChannelPage:
    """A channel and a page of its assignment history; a restricted channel is not found by viewers."""
    registries.get(ctx)
    bucket = _bucket(ctx, slug)
    try:
        check.slug(channel_slug, "channel slug")
    except InvalidArgument:
        raise NotFound(f"channel {channel_slug[:80]!r} does not exist in bucket {bucket.slug!r}") from None
    channel = channels.get(ctx, slug, channel_slug)
    history = channels.history(
        ctx,
        slug,
        channel_slug,
        page_size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        count_limit=HISTORY_COUNTED + 1,
    )
    return ChannelPage(bucket, channel, history)
