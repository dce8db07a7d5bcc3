"""First run: a default organization and project with an active registry, and an admin principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from packyard.auth.service import create_principal, ensure_signing_key
from packyard.domain import registry as registries
from packyard.domain.context import Ctx
from packyard.domain.models import Organization, Project, Role, Tier
from packyard.domain.rules import Rules
from packyard.ids import new_uuid
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork


@dataclass(frozen=True, slots=True)
class InitResult:
    organization_id: str
    project_id: str
    client_id: str
    client_secret: str
    created: bool


def default_tenant(db: Database, now: datetime) -> tuple[str, str, bool]:
    """The oldest organization and its oldest project, created (with a registry) when there is none."""

    def work(conn: Connection) -> tuple[str, str, bool]:
        uow = SqlUnitOfWork(conn)
        uow.tenants.hold_setup()  # replicas starting together on an empty database make one default tenant
        ensure_signing_key(uow)
        orgs = uow.tenants.list_organizations()
        if orgs:
            projects = uow.tenants.list_projects(orgs[0].id)
            if projects:
                return orgs[0].id, projects[0].id, False
            org = orgs[0]
        else:
            org = Organization(new_uuid(), "default", now)
            uow.tenants.add_organization(org)
        project = Project(new_uuid(), org.id, "default", now)
        uow.tenants.add_project(project)
        registries.create(Ctx(uow, Rules(), now, org.id, project.id), Tier.UNSET)
        return org.id, project.id, True

    return db.run(work, write=True)


def initialize(db: Database, now: datetime) -> InitResult:
    org_id, project_id, created = default_tenant(db, now)

    def work(conn: Connection) -> InitResult:
        uow = SqlUnitOfWork(conn)
        new = create_principal(
            uow,
            organization_id=org_id,
            project_id=None,
            role=Role.ADMIN,
            name=f"admin-{now.strftime('%Y%m%d%H%M%S')}",
            now=now,
        )
        return InitResult(org_id, project_id, new.principal.client_id, new.client_secret, created)

    return db.run(work, write=True)
