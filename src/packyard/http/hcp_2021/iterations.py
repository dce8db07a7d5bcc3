"""CreateIteration, GetIteration, ListIterations, UpdateIteration, DeleteIteration."""

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
from packyard.http.durations import iteration_changes
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateIterationBody, UpdateIterationBody
from packyard.http.hcp_2021.common import empty, page, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.ids import new_ulid
from packyard.pipeline.operations import Operation, Place


def _response(place: Place, it: Iteration) -> wire.IterationResponse:
    return wire.IterationResponse(iteration=wire.iteration(it, place.organization_id))


def _decode_create(request: Request) -> NewIteration:
    body = request.json(CreateIterationBody)
    template = wire_choice(wire.TEMPLATE_TYPE, body.template_type, "template_type") or TemplateType.UNSET
    return NewIteration(request.params["bucket_slug"], body.fingerprint or "", template)


def _decode_get(request: Request) -> IterationQuery:
    return IterationQuery(
        request.params["bucket_slug"],
        iteration_id=request.query_str("iteration_id"),
        fingerprint=request.query_str("fingerprint"),
        version=request.query_int("incremental_version", bits=32),
    )


def _decode_list(request: Request) -> IterationListing:
    return IterationListing(request.params["bucket_slug"], page(request))


def _list_response(place: Place, listed: Page[ListedIteration]) -> wire.ListIterationsResponse:
    org = place.organization_id
    return wire.ListIterationsResponse(
        iterations=[wire.iteration_for_list(i.iteration, i.build_statuses, org) for i in listed.items],
        pagination=wire.pagination(listed.next_token, listed.previous_token),
    )


def _decode_update(request: Request) -> IterationChange:
    body = request.json(UpdateIterationBody)
    changes = iteration_changes(
        complete=body.complete,
        revoke_at=body.revoke_at,
        revoke_in=body.revoke_in,
        message=body.revocation_message,
        restore=body.restore,
        skip_descendants=body.skip_descendants_revocation,
        rollback_channels=bool(body.rollback_channels),
    )
    return IterationChange(request.params["iteration_id"], changes, body.bucket_slug or "")


def _update_response(place: Place, result: UpdateResult) -> wire.UpdateIterationResponse:
    operation = None
    if result.cascaded:
        # Descendants are revoked in the same transaction (or when a scheduled revocation falls due).
        operation = wire.operation(new_ulid(), place.organization_id, place.project_id, place.now)
        if result.scheduled:
            operation.state = "QUEUED"
    iteration = wire.iteration(result.iteration, place.organization_id)
    return wire.UpdateIterationResponse(iteration=iteration, operation=operation)


def _decode_delete(request: Request) -> IterationDeletion:
    return IterationDeletion(
        request.params["iteration_id"],
        bucket_slug=request.query_str("bucket_slug"),
        rollback_channels=request.query_bool("rollback_channels"),
    )


CREATE = Operation(_decode_create, steps.create_iteration, _response)
GET = Operation(_decode_get, steps.get_iteration, _response)
LIST = Operation(_decode_list, steps.list_iterations, _list_response)
UPDATE = Operation(_decode_update, steps.update_iteration, _update_response)
DELETE = Operation(_decode_delete, steps.delete_iteration, empty)

ROUTES: list[Route] = [
    route("POST", "/images/{bucket_slug}/iterations", CREATE, "CreateIteration", Permission.WRITE),
    route("GET", "/images/{bucket_slug}/iterations", LIST, "ListIterations", Permission.READ, pure=True),
    route("GET", "/images/{bucket_slug}/iteration", GET, "GetIteration", Permission.READ, pure=True),
    route("PATCH", "/iterations/{iteration_id}", UPDATE, "UpdateIteration", Permission.WRITE),
    route("DELETE", "/iterations/{iteration_id}", DELETE, "DeleteIteration", Permission.WRITE),
]
