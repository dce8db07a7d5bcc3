"""Buckets: a named line of images in a project's registry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packyard.domain import ancestry, lookup
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.context import Ctx
from packyard.domain.errors import AlreadyExists, InvalidArgument, NotFound
from packyard.domain.latest import create_managed_channel
from packyard.domain.models import Bucket, Iteration
from packyard.domain.pagination import Kind, Page, PageRequest, SortField, attribute_key, make_page, page_request
from packyard.domain.status import fill_status, refresh_statuses
from packyard.ids import new_ulid

SORTABLE = {"slug": Kind.STR, "created_at": Kind.TIME, "updated_at": Kind.TIME}
DEFAULT_ORDER = (SortField("created_at", descending=True),)


@dataclass(slots=True)
class BucketView:
    bucket: Bucket
    latest: Iteration | None
    parents_status: ancestry.AncestryStatus | None = None
    children_status: ancestry.AncestryStatus | None = None


def _views(ctx: Ctx, buckets: Sequence[Bucket], *, with_ancestry: bool = False) -> list[BucketView]:
    ids = [b.latest_iteration_id for b in buckets if b.latest_iteration_id]
    latest = ctx.uow.iterations.get_many(ctx.project_id, ids) if ids else {}
    builds = ctx.uow.builds.for_iterations(list(latest)) if latest else {}
    views = []
    for bucket in buckets:
        iteration = latest.get(bucket.latest_iteration_id or "")
        if iteration is not None:
            iteration.builds = refresh_statuses(ctx, builds.get(iteration.id, []))
            fill_status(ctx, [iteration])
        view = BucketView(bucket, iteration)
        if with_ancestry:
            view.parents_status = ancestry.summarize(ancestry.parents(ctx, bucket, iteration))
            view.children_status = ancestry.summarize(ancestry.children(ctx, bucket))
        views.append(view)
    return views


def _check_new(ctx: Ctx, slug: str, description: str, labels: Mapping[str, str]) -> Mapping[str, str]:
    check.slug(slug)
    check.text(description, "description", ctx.rules.limits.max_description_length)
    labels = check.labels(labels, "labels", ctx.rules.limits)
    registries.require_active(ctx)
    return labels


def refuse_before_create(ctx: Ctx, *, slug: str, description: str, labels: Mapping[str, str]) -> None:
    """Raise what create() would refuse that reads alone decide: its checks, and a bucket that exists
    already (the answer Packer gets on every publish after a bucket's first), with create's own message.
    Returning means only create can tell; a bucket made meanwhile is still refused there."""
    _check_new(ctx, slug, description, labels)
    if ctx.uow.buckets.get(ctx.project_id, slug) is not None:
        raise AlreadyExists(f"bucket {slug!r} already exists")


def create(ctx: Ctx, *, slug: str, description: str, labels: Mapping[str, str]) -> BucketView:
    labels = _check_new(ctx, slug, description, labels)
    bucket = Bucket(
        id=new_ulid(),
        project_id=ctx.project_id,
        slug=slug,
        description=description,
        labels=dict(labels),
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.uow.buckets.add(bucket)
    create_managed_channel(ctx, bucket)
    return BucketView(bucket, None)


def get(ctx: Ctx, slug: str, bucket_id: str = "") -> BucketView:
    registries.get(ctx)
    bucket = lookup.bucket(ctx, slug)
    if bucket_id and check.ulid(bucket_id, "bucket_id") != bucket.id:
        raise NotFound(f"bucket {slug!r} does not have id {bucket_id}")
    return _views(ctx, [bucket], with_ancestry=True)[0]


def require(ctx: Ctx, slug: str) -> Bucket:
    """The bucket of that slug, or NotFound: for operations about a bucket that answer nothing of it."""
    registries.get(ctx)
    return lookup.bucket(ctx, slug)


def list_(
    ctx: Ctx, *, page_size: int, next_token: str, previous_token: str, order_by: Sequence[str]
) -> Page[BucketView]:
    registries.get(ctx)
    request: PageRequest = page_request(
        size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        order_by=order_by,
        sortable=SORTABLE,
        default_order=DEFAULT_ORDER,
        default_size=ctx.rules.limits.default_page_size,
        max_size=ctx.rules.limits.max_page_size,
    )
    page = make_page(ctx.uow.buckets.page(ctx.project_id, request), request, attribute_key)
    return Page(_views(ctx, page.items), page.next_token, page.previous_token)


def update(
    ctx: Ctx,
    slug: str,
    *,
    description: str | None,
    labels: Mapping[str, str] | None,
    platforms: Sequence[str] | None,
) -> Bucket:
    """Change the bucket; its answer's view (view()) may be read after the commit, outside the write."""
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, slug, for_update=True)
    if description is not None:
        bucket.description = check.text(description, "description", ctx.rules.limits.max_description_length)
    if labels is not None:
        bucket.labels = check.labels(labels, "labels", ctx.rules.limits)
    if platforms is not None:
        if len(platforms) > ctx.rules.limits.max_labels:
            raise InvalidArgument(f"platforms has more than {ctx.rules.limits.max_labels} entries")
        for platform in platforms:
            check.text(platform, "platforms entry", ctx.rules.limits.max_field_length)
        bucket.platforms = list(platforms)
    bucket.updated_at = ctx.now
    ctx.uow.buckets.save(bucket)
    return bucket


def view(ctx: Ctx, bucket: Bucket) -> BucketView:
    """The bucket with its latest iteration (builds and images), as UpdateBucket answers it."""
    return _views(ctx, [bucket])[0]


def delete(ctx: Ctx, slug: str) -> None:
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, slug, for_update=True)
    ctx.uow.buckets.delete(bucket.id)
