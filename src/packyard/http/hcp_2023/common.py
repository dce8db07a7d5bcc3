"""Helpers shared by the 2023-01-01 declarations."""

from __future__ import annotations

from typing import Any

from packyard.domain.commands import PageQuery
from packyard.domain.models import Permission
from packyard.http import wire
from packyard.http.hcp_2023.words import WORDS
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

API = "packer/2023-01-01"
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
    body_limit: str | None = None,
) -> Route:
    """A 2023-01-01 operation; `pure` as in hcp_2021.common.route, `body_limit` as Route's."""
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
        body_limit=body_limit,
    )


def page(request: Request, names: dict[str, str] | None = None) -> PageQuery:
    """The listing's page. `names` maps 2023's sort fields onto the domain's (`name` is a bucket's slug);
    each `sorting.order_by` entry is a field and an optional ` desc`."""
    order = []
    for entry in request.query_all("sorting.order_by"):
        for part in entry.split(","):
            words = part.split()
            if words:
                order.append(" ".join([(names or {}).get(words[0], words[0]), *words[1:]]))
    return PageQuery(
        size=request.query_int("pagination.page_size"),
        next_token=request.query_str("pagination.next_page_token"),
        previous_token=request.query_str("pagination.previous_page_token"),
        order_by=tuple(order),
    )


def empty(place: Place, result: object) -> wire.Empty:
    """The answer of the operations that answer nothing but success."""
    return wire.EMPTY
