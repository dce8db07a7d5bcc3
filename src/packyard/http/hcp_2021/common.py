"""Helpers shared by the 2021-04-30 handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packyard.domain.models import Permission
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.http.routing import Route as _Route

API = "packer/2021-04-30"
PREFIX = f"/{API}/organizations/{{org}}/projects/{{project}}"


def route(
    method: str,
    path: str,
    handler: object,
    name: str,
    permission: Permission,
    *,
    write: bool | None = None,
    cache: bool = False,
    prepare: Callable[[Request], Any] | None = None,
    refuse_early: Callable[..., None] | None = None,
) -> Route:
    """A 2021-04-30 operation. `cache`: its answer depends only on the path, the query, the principal's role,
    the project's data and the clock as the domain reports it (Ctx.valid_until), never on headers."""
    return _Route(
        method,
        PREFIX + path,
        handler,  # type: ignore[arg-type]
        f"PackerService_{name}",
        permission=permission,
        write=write,
        cache=cache,
        prepare=prepare,
        refuse_early=refuse_early,
        api=API,
    )


def decoded(kind: type[Any]) -> Callable[[Request], Any]:
    """A route's prepare step that only decodes the body into `kind` (Route.prepare)."""

    def prepare(request: Request) -> Any:
        return request.json(kind)

    return prepare


def paging(request: Request) -> dict[str, object]:
    return {
        "page_size": request.query_int("pagination.page_size"),
        "next_token": request.query_str("pagination.next_page_token"),
        "previous_token": request.query_str("pagination.previous_page_token"),
    }


def sorting(request: Request) -> list[str]:
    return request.query_all("sorting.order_by")
