"""CreateIteration, GetIteration, ListIterations, UpdateIteration, DeleteIteration."""

from __future__ import annotations

from packyard.domain import iterations as service
from packyard.domain.context import Ctx
from packyard.domain.models import Iteration, Permission, TemplateType
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateIterationBody, UpdateIterationBody
from packyard.http.hcp_2021.common import paging, route, sorting
from packyard.http.request import Request, enum_value, parse_time
from packyard.http.routing import Deferred, Route
from packyard.ids import new_ulid


def _prepare_create(request: Request) -> tuple[str, TemplateType]:
    body = request.json(CreateIterationBody)
    return body.fingerprint or "", enum_value(TemplateType, body.template_type, "template_type") or TemplateType.UNSET


def _response(it: Iteration, organization_id: str) -> wire.IterationResponse:
    return wire.IterationResponse(iteration=wire.iteration(it, organization_id))


def create(ctx: Ctx, request: Request) -> object:
    fingerprint, template = request.prepared
    it = service.create(ctx, request.params["bucket_slug"], fingerprint=fingerprint, template_type=template)
    return Deferred(_response, it, ctx.organization_id)


def get(ctx: Ctx, request: Request) -> object:
    it = service.get(
        ctx,
        request.params["bucket_slug"],
        iteration_id=request.query_str("iteration_id"),
        fingerprint=request.query_str("fingerprint"),
        version=request.query_int("incremental_version", bits=32),
    )
    return _response(it, ctx.organization_id)


def list_(ctx: Ctx, request: Request) -> object:
    page = service.list_(ctx, request.params["bucket_slug"], order_by=sorting(request), **paging(request))  # type: ignore[arg-type]
    return wire.ListIterationsResponse(
        iterations=[wire.iteration_for_list(i.iteration, i.build_statuses, ctx.organization_id) for i in page.items],
        pagination=wire.pagination(page.next_token, page.previous_token),
    )


def _prepare_update(request: Request) -> service.IterationChanges:
    body = request.json(UpdateIterationBody)
    return service.IterationChanges(
        bucket_slug=body.bucket_slug or "",
        complete=bool(body.complete),
        revoke_at=parse_time(body.revoke_at or "", "revoke_at"),
        revoke_in=body.revoke_in or "",
        revocation_message=body.revocation_message or "",
        restore=bool(body.restore),
        skip_descendants_revocation=bool(body.skip_descendants_revocation),
        rollback_channels=bool(body.rollback_channels),
    )


def update(ctx: Ctx, request: Request) -> object:
    result = service.update(ctx, request.params["iteration_id"], request.prepared)
    operation = None
    if result.cascaded:
        # Descendants are revoked in the same transaction (or when a scheduled revocation falls due).
        operation = wire.operation(new_ulid(), ctx.organization_id, ctx.project_id, ctx.now)
        if result.scheduled:
            operation.state = "QUEUED"
    return Deferred(_update_response, result.iteration, ctx.organization_id, operation)


def _update_response(
    it: Iteration, organization_id: str, operation: wire.Operation | None
) -> wire.UpdateIterationResponse:
    return wire.UpdateIterationResponse(iteration=wire.iteration(it, organization_id), operation=operation)


def delete(ctx: Ctx, request: Request) -> object:
    service.delete(
        ctx,
        request.params["iteration_id"],
        bucket_slug=request.query_str("bucket_slug"),
        rollback_channels=request.query_bool("rollback_channels"),
    )
    return wire.EMPTY


ROUTES: list[Route] = [
    route(
        "POST", "/images/{bucket_slug}/iterations", create, "CreateIteration", Permission.WRITE, prepare=_prepare_create
    ),
    route("GET", "/images/{bucket_slug}/iterations", list_, "ListIterations", Permission.READ, cache=True),
    route("GET", "/images/{bucket_slug}/iteration", get, "GetIteration", Permission.READ, cache=True),
    route("PATCH", "/iterations/{iteration_id}", update, "UpdateIteration", Permission.WRITE, prepare=_prepare_update),
    route("DELETE", "/iterations/{iteration_id}", delete, "DeleteIteration", Permission.WRITE),
]
