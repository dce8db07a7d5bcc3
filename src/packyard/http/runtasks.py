"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey, which read the same in 2021-04-30 and
2023-01-01 (and share one key): each tree declares them with its own route maker and prefix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from packyard.domain import registry as service
from packyard.domain import steps
from packyard.domain.commands import RunTaskQuery
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.http.request import Request, base_url
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


class RunTaskResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    api_url: str = ""
    hmac_key: str = ""


class HmacKeyResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    hmac_key: str = ""


class _AnyObject(msgspec.Struct):
    pass


def _decode_regenerate(request: Request) -> None:
    request.json(_AnyObject)  # the body carries nothing but `location`, yet it must be a JSON object


def _hmac_key(place: Place, key: str) -> HmacKeyResponse:
    return HmacKeyResponse(hmac_key=key)


def _as_is(place: Place, answer: msgspec.Struct) -> msgspec.Struct:
    return answer


def routes(route: Callable[..., Route], api: str) -> list[Route]:
    """The two routes, declared by a tree's `route` for its API path (packer/2023-01-01)."""

    def decode_get(request: Request) -> RunTaskQuery:
        return RunTaskQuery(request.params["task_type"], base_url(request))

    def get(ctx: Ctx, query: RunTaskQuery) -> RunTaskResponse:
        # A call of the wire's own, not a domain step: the URL it answers is this tree's path.
        registry, key = service.run_task_key(ctx, query.task_type)
        url = f"{query.base_url}/{api}/runtask/{registry.run_task_api_id}/{query.task_type}"
        return RunTaskResponse(api_url=url, hmac_key=key)

    get_op: Operation[Any, Any] = Operation(decode_get, get, _as_is)
    regenerate_op: Operation[Any, Any] = Operation(_decode_regenerate, steps.regenerate_hmac_key, _hmac_key)
    return [
        # A GET that writes: the key is made on first use.
        route("GET", "/runtasks/{task_type}", get_op, "GetRegistryTFCRunTaskAPI", Permission.ADMIN, write=True),
        route("PATCH", "/runtasks/hmac", regenerate_op, "RegenerateTFCRunTaskHmacKey", Permission.ADMIN),
    ]
