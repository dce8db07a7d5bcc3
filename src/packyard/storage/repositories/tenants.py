"""Organizations and projects."""

from __future__ import annotations

from typing import Any

from packyard.domain.errors import AlreadyExists
from packyard.domain.models import Organization, Project
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.repositories import Repository

_PROJECT_COLUMNS = "id, organization_id, name, created_at"


def _org(row: Any) -> Organization:
    return Organization(row.id, row.name, from_us(row.created_at))


def _project(row: Any) -> Project:
    return Project(row.id, row.organization_id, row.name, from_us(row.created_at))


# The advisory lock's key that serializes setting up the default tenant (any constant of packyard's own).
_SETUP_LOCK = 0x7061636B79617264  # "packyard"


class SqlTenants(Repository):
    def hold_setup(self) -> None:
        # SQLite: a write transaction holds the database's write lock already.
        if self.raw.pg:
            self.raw.rows("SELECT pg_advisory_xact_lock(?)", (_SETUP_LOCK,))

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

    def list_projects(self, organization_id: str) -> list[Project]:
        rows = self.raw.rows(
            f"SELECT {_PROJECT_COLUMNS} FROM project WHERE organization_id = ? ORDER BY created_at, id",
            (organization_id,),
        )
        return [_project(r) for r in rows]
