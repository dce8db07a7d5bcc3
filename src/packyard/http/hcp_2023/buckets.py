"""CreateBucket, GetBucket, ListBuckets, UpdateBucket, DeleteBucket; and GetEnforcedBlocksByBucket."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.buckets import BucketView
from packyard.domain.commands import BucketChange, BucketListing, BucketName, NewBucket
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


def _decode_name(request: Request) -> BucketName:
    return BucketName(request.params["bucket_name"])


def _decode_list(request: Request) -> BucketListing:
    return BucketListing(page(request, SORT_NAMES))


def _list_response(place: Place, views: Page[BucketView]) -> wire.ListBucketsResponse:
    return wire.ListBucketsResponse(
        buckets=[_bucket(v, place.organization_id) for v in views.items],
        pagination=shared.pagination(views.next_token, views.previous_token),
    )


def _decode_update(request: Request) -> BucketChange:
    body = request.json(UpdateBucketBody)
    return BucketChange(request.params["bucket_name"], body.description, body.labels, body.platforms)


class EnforcedBlocksResponse(shared.Base, kw_only=True):
    enforced_block_detail: list[shared.Empty]


def _no_blocks(place: Place, result: None) -> EnforcedBlocksResponse:
    """Enforced blocks don't exist in packyard yet, so no bucket has any; a missing bucket
    (steps.require_bucket) is code 5, the one refusal (with 12) that Packer >= 1.15.2 tolerates here."""
    return EnforcedBlocksResponse(enforced_block_detail=[])


CREATE = Operation(_decode_create, steps.create_bucket, _response, precheck=steps.refuse_bucket)
GET = Operation(_decode_name, steps.get_bucket, _response)
LIST = Operation(_decode_list, steps.list_buckets, _list_response)
UPDATE = Operation(_decode_update, steps.update_bucket, _response, reread=steps.view_bucket)
DELETE = Operation(_decode_name, steps.delete_bucket, empty)
ENFORCED_BLOCKS = Operation(_decode_name, steps.require_bucket, _no_blocks)

ROUTES: list[Route] = [
    route("PUT", "/buckets", CREATE, "CreateBucket", Permission.WRITE),
    route("GET", "/buckets", LIST, "ListBuckets", Permission.READ, pure=True),
    route("GET", "/buckets/{bucket_name}", GET, "GetBucket", Permission.READ, pure=True),
    route("PATCH", "/buckets/{bucket_name}", UPDATE, "UpdateBucket", Permission.WRITE),
    route("DELETE", "/buckets/{bucket_name}", DELETE, "DeleteBucket", Permission.WRITE),
    route(
        "GET",
        "/enforced_blocks/bucket/{bucket_name}",
        ENFORCED_BLOCKS,
        "GetEnforcedBlocksByBucket",
        Permission.READ,
        pure=True,
    ),
]
