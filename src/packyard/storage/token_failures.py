"""The token endpoint's failure counters (table token_failure), for auth/service.py's FailureThrottle.

Shared by every process on the database. Reads happen in the token request's own read transaction; the
writes (a failure counted, a success clearing its pair's count) run in a write transaction of their own,
on the failure path only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from packyard.auth.service import FailureCount
from packyard.storage import schema as t
from packyard.storage.codecs import from_us, to_us

_US = timedelta(microseconds=1)


class SqlTokenFailures:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def read(self, source: str, client_id: str) -> dict[str, FailureCount]:
        """The rows of the pair (source, client_id) and of the source alone (key ""), by client id."""
        row = t.token_failure
        found = self.conn.execute(
            sa.select(row.c.client_id, row.c.failures, row.c.first_at, row.c.locked_until).where(
                row.c.address == source, row.c.client_id.in_([client_id, ""])
            )
        )
        return {r.client_id: FailureCount(r.failures, from_us(r.first_at), from_us(r.locked_until)) for r in found}

    def add_failure(
        self,
        source: str,
        client_id: str,
        now: datetime,
        *,
        limit: int,
        window: timedelta,
        lockout: timedelta,
        keep: timedelta,
    ) -> None:
        """One more failure for the key, in one upsert: a count whose window (from its first failure) has
        passed starts again at 1; reaching `limit` locks the key until now + lockout. The row is kept
        until now + keep."""
        row = t.token_failure
        at = to_us(now)
        locked = at + lockout // _US
        insert = (postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert)(row)
        stale = row.c.first_at <= at - window // _US
        count = sa.case((stale, 1), else_=row.c.failures + 1)
        stmt = insert.values(
            address=source,
            client_id=client_id,
            failures=1,
            first_at=at,
            locked_until=locked if limit <= 1 else 0,
            expires_at=at + keep // _US,
        ).on_conflict_do_update(
            index_elements=[row.c.address, row.c.client_id],
            set_={
                "failures": count,
                "first_at": sa.case((stale, at), else_=row.c.first_at),
                "locked_until": sa.case((count >= limit, locked), else_=row.c.locked_until),
                "expires_at": at + keep // _US,
            },
        )
        self.conn.execute(stmt)

    def clear(self, source: str, client_id: str) -> None:
        row = t.token_failure
        self.conn.execute(row.delete().where(row.c.address == source, row.c.client_id == client_id))

    def sweep(self, now: datetime) -> None:
        """Delete the dead rows of every source (indexed by expires_at)."""
        row = t.token_failure
        self.conn.execute(row.delete().where(row.c.expires_at <= to_us(now)))
