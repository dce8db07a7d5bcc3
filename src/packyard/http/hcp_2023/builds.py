"""CreateBuild, GetBuild, ListBuilds, UpdateBuild, DeleteBuild: a build inside the version its bucket
and fingerprint name. Artifacts are 2021's images; `platform` its cloud_provider."""

from __future__ import annotations

from typing import Any

from packyard.domain import steps
from packyard.domain.commands import (
    BuildChange,
    BuildChanges,
    BuildListing,
    BuildRef,
    ImageInput,
    NewBuild,
    VersionRef,
)
from packyard.domain.models import Build, Permission
from packyard.domain.pagination import Page
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import BuildBody
from packyard.http.hcp_2023.common import empty, page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


def _without_nulls(value: Any) -> Any:
    """HCP's wire has no nulls (an absent field is the same thing): Packer's `plugins: null` is kept as
    no `plugins` at all."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def changes(body: BuildBody) -> BuildChanges:
    artifacts = None
    if body.artifacts is not None:  # null means unchanged; [] clears them
        artifacts = [ImageInput(image_id=a.external_identifier or "", region=a.region or "") for a in body.artifacts]
    metadata = None
    if body.metadata is not None:
        # Kept as the client sent it, its parts that were null left out.
        parts = {"packer": body.metadata.packer, "cicd": body.metadata.cicd, "vcs": body.metadata.vcs}
        metadata = {name: _without_nulls(value) for name, value in parts.items() if value is not None}
    return BuildChanges(
        status=wire_choice(wire.BUILD_STATUS, body.status, "status"),
        cloud_provider=body.platform or "",
        packer_run_uuid=body.packer_run_uuid or "",
        images=artifacts,
        labels=body.labels,
        source_image_id=body.source_external_identifier or "",
        source_iteration_id=body.parent_version_id or "",
        source_channel_id=body.parent_channel_id or "",
        component_type=body.component_type or "",
        metadata=metadata,
    )


def _version(request: Request) -> VersionRef:
    return VersionRef(request.params["bucket_name"], request.params["fingerprint"])


def _build(request: Request) -> BuildRef:
    return BuildRef(_version(request), request.params["build_id"])


def _response(place: Place, b: Build) -> wire.BuildResponse:
    return wire.BuildResponse(build=wire.build(b))


def _decode_create(request: Request) -> NewBuild:
    version = _version(request)
    return NewBuild(version.bucket_slug, "", changes(request.json(BuildBody)), fingerprint=version.fingerprint)


def _decode_list(request: Request) -> BuildListing:
    version = _version(request)
    return BuildListing(version.bucket_slug, "", page(request), fingerprint=version.fingerprint, metadata=True)


def _list_response(place: Place, builds: Page[Build]) -> wire.ListBuildsResponse:
    return wire.ListBuildsResponse(
        builds=[wire.build(b) for b in builds.items],
        pagination=shared.pagination(builds.next_token, builds.previous_token),
    )


def _decode_update(request: Request) -> BuildChange:
    body = request.json(BuildBody)
    return BuildChange(request.params["build_id"], changes(body), within=_version(request), metadata=True)


CREATE = Operation(_decode_create, steps.create_build, _response)
GET = Operation(_build, steps.build_in_version, _response)
LIST = Operation(_decode_list, steps.list_builds, _list_response)
UPDATE = Operation(_decode_update, steps.update_build, _response)
DELETE = Operation(_build, steps.delete_build_in_version, empty)

BUILDS = "/buckets/{bucket_name}/versions/{fingerprint}/builds"
ROUTES: list[Route] = [
    route("POST", BUILDS, CREATE, "CreateBuild", Permission.WRITE),
    route("GET", BUILDS, LIST, "ListBuilds", Permission.READ, pure=True),
    route("GET", BUILDS + "/{build_id}", GET, "GetBuild", Permission.READ, pure=True),
    route("PATCH", BUILDS + "/{build_id}", UPDATE, "UpdateBuild", Permission.WRITE),
    route("DELETE", BUILDS + "/{build_id}", DELETE, "DeleteBuild", Permission.WRITE),
]
