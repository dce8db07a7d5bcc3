"""The console's ASGI application (Starlette): its routes, static files and the refusal pages.

http/app.py hands it every request whose first path segment is not one of the API's (`packer`, `oauth2`
...), so the API's bearer tokens never reach it and its cookies never reach the API.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from packyard.console import actions
from packyard.console.admin import Admin
from packyard.console.browse import Browse
from packyard.console.pages import Pages
from packyard.console.signin import SignIn
from packyard.console.sso import SingleSignOn
from packyard.console.web import Console
from packyard.pipeline.services import Services

STATIC = Path(__file__).parent / "static"


def create_console(services: Services) -> Starlette:
    console = Console(services)
    sign_in = SignIn(console)
    pages = Pages(console)
    browse = Browse(console)
    admin = Admin(console)
    sso = SingleSignOn(console, services.settings.oidc)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = exc.detail if isinstance(exc, HTTPException) and status != 404 else "no such page"
        return console.render(request, "error.html", {"status": status, "message": message}, status)

    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/sign-in", sign_in.show, methods=["GET"]),
        Route("/sign-in", sign_in.submit, methods=["POST"]),
        Route("/sign-in/oidc", sso.begin, methods=["GET"]),
        Route("/sign-in/oidc/callback", sso.callback, methods=["GET"]),
        Route("/sign-out", sign_in.sign_out, methods=["POST"]),
        Route("/set-password/{secret}", sign_in.show_link, methods=["GET"]),
        Route("/set-password/{secret}", sign_in.submit_link, methods=["POST"]),
        *actions.routes(console),  # before the read pages: `buckets/new` is not a bucket named "new"
        *admin_routes(admin),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        # The read pages last: their {bucket} and {channel} would otherwise take the action routes' `new`.
        *browse.routes(),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, 404: not_found, 405: not_found})


def admin_routes(admin: Admin) -> list[Route]:
    users, principals = "/orgs/{org}/admin/users", "/orgs/{org}/admin/principals"
    return [
        Route(users, admin.users, methods=["GET"]),
        Route(users + "/new", admin.users, methods=["GET"]),
        Route(users + "/new", admin.create_user, methods=["POST"]),
        Route(users + "/{user_id}/delete", admin.confirm_delete_user, methods=["GET"]),
        Route(users + "/{user_id}/delete", admin.delete_user, methods=["POST"]),
        Route(principals, admin.principals, methods=["GET"]),
        Route(principals + "/new", admin.principals, methods=["GET"]),
        Route(principals + "/new", admin.create_principal, methods=["POST"]),
        Route(principals + "/{principal_id}/delete", admin.confirm_delete_principal, methods=["GET"]),
        Route(principals + "/{principal_id}/delete", admin.delete_principal, methods=["POST"]),
    ]
