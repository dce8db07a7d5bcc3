"""CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel, AssignChannelVersion,
ListChannelAssignmentHistory."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.channels import Copied, HistoryPage
from packyard.domain.commands import (
    ChannelChange,
    ChannelCopy,
    ChannelField,
    ChannelHistoryQuery,
    ChannelName,
    IterationRef,
    NewChannel,
)
from packyard.domain.errors import InvalidArgument
from packyard.domain.models import Channel, Permission
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import AssignChannelVersionBody, CreateChannelBody, UpdateChannelBody
from packyard.http.hcp_2023.common import empty, page, route
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

# UpdateChannel's field mask: its paths (camelCase as the clients send them, or snake_case).
MASK_PATHS = {
    "versionfingerprint": ChannelField.ITERATION,
    "version_fingerprint": ChannelField.ITERATION,
    "restricted": ChannelField.RESTRICTION,
}


def parse_mask(mask: str) -> frozenset[ChannelField]:
    """The fields an update changes. A mask is required: a masked field that is absent from the body
    means false or empty (the clients leave both out when they are), so `versionFingerprint` alone
    unassigns and `restricted` alone unrestricts."""
    fields: set[ChannelField] = set()
    for raw in mask.split(","):
        name = raw.strip()
        if not name:
            continue
        field = MASK_PATHS.get(name.lower())
        if field is None:
            raise InvalidArgument(f"update_mask path {name[:40]!r} is not one of: versionFingerprint, restricted")
        fields.add(field)
    if not fields:
        raise InvalidArgument("update_mask is required: versionFingerprint, restricted, or both")
    return frozenset(fields)


def _response(place: Place, channel: Channel) -> wire.ChannelResponse:
    return wire.ChannelResponse(channel=wire.channel(channel, place.organization_id))


def _decode_create(request: Request) -> NewChannel:
    body = request.json(CreateChannelBody)
    ref = IterationRef(fingerprint=body.version_fingerprint or "")
    return NewChannel(request.params["bucket_name"], body.name or "", ref, body.restricted)


def _decode_name(request: Request) -> ChannelName:
    return ChannelName(request.params["bucket_name"], request.params["channel_name"])


def _decode_bucket(request: Request) -> str:
    return request.params["bucket_name"]


def _list_response(place: Place, channels: list[Channel]) -> wire.ListChannelsResponse:
    return wire.ListChannelsResponse(channels=[wire.channel(c, place.organization_id) for c in channels])


def _decode_update(request: Request) -> ChannelChange:
    body = request.json(UpdateChannelBody)
    fields = parse_mask(body.update_mask or "")
    ref = IterationRef()
    if ChannelField.ITERATION in fields:
        ref = IterationRef(fingerprint=body.version_fingerprint or "")
    restricted = bool(body.restricted) if ChannelField.RESTRICTION in fields else None
    return ChannelChange(request.params["bucket_name"], request.params["channel_name"], ref, restricted, fields)


def _decode_assign(request: Request) -> ChannelCopy:
    body = request.json(AssignChannelVersionBody)
    return ChannelCopy(request.params["bucket_name"], body.source_channel or "", body.target_channel or "")


def _assign_response(place: Place, copied: Copied) -> wire.AssignChannelVersionResponse:
    org = place.organization_id
    target = wire.channel(copied.target, org)
    return wire.AssignChannelVersionResponse(
        fingerprint=target.version.fingerprint if target.version is not None else "",
        version=target.version,
        source_channel=wire.channel(copied.source, org),
        target_channel=target,
    )


def _decode_history(request: Request) -> ChannelHistoryQuery:
    return ChannelHistoryQuery(request.params["bucket_name"], request.params["channel_name"], page(request))


def _history_response(place: Place, history: HistoryPage) -> wire.ListChannelAssignmentHistoryResponse:
    return wire.ListChannelAssignmentHistoryResponse(
        history=[wire.assignment(a, history.bucket_slug) for a in history.entries],
        count=history.count,
        pagination=shared.pagination(history.next_token, history.previous_token),
    )


CREATE = Operation(_decode_create, steps.create_channel, _response)
GET = Operation(_decode_name, steps.get_channel, _response)
LIST = Operation(_decode_bucket, steps.list_channels, _list_response)
UPDATE = Operation(_decode_update, steps.update_channel, _response)
DELETE = Operation(_decode_name, steps.delete_channel, empty)
ASSIGN = Operation(_decode_assign, steps.copy_channel, _assign_response)
HISTORY = Operation(_decode_history, steps.channel_history, _history_response)

CHANNELS = "/buckets/{bucket_name}/channels"
CHANNEL = CHANNELS + "/{channel_name}"
ROUTES: list[Route] = [
    route("POST", CHANNELS, CREATE, "CreateChannel", Permission.WRITE),
    route("GET", CHANNELS, LIST, "ListChannels", Permission.READ, pure=True),
    route("POST", CHANNELS + "/assign", ASSIGN, "AssignChannelVersion", Permission.WRITE),
    route("GET", CHANNEL, GET, "GetChannel", Permission.READ, pure=True),
    route("PATCH", CHANNEL, UPDATE, "UpdateChannel", Permission.WRITE),
    route("DELETE", CHANNEL, DELETE, "DeleteChannel", Permission.WRITE),
    route("GET", CHANNEL + "/history", HISTORY, "ListChannelAssignmentHistory", Permission.READ, pure=True),
]
