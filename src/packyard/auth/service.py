"""Principals and token issue/verification, on top of the unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from packyard.auth import credentials as creds
from packyard.auth import tokens
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
        uow.signing_keys.add(new_ulid(), tokens.new_signing_secret())


class TokenService:
    """Issues and verifies tokens; signing keys are immutable once written, so they are cached."""

    def __init__(self, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds
        self._keys: dict[str, bytes] = {}

    def authenticate_client(self, uow: UnitOfWork, client_id: str, client_secret: str) -> Principal:
        principal = uow.principals.get_by_client_id(client_id) if client_id else None
        if principal is None:
            creds.dummy_verify(client_secret)
            raise Unauthenticated("invalid client credentials")
        if not creds.verify_secret(client_secret, principal.secret_hash):
            raise Unauthenticated("invalid client credentials")
        return principal

    def issue(self, uow: UnitOfWork, principal: Principal, now: datetime) -> str:
        current = uow.signing_keys.current()
        if current is None:
            ensure_signing_key(uow)
            current = uow.signing_keys.current()
            assert current is not None
        key_id, secret = current
        self._keys[key_id] = secret
        return tokens.issue(key_id, secret, principal.id, now, self.ttl_seconds)

    def verify(self, uow: UnitOfWork, token: str, now: datetime) -> tokens.TokenClaims:
        def lookup(key_id: str) -> bytes | None:
            secret = self._keys.get(key_id)
            if secret is None:
                secret = uow.signing_keys.get(key_id)
                if secret is not None:
                    self._keys[key_id] = secret
            return secret

        return tokens.verify(token, lookup, now)

    def principal_for(self, uow: UnitOfWork, token: str, now: datetime) -> Principal:
        claims = self.verify(uow, token, now)
        principal = uow.principals.get(claims.principal_id)
        if principal is None:
            raise Unauthenticated("the principal of this token no longer exists")
        return principal
