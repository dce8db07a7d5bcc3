"""CreateBuild, GetBuild, ListBuilds, UpdateBuild, DeleteBuild."""

from __future__ import annotations

from packyard.domain import builds as service
from packyard.domain.builds import BuildChanges, ImageInput
from packyard.domain.context import Ctx
from packyard.domain.models import Build, BuildStatus, Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import BuildFields, CreateBuildBody, UpdateBuildBody
from packyard.http.hcp_2021.common import paging, route, sorting
from packyard.http.request import Request, enum_value
from packyard.http.routing import Deferred, Route


def _changes(fields: BuildFields, prefix: str) -> BuildChanges:
    images = None
    if fields.images is not None:
        images = [ImageInput(image_id=i.image_id or "", region=i.region or "") for i in fields.images]
    return BuildChanges(
        status=enum_value(BuildStatus, fields.status, f"{prefix}.status"),
        cloud_provider=fields.cloud_provider or "",
        packer_run_uuid=fields.packer_run_uuid or "",
        images=images,
        labels=fields.labels,
        source_image_id=fields.source_image_id or "",
        source_iteration_id=fields.source_iteration_id or "",
        source_channel_id=fields.source_channel_id or "",
        component_type=fields.component_type or "",
    )


def _prepare_create(request: Request) -> BuildChanges:
    return _changes(request.json(CreateBuildBody).build or BuildFields(), "build")


def _prepare_update(request: Request) -> BuildChanges:
    return _changes(request.json(UpdateBuildBody).updates or BuildFields(), "updates")


def _build_response(b: Build) -> wire.BuildResponse:
    return wire.BuildResponse(build=wire.build(b))


def create(ctx: Ctx, request: Request) -> object:
    b = service.create(ctx, request.params["bucket_slug"], request.params["iteration_id"], request.prepared)
    return Deferred(_build_response, b)


def get(ctx: Ctx, request: Request) -> object:
    return _build_response(service.get(ctx, request.params["build_id"]))


def list_(ctx: Ctx, request: Request) -> object:
    page = service.list_(
        ctx,
        request.params["bucket_slug"],
        request.params["iteration_id"],
        order_by=sorting(request),
        **paging(request),  # type: ignore[arg-type]
    )
    return wire.ListBuildsResponse(
        builds=wire.builds(page.items), pagination=wire.pagination(page.next_token, page.previous_token)
    )


def update(ctx: Ctx, request: Request) -> object:
    return Deferred(_build_response, service.update(ctx, request.params["build_id"], request.prepared))


def delete(ctx: Ctx, request: Request) -> object:
    service.delete(ctx, request.params["build_id"])
    return wire.EMPTY


ROUTES: list[Route] = [
    route(
        "POST",
        "/images/{bucket_slug}/iterations/{iteration_id}",
        create,
        "CreateBuild",
        Permission.WRITE,
        prepare=_prepare_create,
    ),
    route(
        "GET",
        "/images/{bucket_slug}/iterations/{iteration_id}/builds",
        list_,
        "ListBuilds",
        Permission.READ,
        cache=True,
    ),
    route("GET", "/builds/{build_id}", get, "GetBuild", Permission.READ, cache=True),
    route("PATCH", "/builds/{build_id}", update, "UpdateBuild", Permission.WRITE, prepare=_prepare_update),
    route("DELETE", "/builds/{build_id}", delete, "DeleteBuild", Permission.WRITE),
]
