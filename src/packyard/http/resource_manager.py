"""The resource-manager 2019-12-10 reads that Packer and terraform-provider-hcp make to find their
organization and project: list and get organizations, list and get projects."""

from __future__ import annotations

from typing import Any

import msgspec

from packyard.domain import tenants
from packyard.domain.context import Ctx
from packyard.domain.models import Organization, Principal, Project
from packyard.http.request import Request
from packyard.http.routing import Access, Route
from packyard.http.wire import Pagination, ts
from packyard.pipeline.operations import Operation, no_command

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
    assert ctx.actor is not None  # principal routes always run with one
    return ctx.actor


def _path_id(request: Request) -> str:
    return request.params["id"]


def _scope(request: Request) -> tuple[str, str]:
    return request.query_str("scope.type"), request.query_str("scope.id")


def _organizations(ctx: Ctx, command: None) -> list[Organization]:
    return tenants.visible_organizations(ctx, _principal(ctx))


def _organization(ctx: Ctx, org_id: str) -> Organization:
    return tenants.organization(ctx, _principal(ctx), org_id)


def _projects(ctx: Ctx, scope: tuple[str, str]) -> list[Project]:
    return tenants.visible_projects(ctx, _principal(ctx), *scope)


def _project_of(ctx: Ctx, project_id: str) -> Project:
    return tenants.project(ctx, _principal(ctx), project_id)


LIST_ORGANIZATIONS = Operation(
    no_command,
    _organizations,
    lambda place, orgs: OrganizationList(organizations=[_org(o) for o in orgs], pagination=Pagination()),
)
GET_ORGANIZATION = Operation(_path_id, _organization, lambda place, org: OrganizationGet(organization=_org(org)))
LIST_PROJECTS = Operation(
    _scope,
    _projects,
    lambda place, projects: ProjectList(projects=[_project(p) for p in projects], pagination=Pagination()),
)
GET_PROJECT = Operation(_path_id, _project_of, lambda place, project: ProjectGet(project=_project(project)))


def _route(path: str, operation: Operation[Any, Any], name: str) -> Route:
    return Route("GET", f"{RM}{path}", name, operation, access=Access.PRINCIPAL)


ROUTES: list[Route] = [
    _route("/organizations", LIST_ORGANIZATIONS, "OrganizationService_List"),
    _route("/organizations/{id}", GET_ORGANIZATION, "OrganizationService_Get"),
    _route("/projects", LIST_PROJECTS, "ProjectService_List"),
    _route("/projects/{id}", GET_PROJECT, "ProjectService_Get"),
]
