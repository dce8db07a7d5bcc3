"""CreateBucket, GetBucket, ListBuckets, UpdateBucket, DeleteBucket ("images" in the URLs)."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.buckets import BucketView
from packyard.domain.commands import BucketChange, BucketListing, BucketName, NewBucket
from packyard.domain.models import Permission
from packyard.domain.pagination import Page
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateBucketBody, UpdateBucketBody
from packyard.http.hcp_2021.common import empty, page, route
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


def _bucket(view: BucketView, organization_id: str) -> wire.Bucket:
    return wire.bucket(view.bucket, view.latest, organization_id, view.parents_status, view.children_status)


def _response(place: Place, view: BucketView) -> wire.BucketResponse:
    return wire.BucketResponse(bucket=_bucket(view, place.organization_id))


def _decode_create(request: Request) -> NewBucket:
    body = request.json(CreateBucketBody)
    return NewBucket(body.bucket_slug or "", body.description or "", body.labels or {})


def _decode_name(request: Request) -> BucketName:
    return BucketName(request.params["bucket_slug"], request.query_str("bucket_id"))


def _decode_list(request: Request) -> BucketListing:
    return BucketListing(page(request))


def _list_response(place: Place, views: Page[BucketView]) -> wire.ListBucketsResponse:
    return wire.ListBucketsResponse(
        buckets=[_bucket(v, place.organization_id) for v in views.items],
        pagination=wire.pagination(views.next_token, views.previous_token),
    )


def _decode_update(request: Request) -> BucketChange:
    body = request.json(UpdateBucketBody)
    return BucketChange(request.params["bucket_slug"], body.description, body.labels, body.platforms)


CREATE = Operation(_decode_create, steps.create_bucket, _response, precheck=steps.refuse_bucket)
GET = Operation(_decode_name, steps.get_bucket, _response)
LIST = Operation(_decode_list, steps.list_buckets, _list_response)
UPDATE = Operation(_decode_update, steps.update_bucket, _response, reread=steps.view_bucket)
DELETE = Operation(_decode_name, steps.delete_bucket, empty)

ROUTES: list[Route] = [
    route("PUT", "/images", CREATE, "CreateBucket", Permission.WRITE),
    route("GET", "/images", LIST, "ListBuckets", Permission.READ, pure=True),
    route("GET", "/images/{bucket_slug}", GET, "GetBucket", Permission.READ, pure=True),
    route("PATCH", "/images/{bucket_slug}", UPDATE, "UpdateBucket", Permission.WRITE),
    route("DELETE", "/images/{bucket_slug}", DELETE, "DeleteBucket", Permission.WRITE),
]
