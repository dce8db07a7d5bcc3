"""SBOMs of builds (domain/ports.py Sboms), their content read only when one is asked for by name or id."""

from __future__ import annotations

from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import Sbom, SbomFormat
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.repositories import Repository

_LISTED = (
    "SELECT id, build_id, project_id, name, format, size, created_at FROM sbom "
    "WHERE build_id = ? ORDER BY created_at, id"
)
_BY_NAME = (
    "SELECT id, build_id, project_id, name, format, size, created_at, content FROM sbom WHERE build_id = ? AND name = ?"
)
_BY_ID = "SELECT id, build_id, project_id, name, format, size, created_at, content FROM sbom WHERE id = ?"


def _sbom(row: Any, content: bytes = b"") -> Sbom:
    return Sbom(
        id=row.id,
        build_id=row.build_id,
        project_id=row.project_id,
        name=row.name,
        format=SbomFormat(row.format),
        size=row.size,
        created_at=from_us(row.created_at),
        content=content,
    )


class SqlSboms(Repository):
    def add(self, sbom: Sbom) -> None:
        values = {
            "id": sbom.id,
            "build_id": sbom.build_id,
            "project_id": sbom.project_id,
            "name": sbom.name,
            "format": sbom.format.value,
            "size": sbom.size,
            "content": sbom.content,
            "created_at": to_us(sbom.created_at),
        }
        insert_new(
            self.raw,
            "sbom",
            values,
            lambda: AlreadyExists(
                "build {id} already has an SBOM named {name!r}", subject=Term.BUILD, id=sbom.build_id, name=sbom.name
            ),
        )

    def for_build(self, build_id: str) -> list[Sbom]:
        rows = self.raw.rows(_LISTED, (build_id,))
        return [_sbom(r) for r in rows]

    def get(self, build_id: str, name: str) -> Sbom | None:
        row = self.raw.first(_BY_NAME, (build_id, name))
        return _sbom(row, bytes(row.content)) if row is not None else None

    def get_by_id(self, sbom_id: str) -> Sbom | None:
        row = self.raw.first(_BY_ID, (sbom_id,))
        return _sbom(row, bytes(row.content)) if row is not None else None
