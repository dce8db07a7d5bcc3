"""Builds with their images (kept in position order), and the iteration a change to a build locks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import Build, BuildStatus, Image, Iteration
from packyard.domain.pagination import PageRequest
from packyard.storage.codecs import from_us, insert_new, keyset, to_us
from packyard.storage.raw import as_json, in_list
from packyard.storage.repositories import Repository
from packyard.storage.repositories.iterations import IterationRow, SqlIterations, iteration

_BUILD_COLUMNS = (
    "b.id, b.iteration_id, b.bucket_id, b.project_id, b.component_type, b.status, b.packer_run_uuid, "
    "b.cloud_provider, b.source_image_id, b.source_iteration_id, b.source_channel_id, b.source_build_ulid, "
    "b.labels, b.created_at, b.updated_at, b.heartbeat_at"
)
_BUILD_WITH_IMAGES_SQL = (
    f"SELECT {_BUILD_COLUMNS}, m.id AS image_pk, m.image_id AS image_image_id, "
    "m.region AS image_region, m.created_at AS image_created_at "
    "FROM build b LEFT JOIN image m ON m.build_id = b.id"
)
_BUILD_ORDER = "ORDER BY b.created_at, b.id, m.position"
# The build with its images and, first, its iteration's columns (renamed: the build's have the same names).
_FOR_CHANGE_ITERATION = ", ".join(
    "b2.slug AS it_bucket_slug" if c == "bucket_slug" else f"i.{c} AS it_{c}" for c in IterationRow._fields
)
_BUILD_FOR_CHANGE_SQL = (
    f"SELECT {_FOR_CHANGE_ITERATION}, {_BUILD_COLUMNS}, m.id AS image_pk, m.image_id AS image_image_id, "
    "m.region AS image_region, m.created_at AS image_created_at "
    "FROM build b JOIN iteration i ON i.id = b.iteration_id JOIN bucket b2 ON b2.id = i.bucket_id "
    "LEFT JOIN image m ON m.build_id = b.id WHERE b.project_id = ? AND b.id = ? ORDER BY m.position"
)
# The fields a page of builds may be ordered by, and their columns.
_ORDER = {
    "created_at": "b.created_at",
    "updated_at": "b.updated_at",
    "component_type": "b.component_type",
    "id": "b.id",
}


def _build(row: Any) -> Build:
    return Build(
        id=row.id,
        iteration_id=row.iteration_id,
        bucket_id=row.bucket_id,
        project_id=row.project_id,
        component_type=row.component_type,
        status=BuildStatus(row.status),
        packer_run_uuid=row.packer_run_uuid,
        cloud_provider=row.cloud_provider,
        source_image_id=row.source_image_id,
        source_iteration_id=row.source_iteration_id,
        source_channel_id=row.source_channel_id,
        source_build_ulid=row.source_build_ulid,
        labels=dict(as_json(row.labels) or {}),
        created_at=from_us(row.created_at),
        updated_at=from_us(row.updated_at),
        heartbeat_at=from_us(row.heartbeat_at),
    )


def _assemble(rows: Sequence[Any]) -> list[Build]:
    """Builds from rows of build LEFT JOIN image, ordered by build then image position."""
    builds: list[Build] = []
    for r in rows:
        if not builds or builds[-1].id != r.id:
            builds.append(_build(r))
        if r.image_pk is not None:
            builds[-1].images.append(
                Image(r.image_pk, r.id, r.image_image_id, r.image_region, from_us(r.image_created_at))
            )
    return builds


def _values(build: Build) -> dict[str, Any]:
    return {
        "status": build.status.value,
        "packer_run_uuid": build.packer_run_uuid,
        "cloud_provider": build.cloud_provider,
        "source_image_id": build.source_image_id,
        "source_iteration_id": build.source_iteration_id,
        "source_channel_id": build.source_channel_id,
        "source_build_ulid": build.source_build_ulid,
        "labels": build.labels,
        "updated_at": to_us(build.updated_at),
        "heartbeat_at": to_us(build.heartbeat_at),
        # None: not read or not changed (no API clears it), so what is stored stays.
        **({"metadata": build.metadata} if build.metadata is not None else {}),
    }


class SqlBuilds(Repository):
    def _attach_images(self, builds: list[Build]) -> list[Build]:
        if not builds:
            return builds
        by_id = {b.id: b for b in builds}
        rows = self.raw.rows(
            "SELECT id, build_id, image_id, region, created_at FROM image "
            f"WHERE build_id IN ({in_list(len(by_id))}) ORDER BY build_id, position",
            list(by_id),
        )
        for r in rows:
            by_id[r.build_id].images.append(Image(r.id, r.build_id, r.image_id, r.region, from_us(r.created_at)))
        return builds

    def for_change(self, project_id: str, build_id: str) -> tuple[Iteration, Build] | None:
        if self.raw.pg:
            # Two statements, so that the iteration's row lock is taken before the build is read: in one,
            # a statement that waited for the lock would go on with the build as it was before the wait.
            it = SqlIterations(self.conn, self.raw).of_build(project_id, build_id, for_update=True)
            build = self.get(project_id, build_id, for_update=True) if it is not None else None
            return (it, build) if it is not None and build is not None else None
        # SQLite: the transaction holds the database's write lock already; one statement.
        rows = self.raw.rows(_BUILD_FOR_CHANGE_SQL, (project_id, build_id))
        if not rows:
            return None
        width = len(IterationRow._fields)
        return iteration(IterationRow._make(rows[0][:width])), _assemble(rows)[0]

    def get(self, project_id: str, build_id: str, *, for_update: bool = False) -> Build | None:
        lock = self.raw.for_update("b") if for_update else ""
        rows = self.raw.rows(
            f"{_BUILD_WITH_IMAGES_SQL} WHERE b.project_id = ? AND b.id = ? {_BUILD_ORDER}{lock}", (project_id, build_id)
        )
        builds = _assemble(rows)
        return builds[0] if builds else None

    def for_iteration(self, iteration_id: str, page: PageRequest | None = None) -> list[Build]:
        if page is None:
            return self.for_iterations([iteration_id]).get(iteration_id, [])
        sql, params = keyset(
            f"SELECT {_BUILD_COLUMNS} FROM build b WHERE b.iteration_id = ?", (iteration_id,), _ORDER, page
        )
        return self._attach_images([_build(r) for r in self.raw.rows(sql, params)])

    def cloud_providers(self, iteration_id: str) -> set[str]:
        rows = self.raw.rows(
            "SELECT DISTINCT cloud_provider FROM build WHERE iteration_id = ? AND cloud_provider != ''", (iteration_id,)
        )
        return {r.cloud_provider for r in rows}

    def for_iterations(self, iteration_ids: Sequence[str]) -> dict[str, list[Build]]:
        """Builds and their images in one query, each iteration's builds in creation order."""
        ids = list(iteration_ids)
        out: dict[str, list[Build]] = {}
        if not ids:
            return out
        rows = self.raw.rows(
            f"{_BUILD_WITH_IMAGES_SQL} WHERE b.iteration_id IN ({in_list(len(ids))}) {_BUILD_ORDER}", ids
        )
        for build in _assemble(rows):
            out.setdefault(build.iteration_id, []).append(build)
        return out

    def with_artifact(
        self, project_id: str, external_identifier: str, platform: str, region: str, page: PageRequest
    ) -> list[Build]:
        """The project's builds with an image of that id (and of that region and build platform, when
        given), with all their images, in the page's order."""
        image = "SELECT 1 FROM image m WHERE m.build_id = b.id AND m.image_id = ?" + (
            " AND m.region = ?" if region else ""
        )
        where = f"b.project_id = ? AND EXISTS ({image})" + (" AND b.cloud_provider = ?" if platform else "")
        params = [project_id, external_identifier, *([region] if region else []), *([platform] if platform else [])]
        sql, args = keyset(f"SELECT {_BUILD_COLUMNS} FROM build b WHERE {where}", params, _ORDER, page)
        return self._attach_images([_build(r) for r in self.raw.rows(sql, args)])

    def metadata(self, build_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not build_ids:
            return {}
        rows = self.raw.rows(
            f"SELECT id, metadata FROM build WHERE id IN ({in_list(len(build_ids))}) AND metadata IS NOT NULL",
            list(build_ids),
        )
        return {r.id: dict(as_json(r.metadata)) for r in rows}

    def derived_from_bucket(self, project_id: str, bucket_id: str) -> list[Build]:
        # Two steps, each driven by an index, so that neither database can start from this bucket's
        # (possibly millions of) iterations: the builds of every bucket's latest iteration that name a
        # source, then which of those sources are iterations of this bucket. CROSS JOIN fixes the order on
        # SQLite, which otherwise walks every build of the project along ix_build_project to skip the sort
        # (1.7 s at 3M builds); PostgreSQL plans it like the inner join it is.
        candidates = self.raw.rows(
            f"SELECT {_BUILD_COLUMNS} FROM bucket cb CROSS JOIN build b WHERE b.iteration_id = cb.latest_iteration_id "
            "AND cb.project_id = ? AND b.project_id = ? AND b.source_iteration_id <> '' ORDER BY b.id",
            (project_id, project_id),
        )
        sources = sorted({r.source_iteration_id for r in candidates})
        if not sources:
            return []
        ours = {
            r.id
            for r in self.raw.rows(
                f"SELECT id FROM iteration WHERE id IN ({in_list(len(sources))}) AND bucket_id = ? AND project_id = ?",
                [*sources, bucket_id, project_id],
            )
        }
        return [_build(r) for r in candidates if r.source_iteration_id in ours]

    def _write_images(self, build: Build, *, replace: bool) -> None:
        if replace:
            self.raw.execute("DELETE FROM image WHERE build_id = ?", (build.id,))
        self.raw.executemany(
            "INSERT INTO image (id, build_id, position, image_id, region, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (img.id, build.id, n, img.image_id, img.region, to_us(img.created_at))
                for n, img in enumerate(build.images)
            ],
        )

    def add(self, build: Build) -> None:
        values = {
            "id": build.id,
            "iteration_id": build.iteration_id,
            "bucket_id": build.bucket_id,
            "project_id": build.project_id,
            "component_type": build.component_type,
            "created_at": to_us(build.created_at),
            **_values(build),
        }
        insert_new(
            self.raw,
            "build",
            values,
            lambda: AlreadyExists(
                "{iteration} {id} already has a build for component_type {component!r}",
                subject=Term.BUILD,
                id=build.iteration_id,
                component=build.component_type,
            ),
        )
        self._write_images(build, replace=False)

    def save(self, build: Build, *, images_changed: bool, had_images: bool = True) -> None:
        self.raw.update("build", _values(build), "id", build.id)
        if images_changed:
            self._write_images(build, replace=had_images)

    def delete(self, build_id: str) -> None:
        self.raw.execute("DELETE FROM build WHERE id = ?", (build_id,))
