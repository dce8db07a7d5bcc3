"""ListBucketAncestry."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.ancestry import Relation, RelationPage
from packyard.domain.commands import AncestryQuery
from packyard.domain.models import Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.common import page, route
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


def relation(r: Relation) -> wire.BucketAncestry:
    current = r.channel_iteration
    return wire.BucketAncestry(
        status=wire.ANCESTRY_STATUS_TEXT[r.status],
        parent=wire.RelationParent(
            bucket_slug=r.parent.bucket_slug,
            iteration_id=r.parent.id,
            iteration_incremental_version=r.parent.incremental_version,
            iteration_fingerprint=r.parent.fingerprint,
            channel=r.channel.slug if r.channel else "",
            channel_iteration=wire.RelationChannelIteration(
                id=current.id, incremental_version=current.incremental_version, fingerprint=current.fingerprint
            )
            if current is not None
            else None,
        ),
        child=wire.RelationChild(
            bucket_slug=r.child.bucket_slug,
            iteration_id=r.child.id,
            iteration_incremental_version=r.child.incremental_version,
            iteration_fingerprint=r.child.fingerprint,
        ),
    )


def _decode(request: Request) -> AncestryQuery:
    return AncestryQuery(
        request.params["bucket_slug"],
        kind=request.query_str("type"),
        channel=request.query_str("channel"),
        iteration_id=request.query_str("iteration_id"),
        version=request.query_int("incremental_version", bits=32),
        fingerprint=request.query_str("fingerprint"),
        page=page(request),
    )


def _response(place: Place, found: RelationPage) -> wire.ListBucketAncestryResponse:
    return wire.ListBucketAncestryResponse(
        relations=[relation(r) for r in found.relations],
        total_count=found.total,
        pagination=wire.pagination(found.next_token, found.previous_token),
    )


LIST = Operation(_decode, steps.list_ancestry, _response)

ROUTES: list[Route] = [
    route("GET", "/images/{bucket_slug}/ancestry", LIST, "ListBucketAncestry", Permission.READ, pure=True),
]
