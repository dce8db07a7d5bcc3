"""Helpers shared by the 2021-04-30 declarations."""

from __future__ import annotations

from typing import Any

from packyard.domain.commands import PageQuery
from packyard.domain.models import Permission
from packyard.http.hcp_2021 import wire
from packyard.http.hcp_2021.words import WORDS
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

API = "packer/2021-04-30"
PREFIX = f"/{API}/organizations/{{org}}/projects/{{project}}"


def route(
    method: str,
    path: str,
    operation: Operation[Any, Any],
    name: str,
    permission: Permission,
    *,
    write: bool | None = None,
    pure: bool = False,
) -> Route:
    """A 2021-04-30 operation. `pure`: a read whose answer depends only on the path, the query, the
    principal's role, the project's data and the clock as the domain reports it (Ctx.valid_until), never
    on headers."""
    return Route(
        method,
        PREFIX + path,
        f"PackerService_{name}",
        operation,
        permission=permission,
        write=write,
        pure=pure,
        api=API,
        words=WORDS,
    )


def page(request: Request) -> PageQuery:
    return PageQuery(
        size=request.query_int("pagination.page_size"),
        next_token=request.query_str("pagination.next_page_token"),
        previous_token=request.query_str("pagination.previous_page_token"),
        order_by=tuple(request.query_all("sorting.order_by")),
    )


def empty(place: Place, result: object) -> wire.Empty:
    """The answer of the operations that answer nothing but success."""
    return wire.EMPTY
