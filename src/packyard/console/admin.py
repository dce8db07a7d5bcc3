"""The admin pages: an organization's console users and service principals, listed, created (the user's
one-time set-password link, or the principal's client secret, shown once) and deleted.

Only an organization-wide admin reaches them: a project-scoped admin could otherwise make accounts
wider than its own. Everyone else gets 403 and sees no link to them (base.html). Every form is checked
like Console.act's: the session, its form token (CSRF) and the role, inside the write's transaction.
They span the organization, not one project, so the units of work are the ones below rather than
Console.view/act (which act in a project).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from packyard.auth import accounts
from packyard.auth.service import create_principal
from packyard.console.web import BadForm, Console, SignedOut
from packyard.console.words import WORDS
from packyard.domain.errors import DomainError, InvalidArgument, NotFound, PermissionDenied
from packyard.domain.models import Principal, Project, Role, User, UserSession
from packyard.storage.unit_of_work import SqlUnitOfWork

T = TypeVar("T")

MAX_NAME = 200


def users_url(org_id: str) -> str:
    return f"/orgs/{org_id}/admin/users"


def principals_url(org_id: str) -> str:
    return f"/orgs/{org_id}/admin/principals"


def is_admin(session: UserSession | None) -> bool:
    """Whether the session's user may use the admin pages (for base.html's header link)."""
    return session is not None and session.user.role is Role.ADMIN and session.user.project_id is None


def _check_admin(session: UserSession, org_id: str) -> None:
    user = session.user
    if user.organization_id != org_id:
        raise PermissionDenied("you have no access to this organization")
    if user.role is not Role.ADMIN:
        raise PermissionDenied(f"your role ({user.role.value}) does not allow this; the admin pages are for admins")
    if user.project_id is not None:
        raise PermissionDenied("the admin pages are for admins of the whole organization, not of one project")


@dataclass(frozen=True, slots=True)
class Listing:
    users: list[User]
    principals: list[Principal]
    projects: list[Project]


def _listing(uow: SqlUnitOfWork, org_id: str) -> Listing:
    principals = sorted(
        (p for p in uow.principals.all() if p.organization_id == org_id), key=lambda p: (p.name, p.client_id)
    )
    return Listing(uow.users.list_(org_id), principals, uow.tenants.list_projects(org_id))


def _role(form: Mapping[str, str]) -> Role:
    try:
        return Role(form.get("role", ""))
    except ValueError:
        raise InvalidArgument("choose a role: admin, contributor or viewer") from None


def _project(form: Mapping[str, str]) -> str | None:
    return form.get("project", "").strip() or None


class Admin:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.services = console.services
        console.jinja.globals["is_admin"] = is_admin  # base.html's link to these pages

    # ---- units of work

    async def _read(self, request: Request, org_id: str, step: Callable[[SqlUnitOfWork], T]) -> tuple[UserSession, T]:
        def work(uow: SqlUnitOfWork, session: UserSession) -> T:
            _check_admin(session, org_id)
            return step(uow)

        acting = await self.console.in_session(request, work)
        return acting.session, acting.result

    async def _write(
        self, request: Request, form: Mapping[str, str], org_id: str, step: Callable[[SqlUnitOfWork, UserSession], T]
    ) -> tuple[UserSession, T]:
        """step, committed, after the session, its form token and the admin role are checked in the same
        transaction. Raises SignedOut, BadForm or a DomainError; a refusal changes nothing."""

        def work(uow: SqlUnitOfWork, session: UserSession) -> T:
            _check_admin(session, org_id)
            return step(uow, session)

        acting = await self.console.org_write(request, form, work)
        return acting.session, acting.result

    async def _guard(self, request: Request, page: Callable[[], Any]) -> Response:
        """page's response, or the sign-in redirect / refusal page its errors call for."""
        try:
            response: Response = await page()
        except SignedOut:
            return self.console.to_sign_in(request)
        except (DomainError, BadForm) as exc:
            session = None
            with contextlib.suppress(SignedOut):
                session = await self.console.signed_in(request)
            return self.console.refusal(request, exc, session)
        return response

    def _base_url(self, request: Request) -> str:
        return (self.services.settings.public_url or str(request.base_url)).rstrip("/")

    # ---- users

    def _users_page(
        self, request: Request, session: UserSession, org_id: str, listing: Listing, status: int = 200, **values: Any
    ) -> Response:
        context = {"session": session, "org_id": org_id, "listing": listing, "roles": [r.value for r in Role]}
        return self.console.render(request, "admin_users.html", {**context, **values}, status)

    async def users(self, request: Request) -> Response:
        org_id = request.path_params["org"]

        async def page() -> Response:
            session, listing = await self._read(request, org_id, lambda uow: _listing(uow, org_id))
            notice = "The user is deleted; their sessions have ended." if request.query_params.get("deleted") else ""
            return self._users_page(request, session, org_id, listing, notice=notice)

        return await self._guard(request, page)

    async def create_user(self, request: Request) -> Response:
        org_id = request.path_params["org"]
        console, now = self.console, self.services.clock.now()

        async def page() -> Response:
            form = await console.form(request)

            def create(uow: SqlUnitOfWork, session: UserSession) -> tuple[accounts.NewUser, Listing]:
                new = accounts.create_user(
                    uow,
                    email=form.get("email", ""),
                    role=_role(form),
                    organization_id=org_id,
                    project_id=_project(form),
                    now=now,
                )
                return new, _listing(uow, org_id)

            try:
                session, (new, listing) = await self._write(request, form, org_id, create)
            except DomainError as exc:
                if isinstance(exc, PermissionDenied):
                    raise
                session, listing = await self._read(request, org_id, lambda uow: _listing(uow, org_id))
                status = 409 if exc.code == 6 else 400  # ALREADY_EXISTS
                return self._users_page(
                    request, session, org_id, listing, status, error=exc.render(WORDS), email=form.get("email", "")
                )
            link = f"{self._base_url(request)}/set-password/{new.link_secret}"
            hours = int(accounts.LINK_LIFETIME.total_seconds() // 3600)
            return self._users_page(request, session, org_id, listing, created=new.user, link=link, link_hours=hours)

        return await self._guard(request, page)

    def _user_in(self, uow: SqlUnitOfWork, org_id: str, user_id: str) -> User:
        user = uow.users.get(user_id)
        if user is None or user.organization_id != org_id:
            raise NotFound("no such user in this organization")
        return user

    async def confirm_delete_user(self, request: Request) -> Response:
        org_id, user_id = request.path_params["org"], request.path_params["user_id"]

        async def page() -> Response:
            session, user = await self._read(request, org_id, lambda uow: self._user_in(uow, org_id, user_id))
            values = {"session": session, "org_id": org_id, "user": user, "own": user.id == session.user.id}
            return self.console.render(request, "admin_user_delete.html", values)

        return await self._guard(request, page)

    async def delete_user(self, request: Request) -> Response:
        org_id, user_id = request.path_params["org"], request.path_params["user_id"]

        async def page() -> Response:
            form = await self.console.form(request)

            def delete(uow: SqlUnitOfWork, session: UserSession) -> None:
                user = self._user_in(uow, org_id, user_id)
                if user.id == session.user.id:
                    raise InvalidArgument(
                        "you can't delete your own account here; another admin can, or `packyard user delete`"
                    )
                uow.users.delete(user.id)  # its sessions and links go with it

            await self._write(request, form, org_id, delete)
            return self.console.redirect(users_url(org_id) + "?deleted=1")

        return await self._guard(request, page)

    # ---- service principals

    def _principals_page(
        self, request: Request, session: UserSession, org_id: str, listing: Listing, status: int = 200, **values: Any
    ) -> Response:
        context = {"session": session, "org_id": org_id, "listing": listing, "roles": [r.value for r in Role]}
        return self.console.render(request, "admin_principals.html", {**context, **values}, status)

    async def principals(self, request: Request) -> Response:
        org_id = request.path_params["org"]

        async def page() -> Response:
            session, listing = await self._read(request, org_id, lambda uow: _listing(uow, org_id))
            notice = (
                "The principal is deleted; its tokens no longer work." if request.query_params.get("deleted") else ""
            )
            return self._principals_page(request, session, org_id, listing, notice=notice)

        return await self._guard(request, page)

    async def create_principal(self, request: Request) -> Response:
        org_id = request.path_params["org"]
        console, now = self.console, self.services.clock.now()

        async def page() -> Response:
            form = await console.form(request)
            name = form.get("name", "").strip()

            def create(uow: SqlUnitOfWork, session: UserSession) -> tuple[str, Principal, Listing]:
                if len(name) > MAX_NAME:
                    raise InvalidArgument(f"a principal's name has at most {MAX_NAME} characters")
                new = create_principal(
                    uow, organization_id=org_id, project_id=_project(form), role=_role(form), name=name, now=now
                )
                return new.client_secret, new.principal, _listing(uow, org_id)

            try:
                session, (secret, principal, listing) = await self._write(request, form, org_id, create)
            except DomainError as exc:
                if isinstance(exc, PermissionDenied):
                    raise
                session, listing = await self._read(request, org_id, lambda uow: _listing(uow, org_id))
                return self._principals_page(request, session, org_id, listing, 400, error=exc.render(WORDS), name=name)
            return self._principals_page(request, session, org_id, listing, created=principal, secret=secret)

        return await self._guard(request, page)

    def _principal_in(self, uow: SqlUnitOfWork, org_id: str, principal_id: str) -> Principal:
        principal = uow.principals.get(principal_id)
        if principal is None or principal.organization_id != org_id:
            raise NotFound("no such service principal in this organization")
        return principal

    async def confirm_delete_principal(self, request: Request) -> Response:
        org_id, principal_id = request.path_params["org"], request.path_params["principal_id"]

        async def page() -> Response:
            session, principal = await self._read(
                request, org_id, lambda uow: self._principal_in(uow, org_id, principal_id)
            )
            values = {"session": session, "org_id": org_id, "principal": principal}
            return self.console.render(request, "admin_principal_delete.html", values)

        return await self._guard(request, page)

    async def delete_principal(self, request: Request) -> Response:
        org_id, principal_id = request.path_params["org"], request.path_params["principal_id"]

        async def page() -> Response:
            form = await self.console.form(request)

            def delete(uow: SqlUnitOfWork, session: UserSession) -> None:
                uow.principals.delete(self._principal_in(uow, org_id, principal_id).id)

            await self._write(request, form, org_id, delete)
            return self.console.redirect(principals_url(org_id) + "?deleted=1")

        return await self._guard(request, page)
