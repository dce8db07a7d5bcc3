"""Organizations and projects."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from packyard.domain.errors import AlreadyExists
from packyard.domain.models import Organization, Project
from packyard.ids import is_uuid
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.prefetch import Prefetched
from packyard.storage.raw import Raw
from packyard.storage.repositories import Repository

_PROJECT_COLUMNS = "id, organization_id, name, created_at"


def _org(row: Any) -> Organization:
    return Organization(row.id, row.name, from_us(row.created_at))


def _project(row: Any) -> Project:
    return Project(row.id, row.organization_id, row.name, from_us(row.created_at))


class SqlTenants(Repository):
    def __init__(self, conn: Connection, prefetched: Prefetched | None = None, raw: Raw | None = None) -> None:
        super().__init__(conn, raw)
        self.prefetched = prefetched

    def add_organization(self, org: Organization) -> None:
        insert_new(
            self.raw,
            "organization",
            {"id": org.id, "name": org.name, "created_at": to_us(org.created_at)},
            lambda: AlreadyExists(f"organization {org.id} already exists"),
        )

    def get_organization(self, org_id: str) -> Organization | None:
        row = self.raw.first("SELECT id, name, created_at FROM organization WHERE id = ?", (org_id,))
        return _org(row) if row else None

    def list_organizations(self) -> list[Organization]:
        rows = self.raw.rows("SELECT id, name, created_at FROM organization ORDER BY created_at, id")
        return [_org(r) for r in rows]

    def add_project(self, project: Project) -> None:
        insert_new(
            self.raw,
            "project",
            {
                "id": project.id,
                "organization_id": project.organization_id,
                "name": project.name,
                "created_at": to_us(project.created_at),
            },
            lambda: AlreadyExists(f"project {project.id} already exists"),
        )

    def get_project(self, organization_id: str, project_id: str) -> Project | None:
        row = self.raw.first(
            f"SELECT {_PROJECT_COLUMNS} FROM project WHERE id = ? AND organization_id = ?",
            (project_id, organization_id),
        )
        return _project(row) if row else None

    def project_in(self, organization_id: str, project_id: str) -> bool:
        prefetched = self.prefetched
        if prefetched is not None and prefetched.project_id == project_id and prefetched.checked_in is not None:
            # read with the principal, inside the principal's organization (principals._PRINCIPAL_WITH_PROJECT)
            return prefetched.found and prefetched.checked_in == organization_id
        if not (is_uuid(organization_id) and is_uuid(project_id)):
            return False
        row = self.raw.first(
            "SELECT 1 FROM project WHERE id = ? AND organization_id = ?", (project_id, organization_id)
        )
        return row is not None

    def change_stamp(self, project_id: str) -> int | None:
        if self.prefetched is not None and project_id in self.prefetched.stamps:
            return self.prefetched.stamps.pop(project_id)
        row = self.raw.first("SELECT change_stamp FROM project WHERE id = ?", (project_id,))
        return int(row.change_stamp) if row else None

    def list_projects(self, organization_id: str) -> list[Project]:
        rows = self.raw.rows(
            f"SELECT {_PROJECT_COLUMNS} FROM project WHERE organization_id = ? ORDER BY created_at, id",
            (organization_id,),
        )
        return [_project(r) for r in rows]
