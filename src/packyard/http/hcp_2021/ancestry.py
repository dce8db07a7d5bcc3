"""ListBucketAncestry."""

from __future__ import annotations

from packyard.domain import ancestry as service
from packyard.domain.ancestry import Relation
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.common import route
from packyard.http.request import Request
from packyard.http.routing import Route


def relation(r: Relation) -> wire.BucketAncestry:
    current = r.channel_iteration
    return wire.BucketAncestry(
        status=r.status.value,
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


def list_(ctx: Ctx, request: Request) -> object:
    page = service.list_(
        ctx,
        request.params["bucket_slug"],
        kind=request.query_str("type"),
        channel=request.query_str("channel"),
        iteration_id=request.query_str("iteration_id"),
        version=request.query_int("incremental_version", bits=32),
        fingerprint=request.query_str("fingerprint"),
        page_size=request.query_int("pagination.page_size"),
        next_token=request.query_str("pagination.next_page_token"),
        previous_token=request.query_str("pagination.previous_page_token"),
    )
    return wire.ListBucketAncestryResponse(
        relations=[relation(r) for r in page.relations],
        total_count=page.total,
        pagination=wire.pagination(page.next_token, page.previous_token),
    )


ROUTES: list[Route] = [
    route("GET", "/images/{bucket_slug}/ancestry", list_, "ListBucketAncestry", Permission.READ, cache=True),
]
