"""Signing in with the single sign-on provider (auth/oidc.py speaks the protocol; auth/oidc_settings.py
says which provider and how its claim maps to roles).

`/sign-in/oidc` sends the browser to the provider with a fresh state, nonce and PKCE verifier, which the
browser keeps for ten minutes in a cookie of their own (`packyard_oidc`, HttpOnly, SameSite=Lax, sealed
with the server's secret: AES-256-GCM, so it can be neither read nor forged). `/sign-in/oidc/callback`
takes the provider's answer only with that cookie and its state, exchanges the code, checks the ID token,
and then makes or updates the account (its email, role and scope follow the provider at every sign-in)
and starts a session exactly as the password sign-in does. Anything wrong is a page that says what.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime

import httpx
from starlette.requests import Request
from starlette.responses import Response

from packyard.auth import accounts
from packyard.auth.oidc import Flow, Identity, OidcClient, SsoError
from packyard.auth.oidc_settings import OidcSettings
from packyard.auth.vault import VaultError
from packyard.console.signin import safe_next
from packyard.console.web import SESSION_LIFETIME, Console
from packyard.domain.errors import DomainError
from packyard.domain.models import User
from packyard.ids import new_ulid
from packyard.storage.raw import Conn
from packyard.storage.unit_of_work import SqlUnitOfWork

FLOW_SECONDS = 600
PURPOSE = "console-oidc-flow/v1"
MAX_NEXT = 1000
log = logging.getLogger("packyard.console")


def flow_cookie_name(request: Request) -> str:
    return "__Host-packyard_oidc" if request.url.scheme == "https" else "packyard_oidc"


def _organization(uow: SqlUnitOfWork, settings: OidcSettings) -> tuple[str, str | None]:
    """The organization and project scope single sign-on makes accounts in."""
    if settings.organization_id is not None:
        if uow.tenants.get_organization(settings.organization_id) is None:
            missing = settings.organization_id
            raise SsoError(f"single sign-on is set up for organization {missing}, which does not exist", 503)
        org_id = settings.organization_id
    else:
        found = uow.tenants.list_organizations()
        if len(found) != 1:
            raise SsoError("single sign-on needs PACKYARD_OIDC_ORG: this registry has more than one organization", 503)
        org_id = found[0].id
    project_id = settings.project_id
    if project_id is not None and uow.tenants.get_project(org_id, project_id) is None:
        raise SsoError(f"single sign-on is set up for project {project_id}, which does not exist", 503)
    return org_id, project_id


def provision(uow: SqlUnitOfWork, settings: OidcSettings, identity: Identity, now: datetime) -> User:
    """The console user of the provider's identity: found by its subject, else by its email (and then
    bound to the subject), else made. Its email, role and scope are the provider's and the settings'."""
    org_id, project_id = _organization(uow, settings)
    try:
        email = accounts.normalize_email(identity.email)
    except DomainError:
        raise SsoError("the single sign-on provider sent an email address packyard can't use", 403) from None
    user = uow.users.get_by_sso_subject(identity.subject)
    holder = uow.users.get_by_email(email)
    if user is None:
        user = holder
        if user is not None and user.sso_subject is not None:
            raise SsoError(f"{email} already belongs to another single sign-on account; ask an admin", 409)
    elif holder is not None and holder.id != user.id:
        raise SsoError(f"{email} already belongs to another packyard account; ask an admin", 409)
    if user is not None and user.organization_id != org_id:
        raise SsoError(f"{email} belongs to another organization; ask an admin", 403)
    if user is None:
        user = User(new_ulid(), email, org_id, project_id, identity.role, "", now, identity.subject)
        uow.users.add(user)
        return user
    uow.users.set_sso(user.id, subject=identity.subject, email=email, role=identity.role, project_id=project_id)
    return dataclasses.replace(
        user, email=email, role=identity.role, project_id=project_id, sso_subject=identity.subject
    )


class SingleSignOn:
    def __init__(
        self, console: Console, settings: OidcSettings | None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.console = console
        self.services = console.services
        self.settings = settings
        self.client = OidcClient(settings, transport) if settings is not None else None
        # sign_in.html shows "Sign in with <name>" when single sign-on is set up.
        console.jinja.globals["sso_name"] = settings.name if settings is not None else None

    def _failed(self, request: Request, exc: SsoError) -> Response:
        if exc.status >= 500:  # the provider or the settings: the operator's to see, not only the person's
            log.warning("single sign-on failed: %s", exc.message)
        values = {"status": exc.status, "message": exc.message}
        response = self.console.render(request, "sso_error.html", values, exc.status)
        response.delete_cookie(flow_cookie_name(request), path="/", secure=request.url.scheme == "https", httponly=True)
        return response

    def _redirect_uri(self, request: Request) -> str:
        base = (self.services.settings.public_url or str(request.base_url)).rstrip("/")
        return f"{base}/sign-in/oidc/callback"

    async def begin(self, request: Request) -> Response:
        if self.client is None:
            return self.console.render(request, "error.html", {"status": 404, "message": "no such page"}, 404)
        next_path = safe_next(request.query_params.get("next", "/"))
        if len(next_path) > MAX_NEXT:
            next_path = "/"
        now = self.services.clock.now()
        try:
            url, flow = await self.client.start(self._redirect_uri(request), next_path, now, FLOW_SECONDS)
        except SsoError as exc:
            return self._failed(request, exc)
        response = self.console.redirect(url)
        sealed = self.services.vault.seal(json.dumps({"purpose": PURPOSE, **dataclasses.asdict(flow)}))
        response.set_cookie(
            flow_cookie_name(request),
            sealed,
            max_age=FLOW_SECONDS,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",  # sent on the provider's redirect back, a top-level GET
        )
        return response

    def _flow(self, request: Request, now: datetime) -> Flow:
        sealed = request.cookies.get(flow_cookie_name(request), "")
        expired = SsoError("this sign-in did not start here or has expired; start it again", 400)
        if not sealed or len(sealed) > 4096:
            raise expired
        try:
            values = json.loads(self.services.vault.open(sealed))
            if not isinstance(values, dict) or values.pop("purpose", None) != PURPOSE:
                raise expired
            flow = Flow(**values)
        except (VaultError, ValueError, TypeError):
            raise expired from None
        if not isinstance(flow.expires_at, int) or flow.expires_at <= now.timestamp():
            raise expired
        return flow

    async def callback(self, request: Request) -> Response:
        if self.client is None or self.settings is None:
            return self.console.render(request, "error.html", {"status": 404, "message": "no such page"}, 404)
        console, svc, settings = self.console, self.services, self.settings
        now = svc.clock.now()
        try:
            flow = self._flow(request, now)
            identity = await self.client.finish(flow, request.query_params, now)

            def sign_in(conn: Conn) -> str:
                uow = SqlUnitOfWork(conn, svc.vault)
                user = provision(uow, settings, identity, now)
                cookie, _ = accounts.start_session(uow, user, now, SESSION_LIFETIME)
                return cookie

            cookie = await svc.db.write_alone(sign_in)
        except SsoError as exc:
            return self._failed(request, exc)
        except DomainError as exc:  # another sign-in made the same account at the same moment
            return self._failed(request, SsoError(f"{exc.message}; try again", 409))
        response = console.redirect(flow.next)
        console.set_session_cookie(request, response, cookie)
        response.delete_cookie(flow_cookie_name(request), path="/", secure=request.url.scheme == "https", httponly=True)
        return response
