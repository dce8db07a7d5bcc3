"""ListBucketAncestry."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.ancestry import Relation, RelationPage
from packyard.domain.commands import AncestryQuery
from packyard.domain.models import Permission
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.common import page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

# BucketAncestryType, in HashiCorp's order, as the domain names the kinds of relation ("" is both).
ANCESTRY_TYPE = {"ANCESTRY_TYPE_UNSET": "", "ANCESTRY_TYPE_PARENTS": "parents", "ANCESTRY_TYPE_CHILDREN": "children"}


def relation(r: Relation) -> wire.BucketAncestry:
    current = r.channel_iteration
    return wire.BucketAncestry(
        status=wire.ANCESTRY_STATUS_TEXT[r.status],
        parent=wire.Parent(
            bucket_name=r.parent.bucket_slug,
            version_name=wire.version_name(r.parent),
            version_id=r.parent.id,
            version_fingerprint=r.parent.fingerprint,
            channel_name=r.channel.slug if r.channel else "",
            channel_version=wire.ChannelVersion(
                id=current.id, name=wire.version_name(current), fingerprint=current.fingerprint
            )
            if current is not None
            else None,
        ),
        child=wire.Child(
            bucket_name=r.child.bucket_slug,
            version_name=wire.version_name(r.child),
            version_id=r.child.id,
            version_fingerprint=r.child.fingerprint,
        ),
    )


def _decode(request: Request) -> AncestryQuery:
    raw = request.query_str("type")
    # By name or by the enum's number (grpc-gateway takes both); only short ASCII digits are a number.
    given: str | int | None = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else raw or None
    return AncestryQuery(
        request.params["bucket_name"],
        kind=wire_choice(ANCESTRY_TYPE, given, "type") or "",
        channel=request.query_str("channel_name"),
        fingerprint=request.query_str("version_fingerprint"),
        page=page(request),
    )


def _response(place: Place, found: RelationPage) -> wire.ListBucketAncestryResponse:
    return wire.ListBucketAncestryResponse(
        relations=[relation(r) for r in found.relations],
        total_count=found.total,
        pagination=shared.pagination(found.next_token, found.previous_token),
    )


LIST = Operation(_decode, steps.list_ancestry, _response)

ROUTES: list[Route] = [
    route("GET", "/buckets/{bucket_name}/ancestry", LIST, "ListBucketAncestry", Permission.READ, pure=True),
]
