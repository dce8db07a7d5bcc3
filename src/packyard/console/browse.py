"""The console's read pages: a project's buckets and search, a bucket, a version, a channel.

Each page reads through Console.view (one read-only transaction, the session, tenancy and role checked)
and the domain's read services (domain/browse.py); a refusal renders as an error page with the API's
status (404 for an unknown bucket, version or a channel a viewer may not see, 403 for another project).
Lists are keyset paged (`?after=` / `?before=` carry the domain's page tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from packyard.console import graph
from packyard.console.web import Console, SignedOut
from packyard.domain import browse
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError
from packyard.domain.models import Build, Iteration, IterationStatus, Permission

BUCKETS_PER_PAGE = 50
VERSIONS_PER_PAGE = 50
HISTORY_PER_PAGE = 50

# The words of a version's status badge (templates/_status.html); the class gives its colour, the
# words its meaning.
STATUS_TEXT = {
    IterationStatus.ACTIVE: "Active",
    IterationStatus.REVOKED: "Revoked",
    IterationStatus.REVOCATION_SCHEDULED: "Scheduled revocation",
    IterationStatus.RUNNING: "Running",
    IterationStatus.FAILED: "Failed",
    IterationStatus.CANCELLED: "Cancelled",
    IterationStatus.INCOMPLETE: "Incomplete",
    IterationStatus.UNSET: "No builds yet",
}


def when(value: datetime | None) -> str:
    """A stored time as people read it: UTC, to the second."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def version_name(it: Iteration | None) -> str:
    if it is None:
        return ""
    return f"v{it.incremental_version}" if it.complete else "v0"


def platforms(builds: list[Build]) -> list[tuple[str, int]]:
    """(platform, builds) of a version, by platform."""
    counts: dict[str, int] = {}
    for b in builds:
        counts[b.cloud_provider or "unknown"] = counts.get(b.cloud_provider or "unknown", 0) + 1
    return sorted(counts.items())


# CI variables that are a link to the run, in the order they are preferred (Packer sends the CI's
# environment as `cicd.details`: client-compatibility-2023.md B.1).
_RUN_LINKS = ("GITHUB_WORKFLOW_URL", "CI_PIPELINE_URL", "CI_JOB_URL", "BUILD_URL", "RUN_DISPLAY_URL")


def _web(value: object) -> str:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else ""


def ci_link(details: Mapping[str, Any]) -> str:
    """The CI run's web address from the CI variables Packer sent, or "" (only http(s) links)."""
    server, repo, run = (details.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if _web(server) and isinstance(repo, str) and isinstance(run, str | int) and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    for key in _RUN_LINKS:
        if _web(details.get(key)):
            return str(details[key])
    return next((str(v) for _, v in sorted(details.items()) if _web(v)), "")


def _project(request: Request) -> tuple[str, str]:
    return request.path_params["org"], request.path_params["project"]


def base_url(org_id: str, project_id: str) -> str:
    return f"/orgs/{quote(org_id, safe='')}/projects/{quote(project_id, safe='')}"


class Browse:
    def __init__(self, console: Console) -> None:
        self.console = console
        jinja = console.jinja
        jinja.filters["when"] = when
        jinja.globals.update(status_text=STATUS_TEXT, version_name=version_name, platforms=platforms, ci_link=ci_link)

    def routes(self) -> list[Route]:
        project = "/orgs/{org}/projects/{project}"
        bucket = project + "/buckets/{bucket}"
        return [
            Route(project, self.buckets, methods=["GET"]),
            Route(project + "/search", self.search, methods=["GET"]),
            Route(bucket, self.bucket, methods=["GET"]),
            Route(bucket + "/versions/{version}", self.version, methods=["GET"]),
            Route(bucket + "/channels/{channel}", self.channel, methods=["GET"]),
        ]

    async def _show(
        self,
        request: Request,
        read: Callable[[Ctx], Any],
        template: str,
        values: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]],
    ) -> Response:
        """The page of `template` for what `read` returns, or the sign-in redirect, or the refusal."""
        console = self.console
        org_id, project_id = _project(request)
        try:
            acting = await console.view(request, org_id, project_id, read)
        except SignedOut:
            return console.to_sign_in(request)
        except DomainError as exc:
            try:
                session = await console.signed_in(request)
            except SignedOut:
                session = None
            return console.refusal(request, exc, session)
        common = {
            "session": acting.session,
            "org_id": org_id,
            "project_id": project_id,
            "base": base_url(org_id, project_id),
            "can_write": acting.user.actor().can(Permission.WRITE),  # for the action partials
        }
        return console.render(request, template, {**common, **values(acting.result, common)})

    @staticmethod
    def _tokens(request: Request) -> tuple[str, str]:
        return request.query_params.get("after", ""), request.query_params.get("before", "")

    async def buckets(self, request: Request) -> Response:
        after, before = self._tokens(request)

        def read(ctx: Ctx) -> object:
            return browse.bucket_list(ctx, page_size=BUCKETS_PER_PAGE, next_token=after, previous_token=before)

        return await self._show(request, read, "buckets.html", lambda page, _: {"page": page})

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "")

        def read(ctx: Ctx) -> object:
            return browse.find(ctx, query)

        return await self._show(request, read, "search.html", lambda found, _: {"found": found, "q": query})

    async def bucket(self, request: Request) -> Response:
        slug = request.path_params["bucket"]
        after, before = self._tokens(request)

        def read(ctx: Ctx) -> object:
            return browse.bucket_page(ctx, slug, page_size=VERSIONS_PER_PAGE, next_token=after, previous_token=before)

        def values(page: browse.BucketPage, common: Mapping[str, Any]) -> Mapping[str, Any]:
            base = str(common["base"])

            def version_url(it: Iteration) -> str:
                return f"{base}/buckets/{it.bucket_slug}/versions/{it.id}"

            drawn = graph.layout(
                page.view.bucket.slug,
                page.view.latest,
                page.parents,
                page.children,
                version_url,
                f"{base}/buckets/{page.view.bucket.slug}",
            )
            return {"page": page, "bucket": page.view.bucket, "graph": drawn, "g": graph}

        return await self._show(request, read, "bucket.html", values)

    async def version(self, request: Request) -> Response:
        slug, version_id = request.path_params["bucket"], request.path_params["version"]

        def read(ctx: Ctx) -> object:
            return browse.version_page(ctx, slug, version_id)

        def values(page: browse.VersionPage, _: Mapping[str, Any]) -> Mapping[str, Any]:
            return {"page": page, "bucket": page.bucket, "version": page.version}

        return await self._show(request, read, "version.html", values)

    async def channel(self, request: Request) -> Response:
        slug, channel = request.path_params["bucket"], request.path_params["channel"]
        after, before = self._tokens(request)

        def read(ctx: Ctx) -> object:
            return browse.channel_page(
                ctx, slug, channel, page_size=HISTORY_PER_PAGE, next_token=after, previous_token=before
            )

        def values(page: browse.ChannelPage, _: Mapping[str, Any]) -> Mapping[str, Any]:
            return {"page": page, "bucket": page.bucket, "channel": page.channel, "counted": browse.HISTORY_COUNTED}

        return await self._show(request, read, "channel.html", values)
