"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey."""

from __future__ import annotations

import msgspec

from packyard.domain import registry as service
from packyard.domain.context import Ctx
from packyard.domain.models import Permission
from packyard.http.hcp_2021.bodies import Body
from packyard.http.hcp_2021.common import route
from packyard.http.request import Request, base_url
from packyard.http.routing import Route


class RunTaskResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    api_url: str = ""
    hmac_key: str = ""


class HmacKeyResponse(msgspec.Struct, omit_defaults=True, kw_only=True):
    hmac_key: str = ""


def get(ctx: Ctx, request: Request) -> object:
    registry, key = service.run_task_key(ctx, request.params["task_type"])
    url = f"{base_url(request)}/packer/2021-04-30/runtask/{registry.run_task_api_id}/{request.params['task_type']}"
    return RunTaskResponse(api_url=url, hmac_key=key)


def regenerate(ctx: Ctx, request: Request) -> object:
    request.json(Body)  # the body carries nothing but `location`, yet it must be a JSON object
    return HmacKeyResponse(hmac_key=service.regenerate_hmac_key(ctx))


ROUTES: list[Route] = [
    # A GET that writes: the key is made on first use.
    route("GET", "/runtasks/{task_type}", get, "GetRegistryTFCRunTaskAPI", Permission.ADMIN, write=True),
    route("PATCH", "/runtasks/hmac", regenerate, "RegenerateTFCRunTaskHmacKey", Permission.ADMIN),
]
