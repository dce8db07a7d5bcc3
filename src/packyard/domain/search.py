"""Finding where an artifact came from: the builds (with their iteration and bucket) that produced an
image of an external id such as an AMI id, in the request's project."""

from __future__ import annotations

from dataclasses import dataclass

from packyard.domain import registry as registries
from packyard.domain import revocation
from packyard.domain import validation as check
from packyard.domain.commands import PageQuery
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, Term
from packyard.domain.models import Bucket, Build, Iteration
from packyard.domain.pagination import Kind, Page, SortField, attribute_key, make_page, page_request
from packyard.domain.status import fill_status, refresh_statuses

SORTABLE = {"created_at": Kind.TIME}
DEFAULT_ORDER = (SortField("created_at", descending=True),)


@dataclass(slots=True)
class Found:
    bucket: Bucket
    iteration: Iteration
    build: Build


def artifact(ctx: Ctx, *, external_identifier: str, platform: str, region: str, page: PageQuery) -> Page[Found]:
    registries.get(ctx)
    if not external_identifier:
        raise InvalidArgument("the {image}'s external identifier is required", subject=Term.IMAGE)
    limits = ctx.rules.limits
    check.text(external_identifier, "{image_id}", limits.max_field_length)
    check.text(platform, "{cloud_provider}", limits.max_field_length)
    check.text(region, "region", limits.max_field_length)
    request = page_request(
        size=page.size,
        next_token=page.next_token,
        previous_token=page.previous_token,
        order_by=page.order_by,
        sortable=SORTABLE,
        default_order=DEFAULT_ORDER,
        default_size=limits.default_page_size,
        max_size=limits.max_page_size,
    )
    rows = ctx.uow.builds.with_artifact(ctx.project_id, external_identifier, platform, region, request)
    builds: Page[Build] = make_page(rows, request, attribute_key)
    refresh_statuses(ctx, builds.items)
    iterations = ctx.uow.iterations.get_many(ctx.project_id, sorted({b.iteration_id for b in builds.items}))
    revocation.decorate(ctx, list(iterations.values()))
    every = ctx.uow.builds.for_iterations(list(iterations))
    for it in iterations.values():
        it.builds = refresh_statuses(ctx, every.get(it.id, []))
    fill_status(ctx, list(iterations.values()))
    buckets: dict[str, Bucket] = {}
    found = []
    for build in builds.items:
        iteration = iterations[build.iteration_id]
        bucket = buckets.get(iteration.bucket_id) or ctx.uow.buckets.get_by_id(ctx.project_id, iteration.bucket_id)
        if bucket is not None:  # always, in one transaction
            buckets[bucket.id] = bucket
            found.append(Found(bucket, iteration, build))
    return Page(found, builds.next_token, builds.previous_token)
