"""Bearer tokens: compact JWTs signed with HS256.

The key is derived from the server secret and a salt kept in the database (auth/service.py), so every
server process on one database with the same server secret accepts the tokens of every other, and the
database alone can't mint one. Verification is strict: HS256 only, the signature in its one canonical
encoding (base64url without padding), and a lifetime (exp - iat) no longer than the configured one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from packyard.domain.errors import Unauthenticated


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


MAX_TOKEN_LENGTH = 4096  # packyard's own are about 250 characters


@dataclass(frozen=True, slots=True)
class TokenClaims:
    principal_id: str
    issued_at: int
    expires_at: int


def new_signing_salt() -> bytes:
    return secrets.token_bytes(32)


def issue(key_id: str, secret: bytes, principal_id: str, now: datetime, ttl_seconds: int) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id}, separators=(",", ":")).encode())
    iat = int(now.timestamp())
    payload = {
        "iss": "packyard",
        "sub": principal_id,
        "iat": iat,
        "exp": iat + ttl_seconds,
        "jti": secrets.token_hex(8),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    signature = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def verify(token: str, key_lookup: Callable[[str], bytes | None], now: datetime, *, max_lifetime: int) -> TokenClaims:
    """Check signature, lifetime and expiry; raises Unauthenticated (code 16) with a reason that leaks
    nothing. A token whose exp - iat exceeds max_lifetime seconds is refused however it was signed."""
    invalid = Unauthenticated("the bearer token is not valid")
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN_LENGTH:
        raise invalid
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise invalid from None
    # One encoding per signature: urlsafe_b64decode skips characters outside the alphabet and ignores
    # padding and trailing bits, so several texts would otherwise carry the same signature.
    if _b64(signature) != parts[2]:
        raise invalid
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(header.get("kid"), str):
        raise invalid
    secret = key_lookup(header["kid"])
    if secret is None:
        raise invalid
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise invalid
    try:
        payload = json.loads(_unb64(parts[1]))
        claims = TokenClaims(str(payload["sub"]), int(payload["iat"]), int(payload["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise invalid from None
    if claims.expires_at - claims.issued_at > max_lifetime:
        raise invalid
    if claims.expires_at <= now.timestamp():
        raise Unauthenticated("the bearer token has expired; request a new one from /oauth2/token")
    return claims
