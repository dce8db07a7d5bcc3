"""CreateVersion, GetVersion, ListVersions, UpdateVersion, DeleteVersion: a version is a 2021
iteration, addressed by its bucket and fingerprint."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.commands import (
    IterationChange,
    IterationDeletion,
    IterationListing,
    IterationQuery,
    NewIteration,
)
from packyard.domain.iterations import ListedIteration, UpdateResult
from packyard.domain.models import Iteration, Permission, TemplateType
from packyard.domain.pagination import Page
from packyard.http import wire as shared
from packyard.http.durations import iteration_changes
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import CreateVersionBody, UpdateVersionBody
from packyard.http.hcp_2023.common import empty, page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.ids import new_ulid
from packyard.pipeline.operations import Operation, Place

SORT_NAMES = {"name": "incremental_version"}


def _response(place: Place, it: Iteration) -> wire.VersionResponse:
    return wire.VersionResponse(version=wire.version(it, place.organization_id))


def _decode_create(request: Request) -> NewIteration:
    body = request.json(CreateVersionBody)
    template = wire_choice(wire.TEMPLATE_TYPE, body.template_type, "template_type") or TemplateType.UNSET
    return NewIteration(request.params["bucket_name"], body.fingerprint or "", template)


def _decode_get(request: Request) -> IterationQuery:
    # An unknown fingerprint is code 10 (ABORTED): Packer creates the version only after that answer.
    return IterationQuery(request.params["bucket_name"], fingerprint=request.params["fingerprint"], metadata=True)


def _decode_list(request: Request) -> IterationListing:
    return IterationListing(request.params["bucket_name"], page(request, SORT_NAMES), with_builds=True)


def _list_response(place: Place, listed: Page[ListedIteration]) -> wire.ListVersionsResponse:
    org = place.organization_id
    return wire.ListVersionsResponse(
        versions=[wire.version(i.iteration, org) for i in listed.items],
        pagination=shared.pagination(listed.next_token, listed.previous_token),
    )


def _decode_update(request: Request) -> IterationChange:
    body = request.json(UpdateVersionBody)
    changes = iteration_changes(
        complete=body.complete,
        revoke_at=body.revoke_at,
        revoke_in=body.revoke_in,
        message=body.revocation_message,
        restore=body.restore,
        skip_descendants=body.skip_descendants_revocation,
        # 2023-01-01 rolls channels back unless told not to (2021-04-30 only when told to).
        rollback_channels=not body.disable_rollback_channels,
    )
    return IterationChange("", changes, request.params["bucket_name"], fingerprint=request.params["fingerprint"])


def _update_response(place: Place, result: UpdateResult) -> wire.UpdateVersionResponse:
    operation = None
    if result.cascaded:
        # Descendants are revoked in the same transaction (or when a scheduled revocation falls due).
        operation = shared.operation(new_ulid(), place.organization_id, place.project_id, place.now)
        if result.scheduled:
            operation.state = "QUEUED"
    version = wire.version(result.iteration, place.organization_id)
    return wire.UpdateVersionResponse(version=version, operation=operation)


def _decode_delete(request: Request) -> IterationDeletion:
    return IterationDeletion(
        "",
        bucket_slug=request.params["bucket_name"],
        rollback_channels=request.query_bool("rollback_channels"),
        fingerprint=request.params["fingerprint"],
    )


CREATE = Operation(_decode_create, steps.create_iteration, _response)
GET = Operation(_decode_get, steps.get_iteration, _response)
LIST = Operation(_decode_list, steps.list_iterations, _list_response)
UPDATE = Operation(_decode_update, steps.update_iteration, _update_response)
DELETE = Operation(_decode_delete, steps.delete_iteration, empty)

VERSION = "/buckets/{bucket_name}/versions/{fingerprint}"
ROUTES: list[Route] = [
    route("POST", "/buckets/{bucket_name}/versions", CREATE, "CreateVersion", Permission.WRITE),
    route("GET", "/buckets/{bucket_name}/versions", LIST, "ListVersions", Permission.READ, pure=True),
    route("GET", VERSION, GET, "GetVersion", Permission.READ, pure=True),
    route("PATCH", VERSION, UPDATE, "UpdateVersion", Permission.WRITE),
    route("DELETE", VERSION, DELETE, "DeleteVersion", Permission.WRITE),
]
