"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey."""

from __future__ import annotations

import msgspec

from packyard.domain import registry as service
from packyard.domain.commands import RunTaskQuery
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.http.hcp_2021.bodies import Body
from packyard.http.hcp_2021.common import API, route
from packyard.http.request import Request, base_url
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


class RunTaskResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    api_url: str = ""
    hmac_key: str = ""


class HmacKeyResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    hmac_key: str = ""


def _decode_get(request: Request) -> RunTaskQuery:
    return RunTaskQuery(request.params["task_type"], base_url(request))


def _get(ctx: Ctx, query: RunTaskQuery) -> RunTaskResponse:
    registry, key = service.run_task_key(ctx, query.task_type)
    url = f"{query.base_url}/{API}/runtask/{registry.run_task_api_id}/{query.task_type}"
    return RunTaskResponse(api_url=url, hmac_key=key)


def _decode_regenerate(request: Request) -> None:
    request.json(Body)  # the body carries nothing but `location`, yet it must be a JSON object


def _regenerate(ctx: Ctx, command: None) -> HmacKeyResponse:
    return HmacKeyResponse(hmac_key=service.regenerate_hmac_key(ctx))


def _as_is(place: Place, answer: msgspec.Struct) -> msgspec.Struct:
    return answer


GET = Operation(_decode_get, _get, _as_is)
REGENERATE = Operation(_decode_regenerate, _regenerate, _as_is)

ROUTES: list[Route] = [
    # A GET that writes: the key is made on first use.
    route("GET", "/runtasks/{task_type}", GET, "GetRegistryTFCRunTaskAPI", Permission.ADMIN, write=True),
    route("PATCH", "/runtasks/hmac", REGENERATE, "RegenerateTFCRunTaskHmacKey", Permission.ADMIN),
]
