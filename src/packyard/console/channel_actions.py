"""Channel and bucket actions: assign a version to a channel, roll it back, restrict or unrestrict it,
create and delete channels; create and delete buckets. Each change is the step the 2023-01-01 API's
operation runs (UpdateChannel with its field mask, CreateChannel, DeleteChannel, CreateBucket,
DeleteBucket), so the domain's rules (the managed `latest`, complete and unrevoked versions only,
names) refuse here as they do there.

Rolling a channel back is UpdateChannel to the channel's most recent earlier assignment that is still
complete and unrevoked (revocation.previous_assignment, the rule a revocation's rollback follows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request

from packyard.console.actions import Action, Do, Read, bucket_url, channel_url, done, project_url
from packyard.console.web import Console
from packyard.domain import buckets, lookup, revocation, steps
from packyard.domain.commands import (
    BucketName,
    ChannelChange,
    ChannelField,
    ChannelHistoryQuery,
    ChannelName,
    IterationListing,
    IterationRef,
    NewBucket,
    NewChannel,
    PageQuery,
)
from packyard.domain.context import Ctx
from packyard.domain.errors import Aborted, FailedPrecondition, InvalidArgument
from packyard.domain.models import Channel, Iteration

BUCKET = "/orgs/{org}/projects/{project}/buckets/{bucket}"
CHANNEL = BUCKET + "/channels/{channel}"
RECENT_VERSIONS = 20  # the choices of the version select; older ones are named by number


def recent_versions(ctx: Ctx, bucket_slug: str) -> list[Iteration]:
    """The bucket's newest versions (one keyset page), for the version select."""
    page = steps.list_iterations(ctx, IterationListing(bucket_slug, PageQuery(size=RECENT_VERSIONS)))
    return [listed.iteration for listed in page.items]


def chosen_version(form: Mapping[str, str]) -> IterationRef:
    """The version the form names: its number when one is typed, else the one picked in the select."""
    number = form.get("number", "").strip()
    if number:
        digits = number[1:] if number[:1] in ("v", "V") else number
        if not digits.isdigit() or len(digits) > 10:
            raise InvalidArgument(f"{number[:20]!r} is not a version number such as 3 or v3")
        return IterationRef(incremental_version=int(digits))
    picked = form.get("version", "").strip()
    return IterationRef(iteration_id=picked) if picked else IterationRef()


def _names(request: Request) -> tuple[str, str]:
    return request.path_params["bucket"], request.path_params.get("channel", "")


def _channel_url(request: Request, slug: str = "") -> str:
    p = request.path_params
    return channel_url(p["org"], p["project"], p["bucket"], slug or p["channel"])


def the_channel(ctx: Ctx, request: Request, *, assignable: bool = False) -> Channel:
    """The page's channel (NotFound for one the user can't see); `assignable`: refused when it is the
    managed `latest`, which only follows the bucket."""
    bucket, slug = _names(request)
    channel = steps.get_channel(ctx, ChannelName(bucket, slug))
    if assignable and channel.managed:
        raise FailedPrecondition(
            f"channel {channel.slug!r} is managed by packyard: it follows the newest complete version"
        )
    return channel


def _update(ctx: Ctx, request: Request, ref: IterationRef, restricted: bool | None, field: ChannelField) -> None:
    bucket, slug = _names(request)
    steps.update_channel(ctx, ChannelChange(bucket, slug, ref, restricted, frozenset({field})))


# ---- assign


def assign_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        channel = the_channel(ctx, request, assignable=True)
        return {"channel": channel, "versions": recent_versions(ctx, channel.bucket_slug)}

    return read


def assign_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        ref = chosen_version(form)
        if not ref.any():
            raise InvalidArgument("choose a version, or type its number")
        _update(ctx, request, ref, None, ChannelField.ITERATION)
        return done(_channel_url(request), "assigned")

    return do


# ---- roll back


def rollback_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        channel = the_channel(ctx, request, assignable=True)
        return {"channel": channel, "target": revocation.previous_assignment(ctx, channel)}

    return read


def rollback_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        bucket_slug, slug = _names(request)
        channel = lookup.channel(ctx, lookup.bucket(ctx, bucket_slug), slug, for_update=True)
        target = revocation.previous_assignment(ctx, channel)
        if (target.id if target else "") != form.get("to", ""):
            raise Aborted("the channel's history changed since this page was shown; check where it goes now")
        if target is None:
            raise FailedPrecondition(f"channel {slug!r} has no earlier assignment to roll back to")
        _update(ctx, request, IterationRef(iteration_id=target.id), None, ChannelField.ITERATION)
        return done(_channel_url(request), "rolled-back")

    return do


# ---- restrict, unrestrict


def restriction_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        return {"channel": the_channel(ctx, request)}

    return read


def restriction_do(restricted: bool) -> Callable[[Request], Do]:
    def for_request(request: Request) -> Do:
        def do(ctx: Ctx, form: Mapping[str, str]) -> str:
            _update(ctx, request, IterationRef(), restricted, ChannelField.RESTRICTION)
            return done(_channel_url(request), "restricted" if restricted else "unrestricted")

        return do

    return for_request


# ---- create and delete a channel


def new_channel_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        bucket = buckets.require(ctx, request.path_params["bucket"])
        return {"bucket": bucket, "versions": recent_versions(ctx, bucket.slug)}

    return read


def new_channel_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        name = form.get("name", "").strip()
        restricted = form.get("restricted", "") == "yes"
        steps.create_channel(ctx, NewChannel(request.path_params["bucket"], name, chosen_version(form), restricted))
        return done(_channel_url(request, name), "channel-created")

    return do


def delete_channel_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        channel = the_channel(ctx, request, assignable=True)
        bucket_slug, slug = _names(request)
        history = steps.channel_history(ctx, ChannelHistoryQuery(bucket_slug, slug, PageQuery(size=1)))
        return {"channel": channel, "history_count": history.count}

    return read


def delete_channel_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        bucket_slug, slug = _names(request)
        steps.delete_channel(ctx, ChannelName(bucket_slug, slug))
        p = request.path_params
        return done(bucket_url(p["org"], p["project"], bucket_slug), "channel-deleted")

    return do


# ---- create and delete a bucket


def new_bucket_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        return {}

    return read


def new_bucket_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        new = NewBucket(form.get("name", "").strip(), form.get("description", "").strip())
        steps.refuse_bucket(ctx, new)  # CreateBucket's own precheck: a bucket of that name exists
        steps.create_bucket(ctx, new)
        p = request.path_params
        return done(bucket_url(p["org"], p["project"], new.slug), "bucket-created")

    return do


def delete_bucket_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        bucket = buckets.require(ctx, request.path_params["bucket"])
        return {"bucket": bucket, "channels": steps.list_channels(ctx, bucket.slug)}

    return read


def delete_bucket_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        steps.delete_bucket(ctx, BucketName(request.path_params["bucket"]))
        p = request.path_params
        return done(project_url(p["org"], p["project"]), "bucket-deleted")

    return do


def actions(console: Console) -> list[tuple[str, Action]]:
    project = "/orgs/{org}/projects/{project}"
    return [
        (f"{project}/buckets/new", Action(console, "confirm_new_bucket.html", new_bucket_read, new_bucket_do)),
        (f"{BUCKET}/delete", Action(console, "confirm_delete_bucket.html", delete_bucket_read, delete_bucket_do)),
        (f"{BUCKET}/channels/new", Action(console, "confirm_new_channel.html", new_channel_read, new_channel_do)),
        (f"{CHANNEL}/assign", Action(console, "confirm_assign.html", assign_read, assign_do)),
        (f"{CHANNEL}/rollback", Action(console, "confirm_rollback.html", rollback_read, rollback_do)),
        (
            f"{CHANNEL}/restrict",
            Action(console, "confirm_restrict.html", restriction_read, restriction_do(True), {"restrict": True}),
        ),
        (
            f"{CHANNEL}/unrestrict",
            Action(console, "confirm_restrict.html", restriction_read, restriction_do(False), {"restrict": False}),
        ),
        (f"{CHANNEL}/delete", Action(console, "confirm_delete_channel.html", delete_channel_read, delete_channel_do)),
    ]
