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

from packyard.console.browse import Browse
from packyard.console.pages import Pages
from packyard.console.signin import SignIn
from packyard.console.web import Console
from packyard.pipeline.services import Services

STATIC = Path(__file__).parent / "static"


def create_console(services: Services) -> Starlette:
    console = Console(services)
    sign_in = SignIn(console)
    pages = Pages(console)
    browse = Browse(console)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = exc.detail if isinstance(exc, HTTPException) and status != 404 else "no such page"
        return console.render(request, "error.html", {"status": status, "message": message}, status)

    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/sign-in", sign_in.show, methods=["GET"]),
        Route("/sign-in", sign_in.submit, methods=["POST"]),
        Route("/sign-out", sign_in.sign_out, methods=["POST"]),
        Route("/set-password/{secret}", sign_in.show_link, methods=["GET"]),
        Route("/set-password/{secret}", sign_in.submit_link, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        # The read pages last: their {bucket} and {channel} would otherwise take the action routes' `new`.
        *browse.routes(),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, 404: not_found, 405: not_found})
