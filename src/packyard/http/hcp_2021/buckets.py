"""CreateBucket, GetBucket, ListBuckets, UpdateBucket, DeleteBucket ("images" in the URLs)."""

from __future__ import annotations

import functools
from typing import Any

from packyard.domain import buckets as service
from packyard.domain.buckets import BucketView
from packyard.domain.context import Ctx
from packyard.domain.models import Bucket, Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateBucketBody, UpdateBucketBody
from packyard.http.hcp_2021.common import decoded, paging, route, sorting
from packyard.http.request import Request
from packyard.http.routing import Deferred, ReadAfter, Route


def _bucket(view: BucketView, organization_id: str) -> wire.Bucket:
    return wire.bucket(view.bucket, view.latest, organization_id, view.parents_status, view.children_status)


def _response(view: BucketView, organization_id: str) -> wire.BucketResponse:
    return wire.BucketResponse(bucket=_bucket(view, organization_id))


def _prepare_create(request: Request) -> dict[str, Any]:
    """CreateBucket's arguments, for its early refusal and for the write alike."""
    body = request.json(CreateBucketBody)
    return {"slug": body.bucket_slug or "", "description": body.description or "", "labels": body.labels or {}}


def refuse_create(ctx: Ctx, request: Request) -> None:
    service.refuse_before_create(ctx, **request.prepared)


def create(ctx: Ctx, request: Request) -> object:
    return Deferred(_response, service.create(ctx, **request.prepared), ctx.organization_id)


def get(ctx: Ctx, request: Request) -> object:
    view = service.get(ctx, request.params["bucket_slug"], request.query_str("bucket_id"))
    return _response(view, ctx.organization_id)


def list_(ctx: Ctx, request: Request) -> object:
    page = service.list_(ctx, order_by=sorting(request), **paging(request))  # type: ignore[arg-type]
    return wire.ListBucketsResponse(
        buckets=[_bucket(v, ctx.organization_id) for v in page.items],
        pagination=wire.pagination(page.next_token, page.previous_token),
    )


def update(ctx: Ctx, request: Request) -> object:
    body: UpdateBucketBody = request.prepared
    bucket = service.update(
        ctx,
        request.params["bucket_slug"],
        description=body.description,
        labels=body.labels,
        platforms=body.platforms,
    )
    return ReadAfter(functools.partial(_view, bucket))


def _view(bucket: Bucket, ctx: Ctx) -> Deferred:
    """UpdateBucket's answer: the bucket with its latest iteration, read after the write (ReadAfter)."""
    return Deferred(_response, service.view(ctx, bucket), ctx.organization_id)


def delete(ctx: Ctx, request: Request) -> object:
    service.delete(ctx, request.params["bucket_slug"])
    return wire.EMPTY


ROUTES: list[Route] = [
    route(
        "PUT",
        "/images",
        create,
        "CreateBucket",
        Permission.WRITE,
        prepare=_prepare_create,
        refuse_early=refuse_create,
    ),
    route("GET", "/images", list_, "ListBuckets", Permission.READ, cache=True),
    route("GET", "/images/{bucket_slug}", get, "GetBucket", Permission.READ, cache=True),
    route(
        "PATCH", "/images/{bucket_slug}", update, "UpdateBucket", Permission.WRITE, prepare=decoded(UpdateBucketBody)
    ),
    route("DELETE", "/images/{bucket_slug}", delete, "DeleteBucket", Permission.WRITE),
]
