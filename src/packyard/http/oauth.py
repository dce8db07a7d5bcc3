"""POST /oauth2/token and /oauth/token: the OAuth2 client-credentials grant as the HCP Go SDK sends it.

golang.org/x/oauth2 first tries HTTP Basic, then retries with client_id/client_secret in the form when
that fails; both are accepted. `audience` is accepted and ignored. Errors use OAuth2's JSON shape.
Failed attempts are throttled per (client id, source address) and per source address, in the database
(auth/service.py, FailureThrottle, says how). GET on the token paths answers 405 with `Allow: POST`.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote

import msgspec

from packyard.auth import credentials as creds
from packyard.auth.service import Throttled
from packyard.domain.errors import DomainError, Unauthenticated
from packyard.http.request import Request
from packyard.pipeline import tokens
from packyard.pipeline.services import Services

_encoder = msgspec.json.Encoder()


class OAuthError(DomainError):
    def __init__(
        self, status: int, error: str, description: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.headers = headers or []

    def body(self) -> bytes:
        return _encoder.encode({"error": self.error, "error_description": self.message})


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # The Go SDK query-escapes both parts before encoding them (RFC 6749 section 2.3.1).
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def issue_token(svc: Services, request: Request) -> bytes:
    try:
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "the request body is not UTF-8") from None
    grant = (form.get("grant_type") or [""])[-1]
    if grant != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    basic = _basic_credentials(request.header(b"authorization"))
    if basic is not None:
        client_id, client_secret = basic
    else:
        client_id = (form.get("client_id") or [""])[-1]
        client_secret = (form.get("client_secret") or [""])[-1]
    # Longer than anything this server issues: refused before anything is looked up, counted or kept.
    if not creds.plausible(client_id, client_secret) or "\x00" in client_id:  # PostgreSQL text can't hold NUL
        raise OAuthError(401, "invalid_client", "client authentication failed")
    try:
        token = await tokens.issue(svc, client_id, client_secret, request.client_host)
    except Unauthenticated:
        raise OAuthError(401, "invalid_client", "client authentication failed") from None
    except Throttled as exc:
        raise OAuthError(
            429,
            "invalid_client",
            f"too many failed attempts; retry after {exc.retry_after} seconds",
            [(b"retry-after", str(exc.retry_after).encode())],
        ) from None
    return _encoder.encode(TokenResponse(token, "Bearer", svc.tokens.ttl_seconds))


def token_needs_post(svc: Services, request: Request) -> bytes:
    raise OAuthError(405, "invalid_request", "the token endpoint accepts only POST", [(b"allow", b"POST")])
