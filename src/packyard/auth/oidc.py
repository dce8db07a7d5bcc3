"""Single sign-on's relying party: OpenID Connect's authorization code flow with state, nonce and PKCE.

The protocol is Authlib's (the authorization request, PKCE's S256 challenge, the token request and the
client's authentication to it, the discovery document's checks, the ID token's claims: iss, aud, exp,
iat, nonce, azp, at_hash) and joserfc's, Authlib's JOSE library (the ID token's signature, checked
with the provider's published keys, asymmetric algorithms only). The HTTP calls are packyard's own
httpx calls, each bounded in time and size, because Authlib's httpx integration is being moved to
another HTTP library: the parts used here are the framework-free ones.

Discovery (<issuer>/.well-known/openid-configuration) and the provider's keys are fetched when first
needed and kept for an hour; a token signed with a key id not in the kept set fetches the keys again
(a provider's key rotation), at most once a minute. Whatever goes wrong with the provider becomes an
SsoError, which the console shows as a page: never an exception out of the request.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from packyard.auth.oidc_settings import OidcSettings
from packyard.domain.models import Role

MAX_RESPONSE_BYTES = 1024 * 1024
CACHE_SECONDS = 3600.0
KEY_REFRESH_SECONDS = 60.0
LEEWAY_SECONDS = 60
# Asymmetric signatures only: an ID token is checked against the provider's published keys.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class SsoError(Exception):
    """Why single sign-on did not sign someone in, in words for that person; status is the page's."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Flow:
    """What the browser carries (sealed) from /sign-in/oidc to the callback."""

    state: str
    nonce: str
    verifier: str  # PKCE's code verifier
    redirect_uri: str
    next: str
    expires_at: int  # unix seconds


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in, and the role packyard gives them."""

    subject: str  # "<issuer> <sub>": unique across providers
    email: str
    role: Role


def _provider_error(what: str) -> SsoError:
    return SsoError(f"the single sign-on provider could not be reached or answered wrongly ({what}); try again later")


class OidcClient:
    def __init__(self, settings: OidcSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # ---- outbound calls, bounded

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """The status and JSON body of one call to the provider, in at most timeout_seconds overall."""
        timeout = self.settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with (
                    httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=self.transport) as client,
                    client.stream(method, url, **kwargs) as response,
                ):
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise _provider_error("an answer larger than 1 MiB")
                    status = response.status_code
        except TimeoutError:
            raise _provider_error(f"no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise _provider_error(type(exc).__name__) from None
        try:
            return status, httpx.Response(status, content=bytes(body)).json()
        except ValueError:
            raise _provider_error(f"HTTP {status} without JSON") from None

    async def _get(self, url: str) -> dict[str, Any]:
        status, body = await self._call("GET", url, headers={"accept": "application/json"})
        if status != 200 or not isinstance(body, dict):
            raise _provider_error(f"HTTP {status} from {url}")
        return body

    # ---- discovery and keys, cached

    async def metadata(self, now: datetime) -> dict[str, Any]:
        if self._metadata is not None and now.timestamp() - self._metadata_at < CACHE_SECONDS:
            return self._metadata
        found = await self._get(get_well_known_url(self.settings.issuer, external=True))
        document = OpenIDProviderMetadata(found)
        try:
            document.validate()
        except (ValueError, KeyError) as exc:
            raise _provider_error(f"its discovery document is not valid: {exc}") from None
        if found.get("issuer") != self.settings.issuer:
            raise _provider_error(f"its discovery document names the issuer {found.get('issuer')!r}")
        self._metadata, self._metadata_at = found, now.timestamp()
        return found

    async def _key_set(self, now: datetime, *, refresh: bool = False) -> KeySet:
        fresh = now.timestamp() - self._keys_at < (KEY_REFRESH_SECONDS if refresh else CACHE_SECONDS)
        if self._keys is not None and fresh:
            return self._keys
        metadata = await self.metadata(now)
        try:
            keys = KeySet.import_key_set(await self._get(str(metadata["jwks_uri"])))  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise _provider_error("its signing keys (JWKS) can't be read") from None
        self._keys, self._keys_at = keys, now.timestamp()
        return keys

    # ---- the flow

    async def start(self, redirect_uri: str, next_path: str, now: datetime, lifetime: int = 600) -> tuple[str, Flow]:
        """The provider's authorization URL to send the browser to, and the flow the browser keeps."""
        metadata = await self.metadata(now)
        flow = Flow(
            state=generate_token(32),
            nonce=generate_token(32),
            verifier=generate_token(64),
            redirect_uri=redirect_uri,
            next=next_path,
            expires_at=int(now.timestamp()) + lifetime,
        )
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            client_id=self.settings.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self.settings.scopes,
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),  # type: ignore[no-untyped-call]
            code_challenge_method="S256",
        )
        return str(url), flow

    async def finish(self, flow: Flow, params: Mapping[str, str], now: datetime) -> Identity:
        """The identity in the provider's answer to the flow (the callback's query), after the state,
        the code's exchange and the ID token are checked. Raises SsoError."""
        state = params.get("state", "")
        if not state or not hmac.compare_digest(state.encode(), flow.state.encode()):
            raise SsoError("this sign-in did not start here or has expired; start it again", 400)
        if params.get("error"):
            said = params.get("error_description") or params["error"]
            raise SsoError(f"the single sign-on provider did not sign you in: {said[:200]}", 401)
        code = params.get("code", "")
        if not code:
            raise SsoError("the single sign-on provider sent no authorization code", 400)
        metadata = await self.metadata(now)
        token = await self._exchange(metadata, code, flow)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise _provider_error("its token answer holds no ID token")
        claims = await self._verify(metadata, id_token, token.get("access_token"), flow.nonce, now)
        return self._identity(claims)

    async def _exchange(self, metadata: Mapping[str, Any], code: str, flow: Flow) -> dict[str, Any]:
        body = prepare_token_request(
            "authorization_code", redirect_uri=flow.redirect_uri, code=code, code_verifier=flow.verifier
        )
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        auth = ClientAuth(self.settings.client_id, self.settings.client_secret, method)
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        url, headers, body = auth.prepare("POST", metadata["token_endpoint"], headers, body)  # type: ignore[no-untyped-call]
        status, answer = await self._call("POST", url, headers=headers, content=str(body).encode())
        if status != 200 or not isinstance(answer, dict):
            said = answer.get("error") if isinstance(answer, dict) else None
            if said:
                raise SsoError(f"the single sign-on provider refused the sign-in code ({str(said)[:100]})", 401)
            raise _provider_error(f"HTTP {status} from its token endpoint")
        return answer

    async def _verify(
        self, metadata: Mapping[str, Any], id_token: str, access_token: object, nonce: str, now: datetime
    ) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ALGORITHMS]
        try:
            try:
                decoded = jwt.decode(id_token, await self._key_set(now), algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, await self._key_set(now, refresh=True), algorithms=algorithms)
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": self.settings.issuer},
                "aud": {"essential": True, "value": self.settings.client_id},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
            params = {"nonce": nonce, "client_id": self.settings.client_id}
            if isinstance(access_token, str):
                params["access_token"] = access_token
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError) as exc:
            raise SsoError(f"the single sign-on provider's ID token was refused: {_why(exc)}", 401) from None
        return dict(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise SsoError("the single sign-on provider sent no email address for you (the `email` claim)", 403)
        if claims.get("email_verified") is False:
            raise SsoError("the single sign-on provider says your email address is not verified", 403)
        role = self.settings.role_for(claims)
        if role is None:
            raise SsoError(
                f"your account at {self.settings.name} is not given a role in packyard "
                f"(its `{self.settings.claim}` claim holds none of the values mapped to a role); "
                "ask an admin to map it",
                403,
            )
        return Identity(f"{self.settings.issuer} {claims['sub']}", email, role)


def _why(exc: Exception) -> str:
    if isinstance(exc, JoseError):
        return exc.description or exc.error
    return "it can't be read"
