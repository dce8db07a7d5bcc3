"""A small segment-trie router: templates such as /images/{bucket_slug}/channels/{slug}."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from packyard.domain.errors import Term
from packyard.domain.models import Permission
from packyard.http.request import Request

if TYPE_CHECKING:
    from packyard.pipeline.operations import Operation
    from packyard.pipeline.services import Services


class Access(StrEnum):
    PUBLIC = "public"  # no token: listed in one place, http/public.py
    PRINCIPAL = "principal"  # a valid bearer token
    PROJECT = "project"  # a valid token whose principal may act in the path's organization and project


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of one API tree at one method and path. Every route but the public ones names an
    Operation (decode, call, answer: pipeline/operations.py); the runner decides where each step runs."""

    method: str
    template: str
    operation_id: str  # HashiCorp's, the same in every API version (PackerService_GetChannel)
    operation: Operation[Any, Any] | None = None
    access: Access = Access.PROJECT
    permission: Permission = Permission.READ
    write: bool | None = None  # the transaction kind; by default every method but GET writes
    # A pure read: its answer depends only on the path, the query, the principal's role, the project's data
    # and the domain's clock, never on headers. The runner may answer it from the read cache (pipeline/cache.py).
    pure: bool = False
    # The API tree the route projects (packer/2021-04-30): part of the read cache's key, since the same
    # operation of two trees answers the same question with different bytes.
    api: str = ""
    # How the tree words the domain's terms in error messages (domain/errors.py); None: the domain's own.
    words: Mapping[Term, str] | None = None
    # Public routes only: answered from the services and the request, without a token (may be async).
    public: Callable[[Services, Request], Any] | None = None
    # The route's own request-body limit, when it takes more than the general one (UploadSbom): the name
    # of the domain.rules.Limits field that holds it, so that settings decide its value.
    body_limit: str | None = None

    @property
    def writes(self) -> bool:
        return self.method != "GET" if self.write is None else self.write


@dataclass(slots=True)
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, _Node] | None = None
    routes: dict[str, Route] = field(default_factory=dict)


class Router:
    def __init__(self) -> None:
        self._root = _Node()
        self.routes: list[Route] = []
        self._depth = 0  # the most segments a template has: a longer path matches nothing

    def add(self, route: Route) -> None:
        self._depth = max(self._depth, len(route.template.strip("/").split("/")))
        node = self._root
        for segment in route.template.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                name = segment[1:-1]
                if node.param is None:
                    node.param = (name, _Node())
                elif node.param[0] != name:
                    raise ValueError(f"conflicting parameter names at {route.template}: {node.param[0]} vs {name}")
                node = node.param[1]
            else:
                node = node.static.setdefault(segment, _Node())
        if route.method in node.routes:
            raise ValueError(f"duplicate route {route.method} {route.template}")
        node.routes[route.method] = route
        self.routes.append(route)

    def match(self, method: str, path: str, raw: bytes | None = None) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path parameters, whether the path exists for some other method).

        With `raw` (the undecoded ASGI raw_path) the path is split before percent-decoding, so an encoded
        slash (%2F, as Go's url.PathEscape sends it) stays inside its parameter instead of adding a segment."""
        params: dict[str, str] = {}
        node = self._root
        if raw is not None:
            parts = raw.strip(b"/").split(b"/")
            segments = [(unquote_to_bytes(s) if b"%" in s else s).decode("utf-8", "replace") for s in parts]
        else:
            segments = path.strip("/").split("/")
        for segment in segments:
            nxt = node.static.get(segment)
            if nxt is None and node.param is not None and segment:
                params[node.param[0]] = segment
                nxt = node.param[1]
            if nxt is None:
                break
            node = nxt
        else:
            route = node.routes.get(method)
            if route is not None:
                return route, params, True
        # A literal segment that is also a parameter's value (a channel named "assign" beside
        # .../channels/assign): search again, a parameter where the literal leads nowhere.
        if len(segments) > self._depth:
            return None, {}, False
        found = self._search(self._root, segments, 0, method, {})
        if found is not None:
            return found[0], found[1], True
        return None, {}, self._search(self._root, segments, 0, None, {}) is not None

    def allowed(self, path: str, raw: bytes | None = None) -> list[str]:
        """The methods some route takes at this path (sorted; empty for a path no route has). Asked only
        when match() found no route for the request's method, so matched requests never pay for it."""
        if raw is not None:
            parts = raw.strip(b"/").split(b"/")
            segments = [(unquote_to_bytes(s) if b"%" in s else s).decode("utf-8", "replace") for s in parts]
        else:
            segments = path.strip("/").split("/")
        methods: set[str] = set()
        if len(segments) <= self._depth:
            self._collect(self._root, segments, 0, methods)
        return sorted(methods)

    def _collect(self, node: _Node, segments: list[str], i: int, methods: set[str]) -> None:
        if i == len(segments):
            methods.update(node.routes)
            return
        static = node.static.get(segments[i])
        if static is not None:
            self._collect(static, segments, i + 1, methods)
        if node.param is not None and segments[i]:
            self._collect(node.param[1], segments, i + 1, methods)

    def _search(
        self, node: _Node, segments: list[str], i: int, method: str | None, params: dict[str, str]
    ) -> tuple[Route | None, dict[str, str]] | None:
        """The route for `method` (any route, for None) below node, literals first."""
        if i == len(segments):
            if method is None:
                return (None, params) if node.routes else None
            route = node.routes.get(method)
            return (route, params) if route is not None else None
        segment = segments[i]
        static = node.static.get(segment)
        if static is not None:
            found = self._search(static, segments, i + 1, method, params)
            if found is not None:
                return found
        if node.param is not None and segment:
            return self._search(node.param[1], segments, i + 1, method, {**params, node.param[0]: segment})
        return None
