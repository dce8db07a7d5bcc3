"""Signing in and out, and setting a password from a one-time link (auth/accounts.py holds the rules).

The forms shown before there is a session carry a double-submit token: a random value in a cookie of
their own (`packyard_form`, HttpOnly, SameSite=Strict) and the same value in the form. Another site can
post a form to packyard but can neither read nor set that cookie, so it can't sign a browser in to an
account of its choosing (login CSRF).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from packyard.auth import accounts
from packyard.auth.service import Throttled, source_key
from packyard.console.web import SESSION_LIFETIME, BadForm, Console
from packyard.domain.errors import DomainError, Unauthenticated
from packyard.storage.raw import Conn
from packyard.storage.repositories.token_failures import SqlTokenFailures
from packyard.storage.unit_of_work import SqlUnitOfWork

FORM_COOKIE = "packyard_form"


def safe_next(value: str) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    parts = urlsplit(value)
    if not value.startswith("/") or value.startswith("//") or parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value


def _form_token(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE, "") or secrets.token_urlsafe(24)


def _with_form_cookie(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        FORM_COOKIE, token, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
    return response


def _check_form_token(request: Request, form: dict[str, str]) -> None:
    cookie = request.cookies.get(FORM_COOKIE, "")
    sent = form.get("form_token", "")
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise BadForm(403, "the form's token is missing or wrong; reload the page and try again")


class SignIn:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.services = console.services

    def _page(self, request: Request, *, email: str = "", error: str = "", status: int = 200) -> Response:
        token = _form_token(request)
        values = {
            "form_token": token,
            "email": email,
            "error": error,
            "next": safe_next(request.query_params.get("next", "/")),
        }
        return _with_form_cookie(request, self.console.render(request, "sign_in.html", values, status), token)

    async def show(self, request: Request) -> Response:
        return self._page(request)

    async def submit(self, request: Request) -> Response:
        console, svc = self.console, self.services
        try:
            form = await console.form(request)
            _check_form_token(request, form)
        except BadForm as exc:
            return console.refusal(request, exc)
        email, password = form.get("email", ""), form.get("password", "")
        source = source_key(request.client.host if request.client else "")
        throttle = svc.tokens.throttle
        now = svc.clock.now()
        key = accounts.throttle_key(email)

        def candidate(conn: Conn) -> accounts.Candidate:
            failures = SqlTokenFailures(conn)
            return accounts.sign_in_candidate(SqlUnitOfWork(conn, svc.vault), failures, throttle, email, source, now)

        try:
            claimed = await svc.db.read(candidate)
            found = await accounts.hash_off_loop(accounts.check_password, claimed, password)
        except Throttled as exc:
            message = f"too many failed sign-ins from your address; try again in {exc.retry_after} seconds"
            response = self._page(request, email=email, error=message, status=429)
            response.headers["retry-after"] = str(exc.retry_after)
            return response
        except Unauthenticated:
            await svc.db.write_alone(lambda conn: throttle.failed(SqlTokenFailures(conn), key, source, now))
            return self._page(request, email=email, error="wrong email or password", status=401)

        def start(conn: Conn) -> str:
            uow = SqlUnitOfWork(conn, svc.vault)
            if found.rehash is not None:
                uow.users.set_password(found.user.id, found.rehash)
            if found.clear_failures:
                throttle.succeeded(SqlTokenFailures(conn), key, source)
            cookie, _ = accounts.start_session(uow, found.user, now, SESSION_LIFETIME)
            return cookie

        cookie = await svc.db.write_alone(start)
        response = console.redirect(safe_next(form.get("next", "/")))
        console.set_session_cookie(request, response, cookie)
        return response

    async def sign_out(self, request: Request) -> Response:
        console, svc = self.console, self.services
        cookie = console.cookie(request)
        try:
            form = await console.form(request)

            def end(conn: Conn) -> None:
                uow = SqlUnitOfWork(conn, svc.vault)
                session = accounts.session_for(uow, cookie, svc.clock.now())
                if session is not None:
                    console.check_csrf(session, form)
                    accounts.end_session(uow, cookie)

            await svc.db.write_alone(end)
        except BadForm as exc:
            return console.refusal(request, exc)
        response = console.redirect("/sign-in")
        console.clear_session_cookie(request, response)
        return response

    # ---- one-time links

    async def show_link(self, request: Request) -> Response:
        console, svc = self.console, self.services
        secret = request.path_params["secret"]
        try:
            user = await svc.db.read(lambda conn: accounts.link_user(SqlUnitOfWork(conn), secret, svc.clock.now()))
        except DomainError as exc:
            return console.refusal(request, exc)
        token = _form_token(request)
        values = {"form_token": token, "email": user.email, "min_length": accounts.MIN_PASSWORD}
        return _with_form_cookie(request, console.render(request, "set_password.html", values), token)

    async def submit_link(self, request: Request) -> Response:
        console, svc = self.console, self.services
        secret = request.path_params["secret"]
        try:
            form = await console.form(request)
            _check_form_token(request, form)
            password = form.get("password", "")
            if password != form.get("confirm", ""):
                user = await svc.db.read(lambda conn: accounts.link_user(SqlUnitOfWork(conn), secret, svc.clock.now()))
                token = _form_token(request)
                values = {
                    "form_token": token,
                    "email": user.email,
                    "min_length": accounts.MIN_PASSWORD,
                    "error": "the two passwords differ",
                }
                return _with_form_cookie(request, console.render(request, "set_password.html", values, 400), token)
            # A link that works first: hashing costs a thread 20 ms, not to be spent on guessed links.
            await svc.db.read(lambda conn: accounts.link_user(SqlUnitOfWork(conn), secret, svc.clock.now()))
            hashed = await accounts.hash_off_loop(accounts.hash_password, password)  # refuses a short one
            now = svc.clock.now()
            await svc.db.write_alone(
                lambda conn: accounts.set_password_by_link(SqlUnitOfWork(conn), secret, hashed, now)
            )
        except (BadForm, DomainError) as exc:
            return console.refusal(request, exc)
        return console.redirect("/sign-in?set=1")
