"""Packyard's own public routes: health and readiness."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from packyard.http.oauth import issue_token, token_needs_post
from packyard.http.request import Request
from packyard.http.routing import Access, Route


def healthz(svc: object, request: Request) -> bytes:
    return b'{"status":"ok"}'


def readyz(svc: object, request: Request) -> bytes:
    from packyard.http.app import Services  # noqa: PLC0415

    assert isinstance(svc, Services)

    def ping(conn: Connection) -> None:
        conn.exec_driver_sql("SELECT 1")

    svc.db.run(ping, write=False)
    return b'{"status":"ready"}'


# Every route that answers without a bearer token is listed here, and only here.
PUBLIC_ROUTES: list[Route] = [
    Route("POST", "/oauth2/token", issue_token, "OAuth2Token", access=Access.PUBLIC),
    Route("POST", "/oauth/token", issue_token, "OAuthToken", access=Access.PUBLIC),
    # GET on the token paths is a client's mistake worth naming: 405 with Allow: POST, not "no such path".
    Route("GET", "/oauth2/token", token_needs_post, "OAuth2TokenGet", access=Access.PUBLIC),
    Route("GET", "/oauth/token", token_needs_post, "OAuthTokenGet", access=Access.PUBLIC),
    Route("GET", "/healthz", healthz, "Health", access=Access.PUBLIC),
    Route("GET", "/readyz", readyz, "Ready", access=Access.PUBLIC),
]
