"""Iterations, found in their bucket by id, fingerprint or version, or in their project by id; the
ancestry queries revocation walks."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import BuildStatus, Iteration, RevocationType, TemplateType
from packyard.domain.pagination import PageRequest
from packyard.storage.codecs import from_us, insert_new, keyset, opt_from_us, opt_to_us, to_us
from packyard.storage.raw import in_list
from packyard.storage.repositories import Repository

IterationRow = namedtuple(  # the columns of ITERATION_SQL, which is made from it
    "IterationRow",
    [
        "id",
        "bucket_id",
        "bucket_slug",
        "project_id",
        "fingerprint",
        "incremental_version",
        "complete",
        "author_id",
        "template_type",
        "revoke_at",
        "revocation_message",
        "revocation_author",
        "revocation_type",
        "revocation_inherited_from",
        "own_revoke_at",
        "own_revocation_message",
        "own_revocation_author",
        "created_at",
        "updated_at",
    ],
)
ITERATION_SQL = (
    "SELECT "
    + ", ".join("b.slug AS bucket_slug" if c == "bucket_slug" else f"i.{c}" for c in IterationRow._fields)
    + " FROM iteration i JOIN bucket b ON b.id = i.bucket_id"
)
# The fields a page of iterations may be ordered by, and their columns.
_ORDER = {
    "created_at": "i.created_at",
    "updated_at": "i.updated_at",
    "incremental_version": "i.incremental_version",
    "fingerprint": "i.fingerprint",
    "id": "i.id",
}


def iteration(row: Any) -> Iteration:
    return Iteration(
        id=row.id,
        bucket_id=row.bucket_id,
        bucket_slug=row.bucket_slug,
        project_id=row.project_id,
        fingerprint=row.fingerprint,
        incremental_version=row.incremental_version,
        complete=bool(row.complete),
        author_id=row.author_id,
        template_type=TemplateType(row.template_type),
        revoke_at=opt_from_us(row.revoke_at),
        revocation_message=row.revocation_message,
        revocation_author=row.revocation_author,
        revocation_type=RevocationType(row.revocation_type),
        revocation_inherited_from=row.revocation_inherited_from,
        own_revoke_at=opt_from_us(row.own_revoke_at),
        own_revocation_message=row.own_revocation_message,
        own_revocation_author=row.own_revocation_author,
        created_at=from_us(row.created_at),
        updated_at=from_us(row.updated_at),
    )


def _values(it: Iteration) -> dict[str, Any]:
    return {
        "fingerprint": it.fingerprint,
        "incremental_version": it.incremental_version,
        "complete": it.complete,
        "author_id": it.author_id,
        "template_type": it.template_type.value,
        "revoke_at": opt_to_us(it.revoke_at),
        "revocation_message": it.revocation_message,
        "revocation_author": it.revocation_author,
        "revocation_type": it.revocation_type.value,
        "revocation_inherited_from": it.revocation_inherited_from,
        "own_revoke_at": opt_to_us(it.own_revoke_at),
        "own_revocation_message": it.own_revocation_message,
        "own_revocation_author": it.own_revocation_author,
        "updated_at": to_us(it.updated_at),
    }


class SqlIterations(Repository):
    def _one(
        self, where: str, params: Sequence[object], *, for_update: bool = False, join: str = ""
    ) -> Iteration | None:
        lock = self.raw.for_update("i") if for_update else ""
        row = self.raw.first(f"{ITERATION_SQL}{join} WHERE {where}{lock}", params)
        return iteration(row) if row else None

    def _many(self, where: str, params: Sequence[object]) -> list[Iteration]:
        return [iteration(r) for r in self.raw.rows(f"{ITERATION_SQL} WHERE {where}", params)]

    def get(
        self,
        bucket_id: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        version: int | None = None,
        for_update: bool = False,
    ) -> Iteration | None:
        value: object
        if iteration_id is not None:
            where, value = "i.id = ?", iteration_id
        elif fingerprint is not None:
            where, value = "i.fingerprint = ?", fingerprint
        elif version is not None:
            where, value = "i.incremental_version = ? AND i.incremental_version > 0", version
        else:
            raise ValueError("one identifier is required")
        return self._one(f"i.bucket_id = ? AND {where}", (bucket_id, value), for_update=for_update)

    def in_bucket(
        self,
        project_id: str,
        bucket_slug: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        for_update: bool = False,
    ) -> Iteration | None:
        where, value = ("i.id = ?", iteration_id) if iteration_id is not None else ("i.fingerprint = ?", fingerprint)
        return self._one(
            f"b.project_id = ? AND b.slug = ? AND {where}", (project_id, bucket_slug, value), for_update=for_update
        )

    def get_in_project(self, project_id: str, iteration_id: str, *, for_update: bool = False) -> Iteration | None:
        return self._one("i.project_id = ? AND i.id = ?", (project_id, iteration_id), for_update=for_update)

    def of_build(self, project_id: str, build_id: str, *, for_update: bool = False) -> Iteration | None:
        return self._one(
            "x.project_id = ? AND x.id = ?",
            (project_id, build_id),
            for_update=for_update,
            join=" JOIN build x ON x.iteration_id = i.id",
        )

    def get_many(self, project_id: str, iteration_ids: Sequence[str]) -> dict[str, Iteration]:
        ids = list(iteration_ids)
        found = self._many(f"i.project_id = ? AND i.id IN ({in_list(len(ids))})", [project_id, *ids])
        return {it.id: it for it in found}

    def with_fingerprint(self, project_id: str, fingerprint: str, limit: int) -> list[Iteration]:
        # Driven by the project's buckets, each probed through uq_iteration_bucket_fingerprint.
        return self._many(
            "b.project_id = ? AND i.fingerprint = ? ORDER BY b.slug LIMIT ?", (project_id, fingerprint, limit)
        )

    def latest_complete(self, bucket_id: str, *, valid_at: datetime | None = None) -> Iteration | None:
        where = "i.bucket_id = ? AND i.incremental_version > 0"
        params: list[object] = [bucket_id]
        if valid_at is not None:
            where += " AND (i.revoke_at IS NULL OR i.revoke_at > ?)"
            params.append(to_us(valid_at))
        return self._one(f"{where} ORDER BY i.incremental_version DESC LIMIT 1", params)

    def page(self, bucket_id: str, page: PageRequest) -> list[Iteration]:
        sql, params = keyset(f"{ITERATION_SQL} WHERE i.bucket_id = ?", (bucket_id,), _ORDER, page)
        return [iteration(r) for r in self.raw.rows(sql, params)]

    def add(self, it: Iteration) -> None:
        values = {
            "id": it.id,
            "bucket_id": it.bucket_id,
            "project_id": it.project_id,
            "created_at": to_us(it.created_at),
            **_values(it),
        }
        insert_new(
            self.raw,
            "iteration",
            values,
            lambda: AlreadyExists(
                "{iteration} fingerprint {fingerprint!r} already exists in bucket {bucket!r}",
                subject=Term.ITERATION,
                fingerprint=it.fingerprint,
                bucket=it.bucket_slug,
            ),
        )

    def save(self, it: Iteration) -> None:
        self.raw.update("iteration", _values(it), "id", it.id)

    def delete(self, iteration_id: str) -> None:
        self.raw.execute("DELETE FROM iteration WHERE id = ?", (iteration_id,))

    def children(self, project_id: str, iteration_ids: Sequence[str]) -> list[Iteration]:
        ids = list(iteration_ids)
        if not ids:
            return []
        return self._many(
            "i.id IN (SELECT DISTINCT iteration_id FROM build "
            f"WHERE project_id = ? AND source_iteration_id IN ({in_list(len(ids))})) ORDER BY i.id",
            [project_id, *ids],
        )

    def with_descendants(self, project_id: str, iteration_ids: Sequence[str]) -> set[str]:
        # The ids are bound as constants on purpose: nearly every build has an empty source, and with a
        # correlated EXISTS PostgreSQL's estimate then favours scanning every build of the table.
        ids = list(iteration_ids)
        if not ids:
            return set()
        rows = self.raw.rows(
            "SELECT DISTINCT source_iteration_id FROM build "
            f"WHERE source_iteration_id IN ({in_list(len(ids))}) AND project_id = ?",
            [*ids, project_id],
        )
        return {r.source_iteration_id for r in rows}

    def inherited_from(self, project_id: str, ancestor_id: str) -> list[Iteration]:
        return self._many(
            "i.project_id = ? AND i.revocation_inherited_from = ? AND i.revocation_type = ? ORDER BY i.id",
            (project_id, ancestor_id, RevocationType.INHERITED.value),
        )

    def build_states(self, iteration_ids: Sequence[str]) -> dict[str, list[tuple[str, BuildStatus, datetime]]]:
        ids = list(iteration_ids)
        rows = self.raw.rows(
            "SELECT iteration_id, component_type, status, heartbeat_at FROM build "
            f"WHERE iteration_id IN ({in_list(len(ids))}) ORDER BY created_at, id",
            ids,
        )
        out: dict[str, list[tuple[str, BuildStatus, datetime]]] = {}
        for r in rows:
            out.setdefault(r.iteration_id, []).append(
                (r.component_type, BuildStatus(r.status), from_us(r.heartbeat_at))
            )
        return out
