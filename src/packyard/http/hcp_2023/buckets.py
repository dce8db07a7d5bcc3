"""CreateBucket, GetBucket, ListBuckets, UpdateBucket, DeleteBucket; and GetEnforcedBlocksByBucket."""

from __future__ import annotations

from packyard.domain import buckets as service
from packyard.domain.buckets import BucketView
from packyard.domain.commands import BucketChange, BucketListing, BucketName, NewBucket
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.domain.pagination import Page
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import CreateBucketBody, UpdateBucketBody
from packyard.http.hcp_2023.common import empty, page, route
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

# 2023's sort fields, as the domain names them.
SORT_NAMES = {"name": "slug"}


def _bucket(view: BucketView, organization_id: str) -> wire.Bucket:
    return wire.bucket(view.bucket, view.latest, organization_id, view.parents_status, view.children_status)


def _response(place: Place, view: BucketView) -> wire.BucketResponse:
    return wire.BucketResponse(bucket=_bucket(view, place.organization_id))


def _decode_create(request: Request) -> NewBucket:
    body = request.json(CreateBucketBody)
    return NewBucket(body.name or "", body.description or "", body.labels or {})


def _refuse_create(ctx: Ctx, new: NewBucket) -> None:
    service.refuse_before_create(ctx, slug=new.slug, description=new.description, labels=new.labels)


def _create(ctx: Ctx, new: NewBucket) -> BucketView:
    return service.create(ctx, slug=new.slug, description=new.description, labels=new.labels)


def _decode_name(request: Request) -> BucketName:
    return BucketName(request.params["bucket_name"])


def _get(ctx: Ctx, name: BucketName) -> BucketView:
    return service.get(ctx, name.slug)


def _decode_list(request: Request) -> BucketListing:
    return BucketListing(page(request, SORT_NAMES))


def _list(ctx: Ctx, listing: BucketListing) -> Page[BucketView]:
    p = listing.page
    return service.list_(
        ctx, page_size=p.size, next_token=p.next_token, previous_token=p.previous_token, order_by=p.order_by
    )


def _list_response(place: Place, views: Page[BucketView]) -> wire.ListBucketsResponse:
    return wire.ListBucketsResponse(
        buckets=[_bucket(v, place.organization_id) for v in views.items],
        pagination=shared.pagination(views.next_token, views.previous_token),
    )


def _decode_update(request: Request) -> BucketChange:
    body = request.json(UpdateBucketBody)
    return BucketChange(request.params["bucket_name"], body.description, body.labels, body.platforms)


def _update(ctx: Ctx, change: BucketChange) -> BucketView:
    bucket = service.update(
        ctx, change.slug, description=change.description, labels=change.labels, platforms=change.platforms
    )
    return BucketView(bucket, None)  # its latest version is read after the commit (_view)


def _view(ctx: Ctx, written: BucketView) -> BucketView:
    return service.view(ctx, written.bucket)


def _delete(ctx: Ctx, name: BucketName) -> None:
    service.delete(ctx, name.slug)


class EnforcedBlocksResponse(shared.Base, kw_only=True):
    enforced_block_detail: list[shared.Empty]


def _enforced_blocks(ctx: Ctx, name: BucketName) -> None:
    """Enforced blocks don't exist in packyard yet, so no bucket has any; a missing bucket is code 5,
    the one refusal (with 12) that Packer >= 1.15.2 tolerates here."""
    service.require(ctx, name.slug)


def _no_blocks(place: Place, result: None) -> EnforcedBlocksResponse:
    return EnforcedBlocksResponse(enforced_block_detail=[])


CREATE = Operation(_decode_create, _create, _response, precheck=_refuse_create)
GET = Operation(_decode_name, _get, _response)
LIST = Operation(_decode_list, _list, _list_response)
UPDATE = Operation(_decode_update, _update, _response, reread=_view)
DELETE = Operation(_decode_name, _delete, empty)
ENFORCED_BLOCKS = Operation(_decode_name, _enforced_blocks, _no_blocks)

ROUTES: list[Route] = [
    route("PUT", "/buckets", CREATE, "CreateBucket", Permission.WRITE),
    route("GET", "/buckets", LIST, "ListBuckets", Permission.READ, cache=True),
    route("GET", "/buckets/{bucket_name}", GET, "GetBucket", Permission.READ, cache=True),
    route("PATCH", "/buckets/{bucket_name}", UPDATE, "UpdateBucket", Permission.WRITE),
    route("DELETE", "/buckets/{bucket_name}", DELETE, "DeleteBucket", Permission.WRITE),
    route(
        "GET",
        "/enforced_blocks/bucket/{bucket_name}",
        ENFORCED_BLOCKS,
        "GetEnforcedBlocksByBucket",
        Permission.READ,
        cache=True,
    ),
]
