"""What every console page shares: the signed-in session (cookie → session → user), the form token
(CSRF), a unit of work in which the user acts in a project with the API's roles, and rendering.

A page's data and its session are read in one read-only transaction; a form's write runs in one write
unit (storage decides where, as for the API), after its session and form token are checked inside it.
The user acts in the domain as `User.actor()`: a principal of the user's role and scope, checked by
the same tenancy rule (domain.tenants.reach) and permissions as an API token.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from packyard.auth import accounts
from packyard.console.words import WORDS
from packyard.domain import tenants
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError, PermissionDenied
from packyard.domain.models import Permission, User, UserSession
from packyard.http.errors import http_status
from packyard.pipeline.services import Services
from packyard.storage.raw import Conn
from packyard.storage.unit_of_work import SqlUnitOfWork

T = TypeVar("T")

TEMPLATES = Path(__file__).parent / "templates"
SESSION_LIFETIME = timedelta(hours=12)
MAX_FORM_FIELDS = 64
MAX_FORM_BYTES = 64 * 1024

# Every console answer: no framing, no sniffing, no referrer (a set-password link must not leak), and
# only this server's own styles and scripts.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def session_cookie_name(request: Request) -> str:
    """`__Host-` under TLS: the browser then insists on Secure, Path=/ and no Domain."""
    return "__Host-packyard_session" if request.url.scheme == "https" else "packyard_session"


class SignedOut(Exception):
    """No session, or an expired one: the page sends the browser to sign in."""


class BadForm(Exception):
    """A form that fails its token (CSRF) or can't be read: refused with 403/400, nothing changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Acting:
    """Who is signed in, and the result of the step run for them."""

    session: UserSession
    result: Any

    @property
    def user(self) -> User:
        return self.session.user


class Console:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.jinja = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # can(session, "write"): whether to show a page's write controls (the server checks again on post).
        self.jinja.globals["can"] = lambda session, permission: (
            session is not None and session.user.actor().can(Permission(permission))
        )

    # ---- rendering

    def render(
        self, request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
    ) -> HTMLResponse:
        values = {"request": request, **(context or {})}
        body = self.jinja.get_template(template).render(values)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    def to_sign_in(self, request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.redirect(f"/sign-in?next={quote(target, safe='')}")

    # ---- sessions

    def cookie(self, request: Request) -> str:
        return request.cookies.get(session_cookie_name(request), "")

    def set_session_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            session_cookie_name(request),
            value,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

    def clear_session_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            session_cookie_name(request), path="/", secure=request.url.scheme == "https", httponly=True, samesite="lax"
        )

    def _session(self, uow: SqlUnitOfWork, cookie: str) -> UserSession:
        session = accounts.session_for(uow, cookie, self.services.clock.now())
        if session is None:
            raise SignedOut
        return session

    async def signed_in(self, request: Request) -> UserSession:
        """The request's session; raises SignedOut."""
        cookie = self.cookie(request)
        return await self.services.db.read(lambda conn: self._session(SqlUnitOfWork(conn, self.services.vault), cookie))

    # ---- forms

    async def form(self, request: Request) -> dict[str, str]:
        """The request's urlencoded or multipart form, text fields only, bounded in size and count."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            raise BadForm(400, "the form is larger than the console accepts")
        try:
            async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES) as form:
                return {key: value for key, value in form.items() if isinstance(value, str)}
        except Exception as exc:  # starlette's and multipart's parse errors: an unreadable form
            raise BadForm(400, "the form could not be read") from exc

    @staticmethod
    def check_csrf(session: UserSession, form: Mapping[str, str]) -> None:
        sent = form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise BadForm(403, "the form's token is missing or wrong; reload the page and try again")

    # ---- units of work: the user acting in a project

    def _ctx(
        self, uow: SqlUnitOfWork, session: UserSession, org_id: str, project_id: str, permission: Permission
    ) -> Ctx:
        actor = session.user.actor()
        project = uow.tenants.get_project(org_id, project_id) if org_id and project_id else None
        tenants.reach(actor, org_id, project_id, found=project is not None)
        if not actor.can(permission):
            raise PermissionDenied(f"your role ({actor.role.value}) does not allow this")
        return Ctx(uow, self.services.rules, self.services.clock.now(), org_id, project_id, actor)

    async def view(
        self,
        request: Request,
        org_id: str,
        project_id: str,
        step: Callable[[Ctx], T],
        permission: Permission = Permission.READ,
    ) -> Acting:
        """step's result for the signed-in user in the project, with the session, in one read-only
        transaction. Raises SignedOut, or the domain's refusal (PermissionDenied, NotFound ...)."""
        cookie = self.cookie(request)

        def work(conn: Conn) -> Acting:
            uow = SqlUnitOfWork(conn, self.services.vault)
            session = self._session(uow, cookie)
            return Acting(session, step(self._ctx(uow, session, org_id, project_id, permission)))

        return await self.services.db.read(work)

    async def act(
        self,
        request: Request,
        form: Mapping[str, str],
        org_id: str,
        project_id: str,
        step: Callable[[Ctx], T],
        permission: Permission = Permission.WRITE,
    ) -> Acting:
        """step's result, committed, for the signed-in user in the project, after the form's token and
        the user's role are checked in the same write unit. Raises SignedOut, BadForm or the domain's
        refusal; a refusal changes nothing."""
        cookie = self.cookie(request)

        def work(conn: Conn) -> Acting:
            uow = SqlUnitOfWork(conn, self.services.vault)
            session = self._session(uow, cookie)
            self.check_csrf(session, form)
            return Acting(session, step(self._ctx(uow, session, org_id, project_id, permission)))

        return await self.services.db.write(work, project_id)

    async def in_session(self, request: Request, step: Callable[[SqlUnitOfWork, UserSession], T]) -> Acting:
        """step(uow, session) in a read-only transaction: pages that span projects (the home page)."""
        cookie = self.cookie(request)

        def work(conn: Conn) -> Acting:
            uow = SqlUnitOfWork(conn, self.services.vault)
            session = self._session(uow, cookie)
            return Acting(session, step(uow, session))

        return await self.services.db.read(work)

    async def org_write(
        self, request: Request, form: Mapping[str, str], step: Callable[[SqlUnitOfWork, UserSession], T]
    ) -> Acting:
        """step(uow, session), committed, after the session and the form's token are checked in the same
        write transaction: writes that touch no project's data (the admin pages' users and principals).
        Raises SignedOut or BadForm; a refusal changes nothing."""
        cookie = self.cookie(request)

        def work(conn: Conn) -> Acting:
            uow = SqlUnitOfWork(conn, self.services.vault)
            session = self._session(uow, cookie)
            self.check_csrf(session, form)
            return Acting(session, step(uow, session))

        return await self.services.db.write_alone(work)

    def refusal(self, request: Request, exc: DomainError | BadForm, session: UserSession | None = None) -> HTMLResponse:
        if isinstance(exc, BadForm):
            status, message = exc.status, exc.message
        else:
            status, message = http_status(exc.code), exc.render(WORDS)
        return self.render(request, "error.html", {"status": status, "message": message, "session": session}, status)
