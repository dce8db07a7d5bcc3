"""The token-signing keys' ids and salts (the keys themselves are derived from the server secret)."""

from __future__ import annotations

from datetime import UTC, datetime

from packyard.storage.codecs import to_us
from packyard.storage.repositories import Repository


class SqlSigningKeys(Repository):
    def current(self) -> tuple[str, bytes] | None:
        row = self.raw.first("SELECT id, secret FROM signing_key ORDER BY created_at DESC, id DESC LIMIT 1")
        return (row.id, bytes(row.secret)) if row else None

    def get(self, key_id: str) -> bytes | None:
        row = self.raw.first("SELECT secret FROM signing_key WHERE id = ?", (key_id,))
        return bytes(row.secret) if row else None

    def add(self, key_id: str, secret: bytes) -> None:
        self.raw.insert("signing_key", {"id": key_id, "secret": secret, "created_at": to_us(datetime.now(UTC))})
