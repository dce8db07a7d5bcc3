"""CreateRegistry, GetRegistry, UpdateRegistry, DeleteRegistry."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.commands import RegistryChange, RegistryDeletion
from packyard.domain.errors import InvalidArgument
from packyard.domain.models import Permission, Registry, Tier
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import CreateRegistryBody, UpdateRegistryBody
from packyard.http.hcp_2023.common import route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.ids import new_ulid
from packyard.pipeline.operations import Operation, Place, no_command

# UpdateRegistry's mask paths: as the provider's test helper sends them, and as the document names the
# fields (config.activated).
MASK_PATHS = {
    "featuretier": "feature_tier",
    "feature_tier": "feature_tier",
    "config.featuretier": "feature_tier",
    "config.feature_tier": "feature_tier",
    "activated": "activated",
    "config.activated": "activated",
}


def _operation_response(place: Place, registry: Registry) -> wire.RegistryOperationResponse:
    return wire.RegistryOperationResponse(
        registry=wire.registry(registry),
        operation=shared.operation(new_ulid(), place.organization_id, place.project_id, place.now),
    )


def _response(place: Place, registry: Registry) -> wire.RegistryResponse:
    return wire.RegistryResponse(registry=wire.registry(registry))


def _decode_create(request: Request) -> RegistryChange:
    body = request.json(CreateRegistryBody)
    return RegistryChange(wire_choice(wire.TIER, body.feature_tier, "feature_tier") or Tier.UNSET)


def _decode_update(request: Request) -> RegistryChange:
    """The mask names what changes (featureTier, activated); without one, what the body gives."""
    body = request.json(UpdateRegistryBody)
    paths = set()
    for raw in (body.update_mask or "").split(","):
        name = raw.strip()
        if name:
            path = MASK_PATHS.get(name.lower())
            if path is None:
                raise InvalidArgument(f"update_mask path {name[:40]!r} is not one of: featureTier, activated")
            paths.add(path)
    tier = wire_choice(wire.TIER, body.feature_tier, "feature_tier") or Tier.UNSET
    if paths and "feature_tier" not in paths:
        tier = Tier.UNSET
    activate = bool(body.activated) and (not paths or "activated" in paths)
    return RegistryChange(tier, activate)


def _decode_delete(request: Request) -> RegistryDeletion:
    return RegistryDeletion(hard=False)


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
