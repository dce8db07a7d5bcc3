"""CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel, ListChannelHistory."""

from __future__ import annotations

from packyard.domain import channels as service
from packyard.domain.channels import HistoryPage
from packyard.domain.commands import ChannelChange, ChannelHistoryQuery, ChannelName, IterationRef, NewChannel
from packyard.domain.context import Ctx
from packyard.domain.models import Channel, Permission, Restriction
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateChannelBody, UpdateChannelBody
from packyard.http.hcp_2021.common import empty, page, route
from packyard.http.request import Request, enum_value
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


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
    restriction = enum_value(Restriction, body.restriction, "restriction")
    return NewChannel(request.params["bucket_slug"], body.slug or "", _ref(body), restriction)


def _create(ctx: Ctx, new: NewChannel) -> Channel:
    return service.create(ctx, new.bucket_slug, slug=new.slug, ref=new.ref, restriction=new.restriction)


def _decode_name(request: Request) -> ChannelName:
    return ChannelName(request.params["bucket_slug"], request.params["slug"])


def _get(ctx: Ctx, name: ChannelName) -> Channel:
    return service.get(ctx, name.bucket_slug, name.slug)


def _decode_bucket(request: Request) -> str:
    return request.params["bucket_slug"]


def _list(ctx: Ctx, bucket_slug: str) -> list[Channel]:
    return service.list_(ctx, bucket_slug)


def _list_response(place: Place, channels: list[Channel]) -> wire.ListChannelsResponse:
    return wire.ListChannelsResponse(channels=[wire.channel(c, place.organization_id) for c in channels])


def _decode_update(request: Request) -> ChannelChange:
    body = request.json(UpdateChannelBody)
    restriction = enum_value(Restriction, body.restriction, "restriction")
    return ChannelChange(
        request.params["bucket_slug"], request.params["slug"], _ref(body), restriction, body.mask or ""
    )


def _update(ctx: Ctx, change: ChannelChange) -> Channel:
    return service.update(
        ctx, change.bucket_slug, change.slug, ref=change.ref, restriction=change.restriction, mask=change.mask
    )


def _delete(ctx: Ctx, name: ChannelName) -> None:
    service.delete(ctx, name.bucket_slug, name.slug)


def _decode_history(request: Request) -> ChannelHistoryQuery:
    return ChannelHistoryQuery(request.params["bucket_slug"], request.params["slug"], page(request))


def _history(ctx: Ctx, query: ChannelHistoryQuery) -> HistoryPage:
    p = query.page
    return service.history(
        ctx,
        query.bucket_slug,
        query.slug,
        page_size=p.size,
        next_token=p.next_token,
        previous_token=p.previous_token,
    )


def _history_response(place: Place, history: HistoryPage) -> wire.ListChannelHistoryResponse:
    return wire.ListChannelHistoryResponse(
        history=[wire.assignment(a) for a in history.entries],
        count=history.count,
        pagination=wire.pagination(history.next_token, history.previous_token),
    )


CREATE = Operation(_decode_create, _create, _response)
GET = Operation(_decode_name, _get, _response)
LIST = Operation(_decode_bucket, _list, _list_response)
UPDATE = Operation(_decode_update, _update, _response)
DELETE = Operation(_decode_name, _delete, empty)
HISTORY = Operation(_decode_history, _history, _history_response)

CHANNEL = "/images/{bucket_slug}/channels/{slug}"
ROUTES: list[Route] = [
    route("POST", "/images/{bucket_slug}/channels", CREATE, "CreateChannel", Permission.WRITE),
    route("GET", "/images/{bucket_slug}/channels", LIST, "ListChannels", Permission.READ, cache=True),
    route("GET", CHANNEL, GET, "GetChannel", Permission.READ, cache=True),
    route("PATCH", CHANNEL, UPDATE, "UpdateChannel", Permission.WRITE),
    route("DELETE", CHANNEL, DELETE, "DeleteChannel", Permission.WRITE),
    route("GET", CHANNEL + "/history", HISTORY, "ListChannelHistory", Permission.READ, cache=True),
]
