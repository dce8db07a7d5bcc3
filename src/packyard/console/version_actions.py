"""A version's actions: revoke (now or at a time), cancel a scheduled revocation, restore.

Each confirmation reads what the domain would do, with the domain's own read-only functions
(revocation.inheritors, revocation.rollback_plan, the iterations that inherited a revocation), and each
change is UpdateVersion's step (steps.update_iteration) with the 2023-01-01 API's defaults: descendants
inherit the revocation and channels roll back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from starlette.requests import Request

from packyard.console.actions import Action, Do, Read, done, version_url
from packyard.console.web import Console
from packyard.domain import lookup, revocation, steps
from packyard.domain.commands import IterationChange, IterationChanges, IterationQuery, IterationRef
from packyard.domain.context import Ctx
from packyard.domain.errors import Aborted, FailedPrecondition, InvalidArgument, Term
from packyard.domain.models import Iteration
from packyard.domain.status import is_revoked
from packyard.http.durations import MAX_REVOKE_IN

VERSION = "/orgs/{org}/projects/{project}/buckets/{bucket}/versions/{version}"
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")  # what datetime-local sends


@cache
def zones() -> frozenset[str]:
    """The IANA zone names zoneinfo knows (tzdata's, or the system's)."""
    return frozenset(available_timezones()) | {"UTC"}


def revocation_time(form: Mapping[str, str], now: datetime) -> datetime:
    """When the form asks the revocation to take effect, in UTC: now, or the local date and time it
    gives read in the zone it names (UTC when it names none). Refuses a time that has passed."""
    if form.get("when", "now") == "now":
        return now
    text = form.get("at", "").strip()
    if not text:
        raise InvalidArgument("choose the date and time of the revocation, or revoke now")
    local = None
    for pattern in LOCAL_FORMATS:
        try:
            local = datetime.strptime(text, pattern)
            break
        except ValueError:
            continue
    if local is None:
        raise InvalidArgument(f"{text[:40]!r} is not a date and time such as 2025-06-01T14:30")
    name = form.get("zone", "").strip() or "UTC"
    if name not in zones():
        raise InvalidArgument(f"{name[:60]!r} is not a time zone; use an IANA name such as Europe/Berlin, or UTC")
    at = local.replace(tzinfo=ZoneInfo(name)).astimezone(UTC)
    if at <= now:
        shown = at.strftime("%Y-%m-%d %H:%M UTC")
        raise InvalidArgument(f"{shown} has passed; choose a later time, or revoke now")
    if at - now > MAX_REVOKE_IN:
        raise InvalidArgument("the revocation time is more than a hundred years away")
    return at


def the_version(ctx: Ctx, request: Request) -> Iteration:
    """The page's version (by its id, in its bucket), with its builds and status; NotFound when the
    bucket has none of that id."""
    bucket, version_id = request.path_params["bucket"], request.path_params["version"]
    try:
        return steps.get_iteration(ctx, IterationQuery(bucket, iteration_id=version_id))
    except Aborted:  # GetVersion's answer for Packer; here the page simply doesn't exist
        raise lookup.missing(bucket, IterationRef(iteration_id=version_id)) from None


def _refuse(version: Iteration, why: str) -> FailedPrecondition:
    return FailedPrecondition("{iteration} {id} " + why, subject=Term.ITERATION, id=version.id)


def scheduled(ctx: Ctx, request: Request) -> Iteration:
    """The page's version, refused unless its revocation is scheduled and not yet in force."""
    version = the_version(ctx, request)
    if version.revoke_at is None or is_revoked(ctx, version):
        raise _refuse(version, "has no scheduled revocation to cancel")
    return version


def revoked(ctx: Ctx, request: Request) -> Iteration:
    """The page's version, refused unless it is revoked."""
    version = the_version(ctx, request)
    if not is_revoked(ctx, version):
        raise _refuse(version, "is not revoked, so there is nothing to restore")
    return version


def _change(request: Request, changes: IterationChanges) -> IterationChange:
    return IterationChange(request.path_params["version"], changes, request.path_params["bucket"])


def _url(request: Request) -> str:
    p = request.path_params
    return version_url(p["org"], p["project"], p["bucket"], p["version"])


# ---- revoke


def revoke_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        version = the_version(ctx, request)
        if is_revoked(ctx, version):
            raise _refuse(version, "is revoked; restore it before revoking it again")
        # Who inherits a revocation taking effect now, and where channels would roll back to now; a
        # scheduled revocation does the same when it falls due.
        inheritors = revocation.inheritors(ctx, version, ctx.now)
        moves = revocation.rollback_plan(ctx, [version.id, *(i.id for i in inheritors)])
        revoking = {it.id: it for it in [version, *inheritors]}
        return {"version": version, "inheritors": inheritors, "moves": moves, "revoking": revoking}

    return read


def revoke_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        when = revocation_time(form, ctx.now)
        message = form.get("message", "").strip()
        changes = IterationChanges(revoke_at=when, revocation_message=message, rollback_channels=True)
        result = steps.update_iteration(ctx, _change(request, changes))
        return done(_url(request), "revocation-scheduled" if result.scheduled else "revoked")

    return do


# ---- cancel a scheduled revocation


def cancel_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        version = scheduled(ctx, request)
        inherited = ctx.uow.iterations.inherited_from(ctx.project_id, version.id)
        return {"version": version, "inherited": inherited}

    return read


def cancel_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        scheduled(ctx, request)
        steps.update_iteration(ctx, _change(request, IterationChanges(restore=True)))
        return done(_url(request), "revocation-cancelled")

    return do


# ---- restore


def restore_read(request: Request) -> Read:
    def read(ctx: Ctx) -> Mapping[str, Any]:
        version = revoked(ctx, request)
        inherited = ctx.uow.iterations.inherited_from(ctx.project_id, version.id)
        return {"version": version, "inherited": inherited}

    return read


def restore_do(request: Request) -> Do:
    def do(ctx: Ctx, form: Mapping[str, str]) -> str:
        revoked(ctx, request)
        steps.update_iteration(ctx, _change(request, IterationChanges(restore=True)))
        return done(_url(request), "restored")

    return do


def actions(console: Console) -> list[tuple[str, Action]]:
    return [
        (f"{VERSION}/revoke", Action(console, "confirm_revoke.html", revoke_read, revoke_do)),
        (f"{VERSION}/cancel-revocation", Action(console, "confirm_cancel_revocation.html", cancel_read, cancel_do)),
        (f"{VERSION}/restore", Action(console, "confirm_restore.html", restore_read, restore_do)),
    ]
