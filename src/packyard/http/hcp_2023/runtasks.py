"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey (declared in http/runtasks.py, the same key
as 2021-04-30's), GetRunTaskConfig and UpdateRunTaskConfig."""

from __future__ import annotations

from packyard.domain import registry, steps
from packyard.domain.models import Permission, RunTaskBehaviour
from packyard.http import runtasks, wire
from packyard.http.hcp_2023.bodies import UpdateRunTaskConfigBody
from packyard.http.hcp_2023.common import API, route
from packyard.http.request import Request, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place, no_command

ROUTES: list[Route] = runtasks.routes(route, API)


# ---- GetRunTaskConfig and UpdateRunTaskConfig (2023-01-01 only; the value is the registry's)

RUN_TASK_BEHAVIOUR = {"UNSET": RunTaskBehaviour.UNSET, "FAIL": RunTaskBehaviour.FAIL, "WARN": RunTaskBehaviour.WARN}
RUN_TASK_BEHAVIOUR_TEXT = {v: k for k, v in RUN_TASK_BEHAVIOUR.items()} | {RunTaskBehaviour.UNSET: ""}


class RunTaskConfigResponse(wire.Base, kw_only=True):
    on_untracked_image: str = ""


def _decode_update(request: Request) -> RunTaskBehaviour:
    body = request.json(UpdateRunTaskConfigBody)
    return wire_choice(RUN_TASK_BEHAVIOUR, body.on_untracked_image, "on_untracked_image") or RunTaskBehaviour.UNSET


def _config_response(place: Place, behaviour: RunTaskBehaviour) -> RunTaskConfigResponse:
    return RunTaskConfigResponse(on_untracked_image=RUN_TASK_BEHAVIOUR_TEXT[behaviour])


CONFIG = Operation(no_command, steps.run_task_behaviour, _config_response)
UPDATE_CONFIG = Operation(_decode_update, registry.set_run_task_behaviour, _config_response)

ROUTES += [
    route("GET", "/runtasks/config", CONFIG, "GetRunTaskConfig", Permission.READ, pure=True),
    route("PATCH", "/runtasks/config", UPDATE_CONFIG, "UpdateRunTaskConfig", Permission.ADMIN),
]
