"""A synchronous test client that drives the ASGI app over httpx and checks every HCP response
against HashiCorp's published Swagger document as it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from tests.contract.validator import SwaggerContract

# Operations whose responses the suite has validated, with the statuses seen (reported at the end), by
# "<document version> <operation id>": HashiCorp's operation ids are the same in 2021-04-30 and 2023-01-01.
VALIDATED: dict[str, set[int]] = {}


class ApiClient:
    def __init__(
        self,
        app: Any,
        contracts: list[SwaggerContract],
        loop: asyncio.AbstractEventLoop,
        org_id: str,
        project_id: str,
    ) -> None:
        self.loop = loop
        self.contracts = contracts
        self.org_id = org_id
        self.project_id = project_id
        self.token = ""
        self.app = app
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://packyard.test")

    @property
    def prefix(self) -> str:
        return f"/packer/2021-04-30/organizations/{self.org_id}/projects/{self.project_id}"

    def p(self, path: str) -> str:
        return self.prefix + path

    def p23(self, path: str) -> str:
        """A 2023-01-01 path of the client's project."""
        return f"/packer/2023-01-01/organizations/{self.org_id}/projects/{self.project_id}{path}"

    def validate(self, method: str, path: str, response: httpx.Response) -> None:
        for contract in self.contracts:
            op = contract.match(method, path)
            if op is None:
                continue
            assert response.headers["content-type"] == "application/json"
            contract.validate_response(op.operation_id, response.status_code, response.json())
            VALIDATED.setdefault(f"{contract.version} {op.operation_id}", set()).add(response.status_code)
            return

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        use = self.token if token is None else token
        if use and "authorization" not in {k.lower() for k in all_headers}:
            all_headers["Authorization"] = f"Bearer {use}"
        if json is not None and content is None:
            import json as _json

            content = _json.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if content is None and method in ("POST", "PUT", "PATCH"):
            content = b"{}"
        response = await self.http.request(method, path, params=params, headers=all_headers, content=content)
        self.validate(method, path, response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.arequest(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        """Close the client, and the database connections the app opened on this client's loop (on
        PostgreSQL the request path keeps a pool per event loop: storage/green.py)."""
        self.loop.run_until_complete(self.http.aclose())
        db = getattr(getattr(self.app, "services", None), "db", None)
        if db is not None:
            self.loop.run_until_complete(db.aclose())


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def error(response: httpx.Response, code: int, status: int | None = None) -> str:
    """Assert an HCP error body with this gRPC code (and HTTP status); return its message."""
    from packyard.http.errors import HTTP_STATUS

    body = response.json()
    assert body["code"] == code, f"expected code {code}, got {response.status_code}: {body}"
    assert response.status_code == (status or HTTP_STATUS[code]), response.text
    assert body["message"] == body["error"]
    assert body["details"] == []
    assert body["message"]
    return str(body["message"])
