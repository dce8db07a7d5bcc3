"""Principals (API clients) by id or client id; also the principal read with its project (freshness)."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from sqlalchemy.engine import Connection

from packyard.domain.errors import AlreadyExists
from packyard.domain.models import Principal, Role
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.db import GROUP_ROWS
from packyard.storage.prefetch import Prefetched, forget_group_rows
from packyard.storage.raw import Raw
from packyard.storage.repositories import Repository
from packyard.storage.repositories.registries import REGISTRY_COLUMNS, registry_from

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


# The project's stamp and registry are read only inside the principal's own organization: a project of
# another organization reads as missing (no stamp), which is how tenancy refuses it (Tenants.project_in).
_PRINCIPAL_WITH_PROJECT = (
    f"SELECT {', '.join('p.' + c for c in PRINCIPAL_COLUMNS.split(', '))}, "
    "(SELECT change_stamp FROM project WHERE id = ? AND organization_id = p.organization_id) AS change_stamp, "
    f"{', '.join(f'r.{c} AS registry_{c}' for c in REGISTRY_COLUMNS.split(', '))} "
    "FROM principal p LEFT JOIN registry r ON r.project_id = ? AND r.organization_id = p.organization_id "
    "WHERE p.id = ?"
)


class SqlPrincipals(Repository):
    def __init__(self, conn: Connection, prefetched: Prefetched | None = None, raw: Raw | None = None) -> None:
        super().__init__(conn, raw)
        self.prefetched = prefetched

    def add(self, principal: Principal) -> None:
        forget_group_rows(self.conn)
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
        if self.prefetched is not None:
            return self._get_with_project(principal_id, self.prefetched)
        row = self.raw.first(f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE id = ?", (principal_id,))
        return principal(row) if row else None

    def _get_with_project(self, principal_id: str, prefetched: Prefetched) -> Principal | None:
        """The principal, and in the same statement the project's change stamp and registry, which
        every project-scoped request reads next (first, so the stamp is never newer than the data)."""
        project_id = prefetched.project_id
        group: dict[Any, tuple[Any, ...]] | None = self.conn.info.get(GROUP_ROWS)
        key = (principal_id, project_id)
        values = group.get(key) if group is not None else None
        if values is None:
            row = self.raw.first(_PRINCIPAL_WITH_PROJECT, (project_id, project_id, principal_id))
            if row is None:
                return None
            values = tuple(row)
            if group is not None:  # the next units of the group read the same rows (see GROUP_ROWS)
                group[key] = values
        width = len(PrincipalRow._fields)
        stamp, registry = values[width], values[width + 1 :]
        prefetched.stamps[project_id] = None if stamp is None else int(stamp)
        prefetched.registries[project_id] = registry_from(registry) if registry[0] is not None else None
        found = principal_from(values[:width])
        prefetched.checked_in, prefetched.found = found.organization_id, stamp is not None
        return found

    def get_by_client_id(self, client_id: str) -> Principal | None:
        row = self.raw.first(f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE client_id = ?", (client_id,))
        return principal(row) if row else None

    def all(self) -> list[Principal]:
        rows = self.raw.rows(f"SELECT {PRINCIPAL_COLUMNS} FROM principal ORDER BY created_at, id")
        return [principal(r) for r in rows]

    def delete(self, principal_id: str) -> None:
        forget_group_rows(self.conn)
        self.raw.execute("DELETE FROM principal WHERE id = ?", (principal_id,))
