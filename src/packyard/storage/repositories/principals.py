"""Principals (API clients) by id or client id."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from packyard.domain.errors import AlreadyExists
from packyard.domain.models import Principal, Role
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.repositories import Repository

PRINCIPAL_COLUMNS = "id, client_id, name, organization_id, project_id, role, secret_hash, created_at"
PrincipalRow = namedtuple(  # the columns of PRINCIPAL_COLUMNS, in order
    "PrincipalRow", ["id", "client_id", "name", "organization_id", "project_id", "role", "secret_hash", "created_at"]
)


def principal(row: Any) -> Principal:
    return Principal(
        id=row.id,
        client_id=row.client_id,
        name=row.name,
        organization_id=row.organization_id,
        project_id=row.project_id,
        role=Role(row.role),
        secret_hash=row.secret_hash,
        created_at=from_us(row.created_at),
    )


_PRINCIPALS: dict[tuple[Any, ...], Principal] = {}


def principal_from(columns: tuple[Any, ...]) -> Principal:
    """The Principal of a row of PRINCIPAL_COLUMNS, made once per distinct row (the hit path's hot spot)."""
    found = _PRINCIPALS.get(columns)
    if found is None:  # a principal row never changes in place, but it is looked up by all of its columns
        if len(_PRINCIPALS) >= 1024:
            _PRINCIPALS.clear()
        found = _PRINCIPALS[columns] = principal(PrincipalRow._make(columns))
    return found


class SqlPrincipals(Repository):
    def add(self, principal: Principal) -> None:
        insert_new(
            self.raw,
            "principal",
            {
                "id": principal.id,
                "client_id": principal.client_id,
                "name": principal.name,
                "organization_id": principal.organization_id,
                "project_id": principal.project_id,
                "role": principal.role.value,
                "secret_hash": principal.secret_hash,
                "created_at": to_us(principal.created_at),
            },
            lambda: AlreadyExists(f"principal {principal.client_id} already exists"),
        )

    def get(self, principal_id: str) -> Principal | None:
        row = self.raw.first(f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE id = ?", (principal_id,))
        return principal(row) if row else None

    def get_by_client_id(self, client_id: str) -> Principal | None:
        row = self.raw.first(f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE client_id = ?", (client_id,))
        return principal(row) if row else None

    def all(self) -> list[Principal]:
        rows = self.raw.rows(f"SELECT {PRINCIPAL_COLUMNS} FROM principal ORDER BY created_at, id")
        return [principal(r) for r in rows]

    def delete(self, principal_id: str) -> None:
        self.raw.execute("DELETE FROM principal WHERE id = ?", (principal_id,))
