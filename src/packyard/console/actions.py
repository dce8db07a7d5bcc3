"""The console's writes: each behind a confirmation page. GET of an action's URL shows what it will
affect (read with the domain, in a read-only unit, for a user who may write); POST does it through
Console.act (session, form token and role checked in the write unit) and the domain's own call steps,
the same the API's operations run, then answers 303 to the page of what changed with a short notice.

A refusal changes nothing: no session → sign in; a missing or wrong form token, a role that may not
write, a project the user's scope doesn't reach → a 403 page; what the domain refuses (an unknown
version, a bad name, a time that has passed) → the confirmation again, with the message and the
status the API would answer (4xx).

The actions themselves: version_actions.py (revoke, cancel, restore) and channel_actions.py (channels
and buckets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from packyard.console.web import BadForm, Console, SignedOut
from packyard.console.words import WORDS
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError, PermissionDenied, Unauthenticated
from packyard.domain.models import Permission, UserSession
from packyard.http.errors import http_status

# What the page an action lands on says about it (`?done=<key>`): fixed texts, so a link can't make a
# page say anything else.
NOTICES = {
    "revoked": "The version is revoked.",
    "revocation-scheduled": "The revocation is scheduled.",
    "revocation-cancelled": "The scheduled revocation is cancelled.",
    "restored": "The version is restored.",
    "assigned": "The channel points to the version you chose.",
    "rolled-back": "The channel is rolled back.",
    "restricted": "The channel is restricted: viewers no longer see it.",
    "unrestricted": "The channel is unrestricted: viewers see it again.",
    "channel-created": "The channel is created.",
    "channel-deleted": "The channel is deleted.",
    "bucket-created": "The bucket is created.",
    "bucket-deleted": "The bucket is deleted, with its versions and channels.",
}

Read = Callable[[Ctx], Mapping[str, Any]]
Do = Callable[[Ctx, Mapping[str, str]], str]


def notice_for(request: Request) -> str:
    """The notice a page shows after an action (base.html), or ""."""
    return NOTICES.get(request.query_params.get("done", ""), "")


def project_url(org_id: str, project_id: str) -> str:
    return f"/orgs/{quote(org_id, safe='')}/projects/{quote(project_id, safe='')}"


def bucket_url(org_id: str, project_id: str, bucket: str) -> str:
    return f"{project_url(org_id, project_id)}/buckets/{quote(bucket, safe='')}"


def version_url(org_id: str, project_id: str, bucket: str, version_id: str) -> str:
    return f"{bucket_url(org_id, project_id, bucket)}/versions/{quote(version_id, safe='')}"


def channel_url(org_id: str, project_id: str, bucket: str, channel: str) -> str:
    return f"{bucket_url(org_id, project_id, bucket)}/channels/{quote(channel, safe='')}"


def done(url: str, key: str) -> str:
    assert key in NOTICES
    return f"{url}?done={key}"


class Action:
    """One action's pair of handlers: the confirmation (GET) and the change (POST)."""

    def __init__(
        self,
        console: Console,
        template: str,
        read: Callable[[Request], Read],
        do: Callable[[Request], Do],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.console = console
        self.template = template
        self.read = read
        self.do = do
        self.extra = dict(extra or {})  # what the template needs beyond the read (which verb it shows)

    @staticmethod
    def place(request: Request) -> tuple[str, str]:
        return request.path_params["org"], request.path_params["project"]

    async def confirm(
        self, request: Request, *, error: str = "", status: int = 200, form: Mapping[str, str] | None = None
    ) -> Response:
        console = self.console
        org_id, project_id = self.place(request)
        try:
            acting = await console.view(request, org_id, project_id, self.read(request), permission=Permission.WRITE)
        except SignedOut:
            return console.to_sign_in(request)
        except DomainError as exc:
            return console.refusal(request, exc, await self.session_or_none(request))
        values = {
            "session": acting.session,
            "org_id": org_id,
            "project_id": project_id,
            "error": error,
            "form": form or {},
            **self.extra,
            **acting.result,
        }
        return console.render(request, self.template, values, status)

    async def session_or_none(self, request: Request) -> UserSession | None:
        """The signed-in session, for the header of a refusal page."""
        try:
            return await self.console.signed_in(request)
        except SignedOut:
            return None

    async def show(self, request: Request) -> Response:
        return await self.confirm(request)

    async def submit(self, request: Request) -> Response:
        console = self.console
        org_id, project_id = self.place(request)
        try:
            form = await console.form(request)
        except BadForm as exc:
            return console.refusal(request, exc)
        do = self.do(request)
        try:
            acting = await console.act(request, form, org_id, project_id, lambda ctx: do(ctx, form))
        except SignedOut:
            return console.to_sign_in(request)
        except (BadForm, PermissionDenied, Unauthenticated) as exc:
            return console.refusal(request, exc, await self.session_or_none(request))
        except DomainError as exc:
            # The domain refused the input: the confirmation again, with what was typed and why.
            return await self.confirm(request, error=exc.render(WORDS), status=http_status(exc.code), form=form)
        return console.redirect(str(acting.result))


def routes(console: Console) -> list[Route]:
    """Every action's GET and POST, to be listed before the read pages' routes (`buckets/new` must not be
    taken for a bucket named "new")."""
    from packyard.console import channel_actions, version_actions  # noqa: PLC0415 - they build on this module

    console.jinja.globals["notice_for"] = notice_for
    out: list[Route] = []
    for path, action in [*version_actions.actions(console), *channel_actions.actions(console)]:
        out.append(Route(path, action.show, methods=["GET"]))
        out.append(Route(path, action.submit, methods=["POST"]))
    return out
