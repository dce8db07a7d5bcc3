"""Principals and token issue/verification, on top of the unit of work."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from packyard.auth import credentials as creds
from packyard.auth import tokens
from packyard.auth.vault import Vault
from packyard.domain.errors import InvalidArgument, NotFound, Unauthenticated
from packyard.domain.models import Principal, Role
from packyard.domain.ports import FailureStore, UnitOfWork
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


def source_key(host: str) -> str:
    """The address failures are counted under: an IPv4 address, an IPv6 /64 (what one host or customer
    is usually given, so that an attacker can't walk its own /64 to escape the count), "local" for a
    client without an address (a Unix socket); anything else a proxy reported, cut to 64 characters."""
    if not host:
        return "local"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureThrottle:
    """Failed client authentication at the token endpoint, counted in the database so that every
    process (workers, replicas) on it shares the count.

    - Per (client id, source address): `limit` failures within `window` of the first of them lock that
      client id out *for that address* for `lockout` seconds, the right secret included (otherwise the
      answer would still tell a guess right from wrong). The same id from any other address is not
      affected, so a burst of wrong secrets can't lock the real owner out from elsewhere.
    - Per source address, over all client ids: `source_limit` failures within `window` lock the address
      out for `lockout`, whatever id and secret it sends, so one address can't spread its guesses over
      many ids.
    - While locked, an attempt is refused (429, Retry-After) before any lookup and is not counted; once
      the lockout ends, another failure inside the window locks again at once.
    - A success clears its own (client id, address) count, never the address's: an attacker holding one
      valid client can't reset its address's count with it. A success with nothing to clear writes
      nothing.
    - Unknown and known client ids are counted alike, so the answers reveal nothing about which exist.
    - Bounded: client ids longer than the ones packyard issues never get here (credentials.plausible);
      nothing is kept in memory; rows die `window` after their last failure and every failure deletes
      the dead ones; an address makes at most `source_limit` pair rows per window before it is locked
      out (and a locked attempt writes nothing), so an address holds about twice that many at most.
    - Concurrent failures are all counted (one atomic upsert each); a lock can land a few failures late
      when several are in flight at once, since the check reads before the failure is written.
    """

    def __init__(self, limit: int = 10, window: int = 300, lockout: int = 60, source_limit: int = 50) -> None:
        self.limit = limit
        self.source_limit = source_limit
        self.window = timedelta(seconds=window)
        self.lockout = timedelta(seconds=lockout)
        # Past its window and its lockout a row counts for nothing: kept from its last failure for both.
        self.keep = max(self.window, self.lockout)

    def check(self, store: FailureStore, client_id: str, source: str, now: datetime) -> bool:
        """Raise Throttled while the pair or the source is locked out; otherwise whether the pair has
        failures that a success must clear."""
        counts = store.read(source, client_id)
        until = max((c.locked_until for c in counts.values()), default=None)
        if until is not None and now < until:
            raise Throttled(max(1, math.ceil((until - now).total_seconds())))
        return client_id in counts

    def failed(self, store: FailureStore, client_id: str, source: str, now: datetime) -> None:
        """Count one failure for the pair and for the source (in a write transaction)."""
        store.sweep(now)
        span = {"window": self.window, "lockout": self.lockout, "keep": self.keep}
        store.add_failure(source, client_id, now, limit=self.limit, **span)
        store.add_failure(source, "", now, limit=self.source_limit, **span)

    def succeeded(self, store: FailureStore, client_id: str, source: str) -> None:
        store.clear(source, client_id)


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    clear_failures: bool  # the (client id, source) pair had failures: FailureThrottle.succeeded clears them


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

    def authenticate_client(
        self, uow: UnitOfWork, failures: FailureStore, client_id: str, client_secret: str, source: str, now: datetime
    ) -> Authenticated:
        """The principal, unless the throttle refuses (Throttled) or the credentials are wrong
        (Unauthenticated; the caller then counts the failure with throttle.failed, in a write).

        An unknown client id costs what a wrong secret costs: the same statements, one hash."""
        clear = self.throttle.check(failures, client_id, source, now)
        principal = uow.principals.get_by_client_id(client_id)
        if principal is None:
            creds.dummy_verify(client_secret)
        elif creds.verify_secret(client_secret, principal.secret_hash):
            return Authenticated(principal, clear)
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
            raise principal_gone()
        return principal


def principal_gone() -> Unauthenticated:
    """The refusal of a valid token whose principal was deleted since."""
    return Unauthenticated("the principal of this token no longer exists")
