"""CreateRegistry, GetRegistry, UpdateRegistry, DeleteRegistry."""

from __future__ import annotations

from packyard.domain import registry as service
from packyard.domain.context import Ctx
from packyard.domain.models import Permission, Tier
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateRegistryBody, UpdateRegistryBody
from packyard.http.hcp_2021.common import route
from packyard.http.request import Request, enum_value
from packyard.http.routing import Route
from packyard.ids import new_ulid


def _answer(ctx: Ctx, registry: wire.Registry | None) -> wire.RegistryOperationResponse:
    return wire.RegistryOperationResponse(
        registry=registry,
        operation=wire.operation(new_ulid(), ctx.organization_id, ctx.project_id, ctx.now),
    )


def create(ctx: Ctx, request: Request) -> object:
    body = request.json(CreateRegistryBody)
    tier = enum_value(Tier, body.feature_tier, "feature_tier") or Tier.UNSET
    return _answer(ctx, wire.registry(service.create(ctx, tier)))


def get(ctx: Ctx, request: Request) -> object:
    return wire.RegistryResponse(registry=wire.registry(service.get(ctx)))


def update(ctx: Ctx, request: Request) -> object:
    body = request.json(UpdateRegistryBody)
    tier = enum_value(Tier, body.feature_tier, "feature_tier") or Tier.UNSET
    return _answer(ctx, wire.registry(service.update(ctx, tier=tier, activate=bool(body.activate))))


def delete(ctx: Ctx, request: Request) -> object:
    return _answer(ctx, wire.registry(service.delete(ctx, hard=request.query_bool("hard_delete"))))


ROUTES: list[Route] = [
    route("PUT", "/registry", create, "CreateRegistry", Permission.ADMIN),
    route("GET", "/registry", get, "GetRegistry", Permission.READ, cache=True),
    route("PATCH", "/registry", update, "UpdateRegistry", Permission.ADMIN),
    route("DELETE", "/registry", delete, "DeleteRegistry", Permission.ADMIN),
]
