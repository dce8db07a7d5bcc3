"""CreateBuild, GetBuild, ListBuilds, UpdateBuild, DeleteBuild."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.commands import BuildChange, BuildChanges, BuildListing, BuildName, ImageInput, NewBuild
from packyard.domain.models import Build, Permission
from packyard.domain.pagination import Page
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import BuildFields, CreateBuildBody, UpdateBuildBody
from packyard.http.hcp_2021.common import empty, page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


def changes(fields: BuildFields, prefix: str) -> BuildChanges:
    images = None
    if fields.images is not None:
        images = [ImageInput(image_id=i.image_id or "", region=i.region or "") for i in fields.images]
    return BuildChanges(
        status=wire_choice(wire.BUILD_STATUS, fields.status, f"{prefix}.status"),
        cloud_provider=fields.cloud_provider or "",
        packer_run_uuid=fields.packer_run_uuid or "",
        images=images,
        labels=fields.labels,
        source_image_id=fields.source_image_id or "",
        source_iteration_id=fields.source_iteration_id or "",
        source_channel_id=fields.source_channel_id or "",
        component_type=fields.component_type or "",
    )


def _response(place: Place, b: Build) -> wire.BuildResponse:
    return wire.BuildResponse(build=wire.build(b))


def _decode_create(request: Request) -> NewBuild:
    fields = request.json(CreateBuildBody).build or BuildFields()
    return NewBuild(request.params["bucket_slug"], request.params["iteration_id"], changes(fields, "build"))


def _decode_name(request: Request) -> BuildName:
    return BuildName(request.params["build_id"])


def _decode_list(request: Request) -> BuildListing:
    return BuildListing(request.params["bucket_slug"], request.params["iteration_id"], page(request))


def _list_response(place: Place, builds: Page[Build]) -> wire.ListBuildsResponse:
    return wire.ListBuildsResponse(
        builds=wire.builds(builds.items), pagination=wire.pagination(builds.next_token, builds.previous_token)
    )


def _decode_update(request: Request) -> BuildChange:
    fields = request.json(UpdateBuildBody).updates or BuildFields()
    return BuildChange(request.params["build_id"], changes(fields, "updates"))


CREATE = Operation(_decode_create, steps.create_build, _response)
GET = Operation(_decode_name, steps.get_build, _response)
LIST = Operation(_decode_list, steps.list_builds, _list_response)
UPDATE = Operation(_decode_update, steps.update_build, _response)
DELETE = Operation(_decode_name, steps.delete_build, empty)

ROUTES: list[Route] = [
    route("POST", "/images/{bucket_slug}/iterations/{iteration_id}", CREATE, "CreateBuild", Permission.WRITE),
    route(
        "GET", "/images/{bucket_slug}/iterations/{iteration_id}/builds", LIST, "ListBuilds", Permission.READ, pure=True
    ),
    route("GET", "/builds/{build_id}", GET, "GetBuild", Permission.READ, pure=True),
    route("PATCH", "/builds/{build_id}", UPDATE, "UpdateBuild", Permission.WRITE),
    route("DELETE", "/builds/{build_id}", DELETE, "DeleteBuild", Permission.WRITE),
]
