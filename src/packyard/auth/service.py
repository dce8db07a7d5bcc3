"""Principals and token issue/verification, on top of the unit of work."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from packyard.auth import credentials as creds
from packyard.auth import tokens
from packyard.auth.vault import Vault
from packyard.domain.errors import InvalidArgument, NotFound, Unauthenticated
from packyard.domain.models import Principal, Role
from packyard.domain.ports import UnitOfWork
from packyard.ids import new_ulid


@dataclass(frozen=True, slots=True)
class NewPrincipal:
    principal: Principal
    client_secret: str


def create_principal(
    uow: UnitOfWork,
    *,
    organization_id: str,
    project_id: str | None,
    role: Role,
    name: str,
    now: datetime,
) -> NewPrincipal:
    if uow.tenants.get_organization(organization_id) is None:
        raise NotFound(f"organization {organization_id} does not exist")
    if project_id is not None and uow.tenants.get_project(organization_id, project_id) is None:
        raise NotFound(f"project {project_id} does not exist in organization {organization_id}")
    if not name:
        raise InvalidArgument("a principal needs a name")
    secret = creds.new_client_secret()
    principal = Principal(
        id=new_ulid(),
        client_id=creds.new_client_id(),
        name=name,
        organization_id=organization_id,
        project_id=project_id,
        role=role,
        secret_hash=creds.hash_secret(secret),
        created_at=now,
    )
    uow.principals.add(principal)
    return NewPrincipal(principal, secret)


def ensure_signing_key(uow: UnitOfWork) -> None:
    if uow.signing_keys.current() is None:
        uow.signing_keys.add(new_ulid(), tokens.new_signing_salt())


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class FailureThrottle:
    """After `limit` failed attempts for one client id within `window`, refuse it for `lockout` seconds.

    Kept in memory per process (each replica counts on its own); unknown and known client ids are
    treated alike, so the answer reveals nothing about which exist. Bounded in size.
    """

    def __init__(self, limit: int = 10, window: int = 300, lockout: int = 60, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window)
        self.lockout = timedelta(seconds=lockout)
        self.max_clients = max_clients
        self._failures: OrderedDict[str, list[datetime]] = OrderedDict()

    def check(self, client_id: str, now: datetime) -> None:
        # failed() keeps only failures within `window` of the newest, so `limit` of them lock the client out
        # for `lockout` after the newest (what Retry-After announces), however old the first ones become.
        recent = self._failures.get(client_id, [])
        if len(recent) >= self.limit:
            until = recent[-1] + self.lockout
            if now < until:
                raise Throttled(max(1, math.ceil((until - now).total_seconds())))

    def failed(self, client_id: str, now: datetime) -> None:
        recent = [t for t in self._failures.pop(client_id, []) if now - t < self.window]
        recent.append(now)
        self._failures[client_id] = recent[-self.limit :]
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client_id: str) -> None:
        self._failures.pop(client_id, None)


class TokenService:
    """Issues and verifies tokens; signing keys are immutable once written, so they are cached.

    The database keeps each signing key's id and a random salt, not the key: the key is derived from the
    salt and the server secret (Vault.derive), so a copy of the database (a stolen file, a pg_dump) can't
    mint tokens. Databases written before this held the key itself in that column; it is now only a salt,
    so tokens issued before the upgrade are refused and clients fetch new ones (the HCP SDKs do so when
    theirs expire; a running `packer build` may need a restart)."""

    VERIFIED_CACHE = 10_000
    PURPOSE = "token-signing/v1"

    def __init__(self, ttl_seconds: int, vault: Vault, throttle: FailureThrottle | None = None) -> None:
        self.ttl_seconds = ttl_seconds
        self.vault = vault
        self.throttle = throttle or FailureThrottle()
        self._keys: dict[str, bytes] = {}
        # Tokens whose signature checked out. A token and its key never change, so the check holds;
        # expiry is still compared with the clock, and the principal is still read, on every request.
        self._verified: dict[str, tokens.TokenClaims] = {}

    def authenticate_client(self, uow: UnitOfWork, client_id: str, client_secret: str, now: datetime) -> Principal:
        self.throttle.check(client_id, now)
        principal = uow.principals.get_by_client_id(client_id) if client_id else None
        if principal is None:
            creds.dummy_verify(client_secret)
        elif creds.verify_secret(client_secret, principal.secret_hash):
            self.throttle.succeeded(client_id)
            return principal
        self.throttle.failed(client_id, now)
        raise Unauthenticated("invalid client credentials")

    def issue(self, uow: UnitOfWork, principal: Principal, now: datetime) -> str:
        current = uow.signing_keys.current()
        if current is None:
            ensure_signing_key(uow)
            current = uow.signing_keys.current()
            assert current is not None
        key_id, salt = current
        key = self._keys.get(key_id)
        if key is None:
            key = self._keys[key_id] = self._derive(key_id, salt)
        return tokens.issue(key_id, key, principal.id, now, self.ttl_seconds)

    def _derive(self, key_id: str, salt: bytes) -> bytes:
        return self.vault.derive(f"{self.PURPOSE}/{key_id}", salt)

    def verify(self, uow: UnitOfWork, token: str, now: datetime) -> tokens.TokenClaims:
        claims = self._verified.get(token)
        if claims is None:

            def lookup(key_id: str) -> bytes | None:
                key = self._keys.get(key_id)
                if key is None:
                    salt = uow.signing_keys.get(key_id)
                    if salt is not None:
                        key = self._keys[key_id] = self._derive(key_id, salt)
                return key

            claims = tokens.verify(token, lookup, now, max_lifetime=self.ttl_seconds)
            if len(self._verified) >= self.VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        elif claims.expires_at <= now.timestamp():
            raise Unauthenticated("the bearer token has expired; request a new one from /oauth2/token")
        return claims

    def cached_claims(self, token: str, now: datetime) -> tokens.TokenClaims | None:
        """The claims of a token whose signature this process already checked, if it has not expired;
        None sends the caller to verify(), which reports why a token is refused."""
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= now.timestamp():
            return None
        return claims

    def principal_for(self, uow: UnitOfWork, token: str, now: datetime) -> Principal:
        claims = self.verify(uow, token, now)
        principal = uow.principals.get(claims.principal_id)
        if principal is None:
            raise Unauthenticated("the principal of this token no longer exists")
        return principal
