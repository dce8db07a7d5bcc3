"""Organizations and projects: created from the command line, read by clients for discovery.

A principal sees only its own organization, and only its own project when it is project-scoped; asking
for anything else gets the same refusal whether or not it exists.
"""

from __future__ import annotations

from packyard.domain import registry as registries
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, NotFound, PermissionDenied
from packyard.domain.models import Organization, Principal, Project, Tier
from packyard.domain.ports import UnitOfWork
from packyard.domain.rules import Rules
from packyard.ids import is_uuid, new_uuid

MAX_NAME = 255


def _name(name: str, what: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidArgument(f"a {what} name must be 1 to {MAX_NAME} characters")
    return name


def create_organization(uow: UnitOfWork, name: str, now: object) -> Organization:
    org = Organization(new_uuid(), _name(name, "organization"), now)  # type: ignore[arg-type]
    uow.tenants.add_organization(org)
    return org


def create_project(uow: UnitOfWork, organization_id: str, name: str, now: object) -> Project:
    if uow.tenants.get_organization(organization_id) is None:
        raise NotFound(f"organization {organization_id} does not exist")
    project = Project(new_uuid(), organization_id, _name(name, "project"), now)  # type: ignore[arg-type]
    uow.tenants.add_project(project)
    # Each project has its own registry, active from the start.
    registries.create(Ctx(uow, Rules(), project.created_at, organization_id, project.id), Tier.UNSET)
    return project


def _denied() -> PermissionDenied:
    return PermissionDenied("the principal has no access to this organization or project")


def reach(principal: Principal, org_id: str, project_id: str, *, found: bool) -> None:
    """Refuse unless the principal may act in the project of the path: the path's organization must be
    the principal's own, the project must be the principal's when the principal is project-scoped, and
    the project must exist inside the principal's organization (found: looked up there, with the
    principal, storage/freshness.py). The same refusal whether or not either exists."""
    if principal.organization_id != org_id or (principal.project_id and principal.project_id != project_id):
        raise _denied()
    if not found:
        raise _denied()


def visible_organizations(ctx: Ctx, principal: Principal) -> list[Organization]:
    org = ctx.uow.tenants.get_organization(principal.organization_id)
    return [org] if org else []


def organization(ctx: Ctx, principal: Principal, org_id: str) -> Organization:
    if org_id != principal.organization_id:
        raise _denied()
    org = ctx.uow.tenants.get_organization(org_id)
    if org is None:  # pragma: no cover - a principal's organization can't vanish under it
        raise _denied()
    return org


def visible_projects(ctx: Ctx, principal: Principal, scope_type: str, scope_id: str) -> list[Project]:
    if scope_type not in ("", "ORGANIZATION"):
        raise InvalidArgument("scope.type must be ORGANIZATION")
    if scope_id and not is_uuid(scope_id):
        raise InvalidArgument(f"scope.id {scope_id[:40]!r} is not an organization id")
    org_id = scope_id or principal.organization_id
    if org_id != principal.organization_id:
        raise _denied()
    projects = ctx.uow.tenants.list_projects(org_id)
    if principal.project_id:
        projects = [p for p in projects if p.id == principal.project_id]
    return projects


def project(ctx: Ctx, principal: Principal, project_id: str) -> Project:
    if principal.project_id and principal.project_id != project_id:
        raise _denied()
    found = ctx.uow.tenants.get_project(principal.organization_id, project_id) if is_uuid(project_id) else None
    if found is None:
        raise _denied()
    return found
