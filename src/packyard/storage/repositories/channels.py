"""Channels and their assignment history."""

from __future__ import annotations

from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import Channel, ChannelAssignment
from packyard.domain.pagination import PageRequest
from packyard.storage.codecs import from_us, insert_new, keyset, opt_from_us, opt_to_us, to_us
from packyard.storage.repositories import Repository

_CHANNEL_SQL = (
    "SELECT c.id, c.bucket_id, b.slug AS bucket_slug, c.project_id, c.slug, c.managed, c.restricted, "
    "c.iteration_id, c.author_id, c.assigned_by, c.assigned_at, c.created_at, c.updated_at "
    "FROM channel c JOIN bucket b ON b.id = c.bucket_id"
)
_HISTORY_SQL = (
    "SELECT id, channel_id, iteration_id, iteration_fingerprint, iteration_version, author_id, created_at "
    "FROM channel_assignment"
)
# The fields a page of a channel's history may be ordered by, and their columns.
_HISTORY_ORDER = {"created_at": "created_at", "id": "id"}


def _channel(row: Any) -> Channel:
    return Channel(
        id=row.id,
        bucket_id=row.bucket_id,
        bucket_slug=row.bucket_slug,
        project_id=row.project_id,
        slug=row.slug,
        managed=bool(row.managed),
        restricted=bool(row.restricted),
        iteration_id=row.iteration_id,
        author_id=row.author_id,
        assigned_by=row.assigned_by,
        assigned_at=opt_from_us(row.assigned_at),
        created_at=from_us(row.created_at),
        updated_at=from_us(row.updated_at),
    )


def _assignment(row: Any) -> ChannelAssignment:
    return ChannelAssignment(
        id=row.id,
        channel_id=row.channel_id,
        iteration_id=row.iteration_id,
        iteration_fingerprint=row.iteration_fingerprint,
        iteration_version=row.iteration_version,
        author_id=row.author_id,
        created_at=from_us(row.created_at),
    )


def _values(channel: Channel) -> dict[str, Any]:
    return {
        "restricted": channel.restricted,
        "iteration_id": channel.iteration_id,
        "author_id": channel.author_id,
        "assigned_by": channel.assigned_by,
        "assigned_at": opt_to_us(channel.assigned_at),
        "updated_at": to_us(channel.updated_at),
    }


class SqlChannels(Repository):
    def get(self, bucket_id: str, slug: str, *, for_update: bool = False) -> Channel | None:
        lock = self.raw.for_update("c") if for_update else ""
        row = self.raw.first(f"{_CHANNEL_SQL} WHERE c.bucket_id = ? AND c.slug = ?{lock}", (bucket_id, slug))
        return _channel(row) if row else None

    def get_by_id(self, project_id: str, channel_id: str) -> Channel | None:
        row = self.raw.first(f"{_CHANNEL_SQL} WHERE c.project_id = ? AND c.id = ?", (project_id, channel_id))
        return _channel(row) if row else None

    def for_bucket(self, bucket_id: str) -> list[Channel]:
        rows = self.raw.rows(f"{_CHANNEL_SQL} WHERE c.bucket_id = ? ORDER BY c.created_at, c.id", (bucket_id,))
        return [_channel(r) for r in rows]

    def pointing_at(self, iteration_id: str, *, for_update: bool = False) -> list[Channel]:
        """The channels pointing at an iteration; locked (PostgreSQL) for callers that move them."""
        lock = self.raw.for_update("c") if for_update else ""
        rows = self.raw.rows(f"{_CHANNEL_SQL} WHERE c.iteration_id = ? ORDER BY c.id{lock}", (iteration_id,))
        return [_channel(r) for r in rows]

    def add(self, channel: Channel) -> None:
        insert_new(
            self.raw,
            "channel",
            {
                "id": channel.id,
                "bucket_id": channel.bucket_id,
                "project_id": channel.project_id,
                "slug": channel.slug,
                "managed": channel.managed,
                "created_at": to_us(channel.created_at),
                **_values(channel),
            },
            lambda: AlreadyExists(
                "bucket {bucket!r} already has a channel {slug!r}",
                subject=Term.CHANNEL,
                bucket=channel.bucket_slug,
                slug=channel.slug,
            ),
        )

    def save(self, channel: Channel) -> None:
        self.raw.update("channel", _values(channel), "id", channel.id)

    def delete(self, channel_id: str) -> None:
        self.raw.execute("DELETE FROM channel WHERE id = ?", (channel_id,))

    def add_assignment(self, assignment: ChannelAssignment) -> None:
        self.raw.insert(
            "channel_assignment",
            {
                "id": assignment.id,
                "channel_id": assignment.channel_id,
                "iteration_id": assignment.iteration_id,
                "iteration_fingerprint": assignment.iteration_fingerprint,
                "iteration_version": assignment.iteration_version,
                "author_id": assignment.author_id,
                "created_at": to_us(assignment.created_at),
            },
        )

    def history(self, channel_id: str, page: PageRequest) -> list[ChannelAssignment]:
        sql, params = keyset(f"{_HISTORY_SQL} WHERE channel_id = ?", (channel_id,), _HISTORY_ORDER, page)
        return [_assignment(r) for r in self.raw.rows(sql, params)]

    def history_count(self, channel_id: str, limit: int | None = None) -> int:
        if limit is not None:  # counting stops there: a channel moved a million times costs what 10,000 do
            row = self.raw.first(
                "SELECT count(*) AS n FROM (SELECT 1 FROM channel_assignment WHERE channel_id = ? LIMIT ?) AS h",
                (channel_id, limit),
            )
        else:
            row = self.raw.first("SELECT count(*) AS n FROM channel_assignment WHERE channel_id = ?", (channel_id,))
        return int(row.n) if row else 0
