"""A small OpenID Connect provider for the single sign-on tests: a real HTTP server on 127.0.0.1 in a
thread, serving discovery, its keys (JWKS), /authorize (which signs in whoever the test says and
redirects back with a code) and /token (which checks the client's secret and PKCE's verifier, then
returns an RS256 ID token signed with a key it generated, with joserfc)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "packyard-console"
CLIENT_SECRET = "stand-in-client-secret-0123456789"


@dataclass
class Person:
    sub: str
    email: str
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True


@dataclass
class Provider:
    now: Callable[[], int]  # the test's clock, in unix seconds: the ID token's iat and exp
    port: int = 0
    person: Person | None = None  # who /authorize signs in next
    audience: str = CLIENT_ID  # what the ID token's aud says (a test may make it wrong)
    nonce: str | None = None  # a nonce to put in the ID token instead of the one asked for
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "stand-in-1"}))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0
    hits: dict[str, int] = field(default_factory=dict)  # requests per path

    def rotate(self) -> None:
        """A new signing key (and only it in the JWKS), as a provider's key rotation does."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"stand-in-{secrets.token_hex(4)}"})

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        assert query["client_id"] == CLIENT_ID
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        assert self.person is not None, "the test names who signs in"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"person": self.person, **query}
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return 302, {"location": target}, b""

    def token(self, headers: dict[str, str], form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return _json(401, {"error": "invalid_client"})
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None or form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "invalid_grant"})
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return _json(400, {"error": "invalid_grant"})
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if challenge.rstrip(b"=").decode() != asked["code_challenge"]:
            return _json(400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
        person: Person = asked["person"]
        now = self.now()
        claims = {
            "iss": self.issuer,
            "sub": person.sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce if self.nonce is not None else asked["nonce"],
            "email": person.email,
            "email_verified": person.email_verified,
            "groups": person.groups,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        return _json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token})


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(body).encode()


@contextmanager
def running(now: Callable[[], int]) -> Iterator[Provider]:
    provider = Provider(now)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, answer: tuple[int, dict[str, str], bytes]) -> None:
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            provider.hits[url.path] = provider.hits.get(url.path, 0) + 1
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._send(_json(200, provider.discovery()))
            elif url.path == "/jwks":
                self._send(_json(200, dict(KeySet([provider.key]).as_dict(private=False))))
            elif url.path == "/authorize":
                self._send(provider.authorize(query))
            else:
                self._send(_json(404, {"error": "not_found"}))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            if urlsplit(self.path).path == "/token":
                self._send(provider.token(headers, form))
            else:
                self._send(_json(404, {"error": "not_found"}))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
