"""Buckets, and their counters: the iteration count and the next incremental version."""

from __future__ import annotations

from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import Bucket
from packyard.domain.pagination import PageRequest
from packyard.storage.codecs import from_us, insert_new, keyset, to_us
from packyard.storage.raw import as_json
from packyard.storage.repositories import Repository

_BUCKET_SQL = (
    "SELECT id, project_id, slug, description, labels, platforms, latest_iteration_id, latest_version, "
    "iteration_count, created_at, updated_at FROM bucket"
)
# The fields a page of buckets may be ordered by, and their columns.
_ORDER = {"slug": "slug", "created_at": "created_at", "updated_at": "updated_at", "id": "id"}


def _bucket(row: Any) -> Bucket:
    return Bucket(
        id=row.id,
        project_id=row.project_id,
        slug=row.slug,
        description=row.description,
        labels=dict(as_json(row.labels) or {}),
        platforms=list(as_json(row.platforms) or []),
        latest_iteration_id=row.latest_iteration_id,
        latest_version=row.latest_version,
        iteration_count=row.iteration_count,
        created_at=from_us(row.created_at),
        updated_at=from_us(row.updated_at),
    )


class SqlBuckets(Repository):
    def get(self, project_id: str, slug: str, *, for_update: bool = False) -> Bucket | None:
        lock = self.raw.for_update("bucket") if for_update else ""
        row = self.raw.first(f"{_BUCKET_SQL} WHERE project_id = ? AND slug = ?{lock}", (project_id, slug))
        return _bucket(row) if row else None

    def get_by_id(self, project_id: str, bucket_id: str) -> Bucket | None:
        row = self.raw.first(f"{_BUCKET_SQL} WHERE project_id = ? AND id = ?", (project_id, bucket_id))
        return _bucket(row) if row else None

    def page(self, project_id: str, page: PageRequest) -> list[Bucket]:
        sql, params = keyset(f"{_BUCKET_SQL} WHERE project_id = ?", (project_id,), _ORDER, page)
        return [_bucket(r) for r in self.raw.rows(sql, params)]

    def matching(self, project_id: str, text: str, limit: int) -> list[Bucket]:
        # Slugs are letters, digits, '-' and '_' (validation.SLUG_RE); '_' is LIKE's one-character
        # wildcard, so it is escaped. Those whose slug starts with the text come first.
        pattern = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.raw.rows(
            f"{_BUCKET_SQL} WHERE project_id = ? AND lower(slug) LIKE ? ESCAPE '\\' "
            "ORDER BY CASE WHEN lower(slug) LIKE ? ESCAPE '\\' THEN 0 ELSE 1 END, slug LIMIT ?",
            (project_id, f"%{pattern}%", f"{pattern}%", limit),
        )
        return [_bucket(r) for r in rows]

    def add(self, bucket: Bucket) -> None:
        # Packer's bucket upsert tries this first on every build.
        values = {
            "id": bucket.id,
            "project_id": bucket.project_id,
            "slug": bucket.slug,
            "description": bucket.description,
            "labels": bucket.labels,
            "platforms": bucket.platforms,
            "latest_iteration_id": bucket.latest_iteration_id,
            "latest_version": bucket.latest_version,
            "iteration_count": 0,
            "version_counter": 0,
            "created_at": to_us(bucket.created_at),
            "updated_at": to_us(bucket.updated_at),
        }
        insert_new(
            self.raw,
            "bucket",
            values,
            lambda: AlreadyExists("bucket {bucket!r} already exists", subject=Term.BUCKET, bucket=bucket.slug),
        )

    def save(self, bucket: Bucket) -> None:
        values = {
            "description": bucket.description,
            "labels": bucket.labels,
            "platforms": bucket.platforms,
            "updated_at": to_us(bucket.updated_at),
        }
        self.raw.update("bucket", values, "id", bucket.id)

    def set_latest(self, bucket: Bucket) -> None:
        values = {
            "latest_iteration_id": bucket.latest_iteration_id,
            "latest_version": bucket.latest_version,
            "platforms": bucket.platforms,
            "updated_at": to_us(bucket.updated_at),
        }
        self.raw.update("bucket", values, "id", bucket.id)

    def delete(self, bucket_id: str) -> None:
        self.raw.execute("DELETE FROM bucket WHERE id = ?", (bucket_id,))

    def next_version(self, bucket_id: str) -> int:
        # One UPDATE ... RETURNING: the row lock (PostgreSQL) or the write lock (SQLite) makes it atomic.
        row = self.raw.first(
            "UPDATE bucket SET version_counter = version_counter + 1 WHERE id = ? RETURNING version_counter",
            (bucket_id,),
        )
        assert row is not None, f"bucket {bucket_id} vanished"
        return int(row.version_counter)

    def adjust_iteration_count(self, bucket_id: str, delta: int) -> None:
        self.raw.execute("UPDATE bucket SET iteration_count = iteration_count + ? WHERE id = ?", (delta, bucket_id))
