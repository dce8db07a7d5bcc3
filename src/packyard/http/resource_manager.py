"""The resource-manager 2019-12-10 reads that Packer and terraform-provider-hcp make to find their
organization and project: list and get organizations, list and get projects."""

from __future__ import annotations

from typing import Any

import msgspec

from packyard.domain import steps
from packyard.domain.commands import ProjectScope
from packyard.domain.models import Organization, Project
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


def _path_id(request: Request) -> str:
    return request.params["id"]


def _scope(request: Request) -> ProjectScope:
    return ProjectScope(request.query_str("scope.type"), request.query_str("scope.id"))


LIST_ORGANIZATIONS = Operation(
    no_command,
    steps.organizations,
    lambda place, orgs: OrganizationList(organizations=[_org(o) for o in orgs], pagination=Pagination()),
)
GET_ORGANIZATION = Operation(_path_id, steps.organization, lambda place, org: OrganizationGet(organization=_org(org)))
LIST_PROJECTS = Operation(
    _scope,
    steps.projects,
    lambda place, projects: ProjectList(projects=[_project(p) for p in projects], pagination=Pagination()),
)
GET_PROJECT = Operation(_path_id, steps.project, lambda place, project: ProjectGet(project=_project(project)))


def _route(path: str, operation: Operation[Any, Any], name: str) -> Route:
    return Route("GET", f"{RM}{path}", name, operation, access=Access.PRINCIPAL)


ROUTES: list[Route] = [
    _route("/organizations", LIST_ORGANIZATIONS, "OrganizationService_List"),
    _route("/organizations/{id}", GET_ORGANIZATION, "OrganizationService_Get"),
    _route("/projects", LIST_PROJECTS, "ProjectService_List"),
    _route("/projects/{id}", GET_PROJECT, "ProjectService_Get"),
]
