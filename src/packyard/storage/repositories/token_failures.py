"""The token endpoint's failure counters (table token_failure): domain/ports.py FailureStore, for
auth/service.py's FailureThrottle.

Shared by every process on the database. Reads happen in the token request's own read transaction; the
writes (a failure counted, a success clearing its pair's count) run in a write transaction of their own,
on the failure path only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from packyard.domain.models import FailureCount
from packyard.storage.codecs import from_us, to_us
from packyard.storage.repositories import Repository

_US = timedelta(microseconds=1)
# One failure more for a key, in one statement. In the update, token_failure.* is the row as it was: a
# count whose window (from its first failure) has passed (first_at <= ?) starts again at 1, and
# reaching the limit locks the key.
_ADD_FAILURE = (
    "INSERT INTO token_failure (address, client_id, failures, first_at, locked_until, expires_at) "
    "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (address, client_id) DO UPDATE SET "
    "failures = CASE WHEN token_failure.first_at <= ? THEN 1 ELSE token_failure.failures + 1 END, "
    "first_at = CASE WHEN token_failure.first_at <= ? THEN ? ELSE token_failure.first_at END, "
    "locked_until = CASE WHEN (CASE WHEN token_failure.first_at <= ? THEN 1 ELSE token_failure.failures + 1 END) >= ? "
    "THEN ? ELSE token_failure.locked_until END, "
    "expires_at = ?"
)


class SqlTokenFailures(Repository):
    def read(self, source: str, client_id: str) -> dict[str, FailureCount]:
        """The rows of the pair (source, client_id) and of the source alone (key ""), by client id."""
        found = self.raw.rows(
            "SELECT client_id, failures, first_at, locked_until FROM token_failure "
            "WHERE address = ? AND client_id IN (?, ?)",
            (source, client_id, ""),
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
        at = to_us(now)
        locked = at + lockout // _US
        stale = at - window // _US
        expires = at + keep // _US
        self.raw.execute(
            _ADD_FAILURE,
            (
                source,
                client_id,
                at,
                locked if limit <= 1 else 0,
                expires,
                stale,
                stale,
                at,
                stale,
                limit,
                locked,
                expires,
            ),
        )

    def clear(self, source: str, client_id: str) -> None:
        self.raw.execute("DELETE FROM token_failure WHERE address = ? AND client_id = ?", (source, client_id))

    def sweep(self, now: datetime) -> None:
        """Delete the dead rows of every source (indexed by expires_at)."""
        self.raw.execute("DELETE FROM token_failure WHERE expires_at <= ?", (to_us(now),))
