"""CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel, ListChannelHistory."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.channels import HistoryPage
from packyard.domain.commands import (
    IDENTIFIERS,
    ChannelChange,
    ChannelField,
    ChannelHistoryQuery,
    ChannelName,
    IterationRef,
    NewChannel,
)
from packyard.domain.errors import InvalidArgument
from packyard.domain.models import Channel, Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateChannelBody, UpdateChannelBody
from packyard.http.hcp_2021.common import empty, page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

# UpdateChannel's field mask: its paths (either spelling) and the identifier each names.
MASK_PATHS = {
    "iterationid": "iteration_id",
    "iteration_id": "iteration_id",
    "fingerprint": "fingerprint",
    "incrementalversion": "incremental_version",
    "incremental_version": "incremental_version",
    "restriction": "restriction",
}


def parse_mask(mask: str) -> list[str]:
    paths: list[str] = []
    for raw in mask.split(","):
        name = raw.strip()
        if not name:
            continue
        key = MASK_PATHS.get(name.lower())
        if key is None:
            raise InvalidArgument(
                f"mask path {name[:40]!r} is not one of: iterationId, fingerprint, incrementalVersion, restriction"
            )
        if key not in paths:
            paths.append(key)
    return paths


def _masked(
    mask: str, ref: IterationRef, restricted: bool | None
) -> tuple[IterationRef, frozenset[ChannelField] | None]:
    """The mask as the domain takes it: which fields change, and the listed identifiers' values.
    Without a mask (None) the domain changes what the body gives."""
    paths = parse_mask(mask)
    if not paths:
        return ref, None
    if "restriction" in paths and restricted is None:
        raise InvalidArgument("the mask lists restriction, so restriction must be RESTRICTED or UNRESTRICTED")
    named = [p for p in paths if p in IDENTIFIERS]
    given = [p for p in named if ref.given(p)]
    if given and len(given) != len(named):
        missing = ", ".join(p for p in named if p not in given)
        raise InvalidArgument(f"the mask lists {missing} without a value; give every listed identifier")
    fields = {ChannelField.ITERATION} if named else set()
    if "restriction" in paths:
        fields.add(ChannelField.RESTRICTION)
    listed = IterationRef(**{p: getattr(ref, p) for p in given})
    return listed, frozenset(fields)


def _ref(body: CreateChannelBody | UpdateChannelBody) -> IterationRef:
    return IterationRef(
        iteration_id=body.iteration_id or "",
        fingerprint=body.fingerprint or "",
        incremental_version=body.incremental_version or 0,
    )


def _response(place: Place, channel: Channel) -> wire.ChannelResponse:
    return wire.ChannelResponse(channel=wire.channel(channel, place.organization_id))


def _decode_create(request: Request) -> NewChannel:
    body = request.json(CreateChannelBody)
    restricted = wire_choice(wire.RESTRICTION, body.restriction, "restriction")
    return NewChannel(request.params["bucket_slug"], body.slug or "", _ref(body), restricted)


def _decode_name(request: Request) -> ChannelName:
    return ChannelName(request.params["bucket_slug"], request.params["slug"])


def _decode_bucket(request: Request) -> str:
    return request.params["bucket_slug"]


def _list_response(place: Place, channels: list[Channel]) -> wire.ListChannelsResponse:
    return wire.ListChannelsResponse(channels=[wire.channel(c, place.organization_id) for c in channels])


def _decode_update(request: Request) -> ChannelChange:
    body = request.json(UpdateChannelBody)
    restricted = wire_choice(wire.RESTRICTION, body.restriction, "restriction")
    ref, fields = _masked(body.mask or "", _ref(body), restricted)
    return ChannelChange(request.params["bucket_slug"], request.params["slug"], ref, restricted, fields)


def _decode_history(request: Request) -> ChannelHistoryQuery:
    return ChannelHistoryQuery(request.params["bucket_slug"], request.params["slug"], page(request))


def _history_response(place: Place, history: HistoryPage) -> wire.ListChannelHistoryResponse:
    return wire.ListChannelHistoryResponse(
        history=[wire.assignment(a) for a in history.entries],
        count=history.count,
        pagination=wire.pagination(history.next_token, history.previous_token),
    )


CREATE = Operation(_decode_create, steps.create_channel, _response)
GET = Operation(_decode_name, steps.get_channel, _response)
LIST = Operation(_decode_bucket, steps.list_channels, _list_response)
UPDATE = Operation(_decode_update, steps.update_channel, _response)
DELETE = Operation(_decode_name, steps.delete_channel, empty)
HISTORY = Operation(_decode_history, steps.channel_history, _history_response)

CHANNEL = "/images/{bucket_slug}/channels/{slug}"
ROUTES: list[Route] = [
    route("POST", "/images/{bucket_slug}/channels", CREATE, "CreateChannel", Permission.WRITE),
    route("GET", "/images/{bucket_slug}/channels", LIST, "ListChannels", Permission.READ, pure=True),
    route("GET", CHANNEL, GET, "GetChannel", Permission.READ, pure=True),
    route("PATCH", CHANNEL, UPDATE, "UpdateChannel", Permission.WRITE),
    route("DELETE", CHANNEL, DELETE, "DeleteChannel", Permission.WRITE),
    route("GET", CHANNEL + "/history", HISTORY, "ListChannelHistory", Permission.READ, pure=True),
]
