"""CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel, ListChannelHistory."""

from __future__ import annotations

from packyard.domain import channels as service
from packyard.domain.channels import IterationRef
from packyard.domain.context import Ctx
from packyard.domain.models import Channel, Permission, Restriction
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateChannelBody, UpdateChannelBody
from packyard.http.hcp_2021.common import decoded, route
from packyard.http.request import Request, enum_value
from packyard.http.routing import Deferred, Route


def _ref(body: CreateChannelBody | UpdateChannelBody) -> IterationRef:
    return IterationRef(
        iteration_id=body.iteration_id or "",
        fingerprint=body.fingerprint or "",
        incremental_version=body.incremental_version or 0,
    )


def _response(channel: Channel, organization_id: str) -> wire.ChannelResponse:
    return wire.ChannelResponse(channel=wire.channel(channel, organization_id))


def create(ctx: Ctx, request: Request) -> object:
    body: CreateChannelBody = request.prepared
    channel = service.create(
        ctx,
        request.params["bucket_slug"],
        slug=body.slug or "",
        ref=_ref(body),
        restriction=enum_value(Restriction, body.restriction, "restriction"),
    )
    return Deferred(_response, channel, ctx.organization_id)


def get(ctx: Ctx, request: Request) -> object:
    return _response(service.get(ctx, request.params["bucket_slug"], request.params["slug"]), ctx.organization_id)


def list_(ctx: Ctx, request: Request) -> object:
    channels = service.list_(ctx, request.params["bucket_slug"])
    return wire.ListChannelsResponse(channels=[wire.channel(c, ctx.organization_id) for c in channels])


def update(ctx: Ctx, request: Request) -> object:
    body: UpdateChannelBody = request.prepared
    channel = service.update(
        ctx,
        request.params["bucket_slug"],
        request.params["slug"],
        ref=_ref(body),
        restriction=enum_value(Restriction, body.restriction, "restriction"),
        mask=body.mask or "",
    )
    return Deferred(_response, channel, ctx.organization_id)


def delete(ctx: Ctx, request: Request) -> object:
    service.delete(ctx, request.params["bucket_slug"], request.params["slug"])
    return wire.EMPTY


def history(ctx: Ctx, request: Request) -> object:
    page = service.history(
        ctx,
        request.params["bucket_slug"],
        request.params["slug"],
        page_size=request.query_int("pagination.page_size"),
        next_token=request.query_str("pagination.next_page_token"),
        previous_token=request.query_str("pagination.previous_page_token"),
    )
    return wire.ListChannelHistoryResponse(
        history=[wire.assignment(a) for a in page.entries],
        count=page.count,
        pagination=wire.pagination(page.next_token, page.previous_token),
    )


ROUTES: list[Route] = [
    route(
        "POST",
        "/images/{bucket_slug}/channels",
        create,
        "CreateChannel",
        Permission.WRITE,
        prepare=decoded(CreateChannelBody),
    ),
    route("GET", "/images/{bucket_slug}/channels", list_, "ListChannels", Permission.READ, cache=True),
    route("GET", "/images/{bucket_slug}/channels/{slug}", get, "GetChannel", Permission.READ, cache=True),
    route(
        "PATCH",
        "/images/{bucket_slug}/channels/{slug}",
        update,
        "UpdateChannel",
        Permission.WRITE,
        prepare=decoded(UpdateChannelBody),
    ),
    route("DELETE", "/images/{bucket_slug}/channels/{slug}", delete, "DeleteChannel", Permission.WRITE),
    route(
        "GET",
        "/images/{bucket_slug}/channels/{slug}/history",
        history,
        "ListChannelHistory",
        Permission.READ,
        cache=True,
    ),
]
