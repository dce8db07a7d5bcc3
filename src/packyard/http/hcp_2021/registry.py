"""CreateRegistry, GetRegistry, UpdateRegistry, DeleteRegistry."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.commands import RegistryChange, RegistryDeletion
from packyard.domain.models import Permission, Registry, Tier
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.bodies import CreateRegistryBody, UpdateRegistryBody
from packyard.http.hcp_2021.common import route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.ids import new_ulid
from packyard.pipeline.operations import Operation, Place, no_command


def _operation_response(place: Place, registry: Registry) -> wire.RegistryOperationResponse:
    return wire.RegistryOperationResponse(
        registry=wire.registry(registry),
        operation=wire.operation(new_ulid(), place.organization_id, place.project_id, place.now),
    )


def _response(place: Place, registry: Registry) -> wire.RegistryResponse:
    return wire.RegistryResponse(registry=wire.registry(registry))


def _decode_create(request: Request) -> RegistryChange:
    body = request.json(CreateRegistryBody)
    return RegistryChange(wire_choice(wire.TIER, body.feature_tier, "feature_tier") or Tier.UNSET)


def _decode_update(request: Request) -> RegistryChange:
    body = request.json(UpdateRegistryBody)
    tier = wire_choice(wire.TIER, body.feature_tier, "feature_tier") or Tier.UNSET
    return RegistryChange(tier, bool(body.activate))


def _decode_delete(request: Request) -> RegistryDeletion:
    return RegistryDeletion(hard=request.query_bool("hard_delete"))


CREATE = Operation(_decode_create, steps.create_registry, _operation_response)
GET = Operation(no_command, steps.get_registry, _response)
UPDATE = Operation(_decode_update, steps.update_registry, _operation_response)
DELETE = Operation(_decode_delete, steps.delete_registry, _operation_response)

ROUTES: list[Route] = [
    route("PUT", "/registry", CREATE, "CreateRegistry", Permission.ADMIN),
    route("GET", "/registry", GET, "GetRegistry", Permission.READ, pure=True),
    route("PATCH", "/registry", UPDATE, "UpdateRegistry", Permission.ADMIN),
    route("DELETE", "/registry", DELETE, "DeleteRegistry", Permission.ADMIN),
]
