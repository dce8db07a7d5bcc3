"""The read cache's hit path (pipeline/cache.py): the token's principal and the project's change stamp,
read by one statement outside any transaction (`principal_and_stamp`), or for many waiting requests at
once on PostgreSQL (`AsyncStampReader`)."""

from __future__ import annotations

from typing import Any

import psycopg

from packyard.domain.models import Principal
from packyard.storage.db import Database, DatabaseUnavailable
from packyard.storage.repositories.principals import PRINCIPAL_COLUMNS, principal_from

# The stamp is read only inside the principal's own organization: a project of another organization
# reads as missing (no stamp), and the request then goes the ordinary way, which refuses it.
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
