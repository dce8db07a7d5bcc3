"""CreateBucket, GetBucket, ListBuckets, UpdateBucket, DeleteBucket ("images" in the URLs)."""

from __future__ import annotations

from packyard.domain import buckets as service
from packyard.domain.buckets import BucketView
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateBucketBody, UpdateBucketBody
from packyard.http.hcp_2021.common import paging, route, sorting
from packyard.http.request import Request
from packyard.http.routing import Route


def _bucket(ctx: Ctx, view: BucketView) -> wire.Bucket:
    return wire.bucket(view.bucket, view.latest, ctx.organization_id, view.parents_status, view.children_status)


def create(ctx: Ctx, request: Request) -> object:
    body = request.json(CreateBucketBody)
    view = service.create(
        ctx, slug=body.bucket_slug or "", description=body.description or "", labels=body.labels or {}
    )
    return wire.BucketResponse(bucket=_bucket(ctx, view))


def get(ctx: Ctx, request: Request) -> object:
    view = service.get(ctx, request.params["bucket_slug"], request.query_str("bucket_id"))
    return wire.BucketResponse(bucket=_bucket(ctx, view))


def list_(ctx: Ctx, request: Request) -> object:
    page = service.list_(ctx, order_by=sorting(request), **paging(request))  # type: ignore[arg-type]
    return wire.ListBucketsResponse(
        buckets=[_bucket(ctx, v) for v in page.items],
        pagination=wire.pagination(page.next_token, page.previous_token),
    )


def update(ctx: Ctx, request: Request) -> object:
    body = request.json(UpdateBucketBody)
    view = service.update(
        ctx,
        request.params["bucket_slug"],
        description=body.description,
        labels=body.labels,
        platforms=body.platforms,
    )
    return wire.BucketResponse(bucket=_bucket(ctx, view))


def delete(ctx: Ctx, request: Request) -> object:
    service.delete(ctx, request.params["bucket_slug"])
    return wire.EMPTY


ROUTES: list[Route] = [
    route("PUT", "/images", create, "CreateBucket", Permission.WRITE),
    route("GET", "/images", list_, "ListBuckets", Permission.READ, cache=True),
    route("GET", "/images/{bucket_slug}", get, "GetBucket", Permission.READ, cache=True),
    route("PATCH", "/images/{bucket_slug}", update, "UpdateBucket", Permission.WRITE),
    route("DELETE", "/images/{bucket_slug}", delete, "DeleteBucket", Permission.WRITE),
]
