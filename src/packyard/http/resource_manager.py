"""The resource-manager 2019-12-10 reads that Packer and terraform-provider-hcp make to find their
organization and project: list and get organizations, list and get projects."""

from __future__ import annotations

import msgspec

from packyard.domain import tenants
from packyard.domain.context import Ctx
from packyard.domain.models import Organization, Principal, Project
from packyard.http.hcp_2021.wire import Pagination, ts
from packyard.http.request import Request
from packyard.http.routing import Access, Route

RM = "/resource-manager/2019-12-10"


class Base(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class ResourceId(Base, kw_only=True):
    type: str = ""
    id: str = ""


class OrganizationWire(Base, kw_only=True):
    id: str = ""
    name: str = ""
    created_at: str = ""
    state: str = ""


class ProjectWire(Base, kw_only=True):
    id: str = ""
    name: str = ""
    parent: ResourceId | None = None
    created_at: str = ""
    state: str = ""
    description: str = ""


class OrganizationList(Base, kw_only=True):
    organizations: list[OrganizationWire]
    pagination: Pagination | None = None


class OrganizationGet(Base, kw_only=True):
    organization: OrganizationWire


class ProjectList(Base, kw_only=True):
    projects: list[ProjectWire]
    pagination: Pagination | None = None


class ProjectGet(Base, kw_only=True):
    project: ProjectWire


def _org(org: Organization) -> OrganizationWire:
    return OrganizationWire(id=org.id, name=org.name, created_at=ts(org.created_at), state="ACTIVE")


def _project(project: Project) -> ProjectWire:
    return ProjectWire(
        id=project.id,
        name=project.name,
        parent=ResourceId(type="ORGANIZATION", id=project.organization_id),
        created_at=ts(project.created_at),
        state="ACTIVE",
    )


def _principal(ctx: Ctx) -> Principal:
    assert ctx.actor is not None  # PRINCIPAL routes always run with one
    return ctx.actor


def list_organizations(ctx: Ctx, request: Request) -> object:
    orgs = tenants.visible_organizations(ctx, _principal(ctx))
    return OrganizationList(organizations=[_org(o) for o in orgs], pagination=Pagination())


def get_organization(ctx: Ctx, request: Request) -> object:
    return OrganizationGet(organization=_org(tenants.organization(ctx, _principal(ctx), request.params["id"])))


def list_projects(ctx: Ctx, request: Request) -> object:
    projects = tenants.visible_projects(
        ctx, _principal(ctx), request.query_str("scope.type"), request.query_str("scope.id")
    )
    return ProjectList(projects=[_project(p) for p in projects], pagination=Pagination())


def get_project(ctx: Ctx, request: Request) -> object:
    return ProjectGet(project=_project(tenants.project(ctx, _principal(ctx), request.params["id"])))


ROUTES: list[Route] = [
    Route("GET", f"{RM}/organizations", list_organizations, "OrganizationService_List", access=Access.PRINCIPAL),
    Route("GET", f"{RM}/organizations/{{id}}", get_organization, "OrganizationService_Get", access=Access.PRINCIPAL),
    Route("GET", f"{RM}/projects", list_projects, "ProjectService_List", access=Access.PRINCIPAL),
    Route("GET", f"{RM}/projects/{{id}}", get_project, "ProjectService_Get", access=Access.PRINCIPAL),
]
