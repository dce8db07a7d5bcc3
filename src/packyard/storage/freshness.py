"""What a request reads first, with the token's principal: whether the project of its path is there
(inside the principal's organization) and the project's change stamp, by which the read cache
(pipeline/cache.py) knows whether an answer it keeps still holds.

- `principal_with_project`: inside a unit of work, the principal, the project's stamp and its registry
  in one statement (SqlUnitOfWork.principal_with_project; the runner asks for it explicitly);
- `principal_and_stamp`: the read cache's hit path, one statement outside any transaction;
- `AsyncStampReader`: the hit path for many waiting requests at once, on PostgreSQL.

A project of another organization than the principal's reads as missing (no stamp, no registry), which
is how tenancy refuses it (domain.tenants.reach).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from packyard.domain.models import Principal, Registry
from packyard.storage.db import Database, DatabaseUnavailable
from packyard.storage.raw import Raw
from packyard.storage.repositories.principals import PRINCIPAL_COLUMNS, PrincipalRow, principal_from
from packyard.storage.repositories.registries import REGISTRY_COLUMNS, registry_from


@dataclass(frozen=True, slots=True)
class PrincipalWithProject:
    """A token's principal and the project a request names, as one statement read them."""

    principal: Principal
    # The project's change stamp, read before any of the data a request then reads (so an answer is
    # never older than its stamp); None: no such project inside the principal's organization.
    stamp: int | None
    registry: Registry | None  # the project's registry; None when it has none (or there is no project)

    @property
    def project_found(self) -> bool:
        """Whether the project exists inside the principal's organization."""
        return self.stamp is not None


_PRINCIPAL_WITH_PROJECT = (
    f"SELECT {', '.join('p.' + c for c in PRINCIPAL_COLUMNS.split(', '))}, "
    "(SELECT change_stamp FROM project WHERE id = ? AND organization_id = p.organization_id) AS change_stamp, "
    f"{', '.join(f'r.{c} AS registry_{c}' for c in REGISTRY_COLUMNS.split(', '))} "
    "FROM principal p LEFT JOIN registry r ON r.project_id = ? AND r.organization_id = p.organization_id "
    "WHERE p.id = ?"
)
_PRINCIPAL = f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE id = ?"
_WIDTH = len(PrincipalRow._fields)


def principal_with_project(raw: Raw, principal_id: str, project_id: str) -> PrincipalWithProject | None:
    """The principal, and in the same statement the project's change stamp and registry, inside the
    principal's organization; None when the principal doesn't exist. project_id must be a well-formed
    id (PostgreSQL's text refuses a NUL); for any other, call principal_alone."""
    row = raw.first(_PRINCIPAL_WITH_PROJECT, (project_id, project_id, principal_id))
    if row is None:
        return None
    stamp, registry = row[_WIDTH], row[_WIDTH + 1 :]
    return PrincipalWithProject(
        principal_from(tuple(row[:_WIDTH])),
        None if stamp is None else int(stamp),
        registry_from(registry) if registry[0] is not None else None,
    )


def principal_alone(raw: Raw, principal_id: str) -> PrincipalWithProject | None:
    """The principal, with no project found: for a request whose project id is not a well-formed id."""
    row = raw.first(_PRINCIPAL, (principal_id,))
    return None if row is None else PrincipalWithProject(principal_from(tuple(row)), None, None)


_PRINCIPAL_AND_STAMP = (
    f"SELECT {PRINCIPAL_COLUMNS}, (SELECT change_stamp FROM project "
    "WHERE id = ? AND organization_id = principal.organization_id) FROM principal WHERE id = ?"
)


def principal_and_stamp(db: Database, principal_id: str, project_id: str) -> tuple[Principal, int | None] | None:
    """A token's principal and the project's change stamp in one statement outside any transaction
    (the read cache's hit path); None when the principal no longer exists."""
    row = db.peek(_PRINCIPAL_AND_STAMP, (project_id, principal_id))
    if row is None:
        return None
    columns, stamp = row[:-1], row[-1]
    return principal_from(columns), (None if stamp is None else int(stamp))


# PostgreSQL only (= ANY): the principals and stamps a batch of waiting requests needs, in one statement.
# A stamp row carries its project's organization, so a stamp is handed only to a principal of that
# organization (CheckBatch).
_PRINCIPALS_AND_STAMPS = (
    f"SELECT 'p' AS kind, {PRINCIPAL_COLUMNS}, NULL::bigint AS change_stamp FROM principal WHERE id = ANY(%s) "
    "UNION ALL SELECT 's', id, organization_id, NULL, NULL, NULL, NULL, NULL, NULL, change_stamp "
    "FROM project WHERE id = ANY(%s)"
)


class AsyncStampReader:
    """principal_and_stamp for many requests at once, on an asynchronous PostgreSQL connection of its own
    (autocommit), so that the event loop serves other requests while the round trip is under way."""

    def __init__(self, db: Database) -> None:
        self._conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def fetch(
        self, principal_ids: set[str], project_ids: set[str]
    ) -> tuple[dict[str, Principal], dict[str, tuple[str, int]]]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            cursor = await self._conn.execute(_PRINCIPALS_AND_STAMPS, (sorted(principal_ids), sorted(project_ids)))
            rows = await cursor.fetchall()
        except Exception as exc:
            await self.close()
            raise DatabaseUnavailable(str(exc)) from exc
        principals: dict[str, Principal] = {}
        stamps: dict[str, tuple[str, int]] = {}  # project id -> its organization and stamp
        for row in rows:
            if row[0] == "s":
                stamps[row[1]] = (row[2], int(row[-1]))
                continue
            principal = principal_from(tuple(row[1:-1]))
            principals[principal.id] = principal
        return principals, stamps

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception:  # already broken
                return
